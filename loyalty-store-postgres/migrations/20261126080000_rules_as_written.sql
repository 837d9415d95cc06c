-- A rule's conditions, points and limits are shown back as the admin wrote them: `json` keeps
-- the text (key order included), where `jsonb` reordered the keys, so that a PostgreSQL-backed
-- server answered with the same content as the memory store in another order. Rows written
-- before this migration keep jsonb's order (the original is gone). Nothing queries inside
-- these columns; the engine compiles them when it loads a rule.
ALTER TABLE rules
    ALTER COLUMN conditions TYPE json USING conditions::json,
    ALTER COLUMN points TYPE json USING points::json,
    ALTER COLUMN limits TYPE json USING limits::json;
