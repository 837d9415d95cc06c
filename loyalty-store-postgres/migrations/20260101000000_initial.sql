-- The loyalty engine's schema. The schema itself holds the invariants the store relies on:
-- one accepted event per idempotency key, ledger lines that point at real events and members,
-- positive awards, non-negative balances and usage, and known statuses.
--
-- Distribution: every member-scoped table (members, member_usage, ledger_entries) is keyed by
-- (program_id, member_id, ...), so that it could be distributed by (program, member) as Citus
-- would, with a member's rows and locks on one node. The program-wide tables (events,
-- member_identifiers, accepted_keys) are keyed by what they are looked up by and would be
-- distributed by program (or connector) instead.
--
-- Ids, identifier values and client event ids are opaque: COLLATE "C" makes their comparisons
-- bytewise, which is faster and gives one sort order to every lock-ordering query.

-- One position for events and ledger entries alike: a member's activity (both) is ordered by it.
CREATE SEQUENCE loyalty_seq AS bigint;

CREATE TABLE programs (
    id                      text COLLATE "C" PRIMARY KEY,
    name                    text NOT NULL,
    default_identifier_kind text NOT NULL,
    enroll_unknown_members  boolean NOT NULL,
    admin_token_hash        text NOT NULL,
    created_at              timestamptz NOT NULL
);

CREATE TABLE connectors (
    id                 text COLLATE "C" PRIMARY KEY,
    program_id         text COLLATE "C" NOT NULL REFERENCES programs (id),
    name               text NOT NULL,
    event_type         text NOT NULL CHECK (event_type IN ('custom.basic', 'ecommerce.purchase')),
    -- Token hashes and HMAC keys, as ConnectorAuth serialises them.
    auth               jsonb NOT NULL,
    mapping            text NOT NULL,
    test_mode          boolean NOT NULL,
    max_event_age_days integer NOT NULL CHECK (max_event_age_days > 0),
    revision           bigint NOT NULL CHECK (revision > 0),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    deleted            boolean NOT NULL,
    -- Lets rules and events refer to a connector of their own program only.
    UNIQUE (program_id, id)
);
CREATE INDEX connectors_by_program ON connectors (program_id, created_at, id);

CREATE TABLE rules (
    id               text COLLATE "C" PRIMARY KEY,
    program_id       text COLLATE "C" NOT NULL,
    connector_id     text COLLATE "C" NOT NULL,
    name             text NOT NULL,
    conditions       jsonb NOT NULL,
    points           jsonb NOT NULL,
    limits           jsonb NOT NULL,
    priority         integer NOT NULL,
    stop_other_rules boolean NOT NULL,
    active_from      timestamptz,
    active_until     timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    FOREIGN KEY (program_id, connector_id) REFERENCES connectors (program_id, id),
    CHECK (active_until IS NULL OR active_from IS NULL OR active_until > active_from)
);
CREATE INDEX rules_by_program ON rules (program_id, created_at, id);
CREATE INDEX rules_by_connector ON rules (program_id, connector_id, created_at, id);

CREATE TABLE members (
    program_id text COLLATE "C" NOT NULL REFERENCES programs (id),
    id         text COLLATE "C" NOT NULL,
    -- The sum of the member's ledger entries, which are all positive.
    balance    bigint NOT NULL CHECK (balance >= 0),
    test       boolean NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (program_id, id)
) WITH (fillfactor = 80); -- room for HOT updates: every accepted event updates its member's row

CREATE TABLE member_identifiers (
    program_id text COLLATE "C" NOT NULL,
    kind       text COLLATE "C" NOT NULL,
    value      text COLLATE "C" NOT NULL,
    member_id  text COLLATE "C" NOT NULL,
    PRIMARY KEY (program_id, kind, value),
    -- Deferred: an enrolment claims the identifier first and inserts the member only if it won,
    -- so that two concurrent enrolments of one identifier leave no orphan member.
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, id)
        ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX member_identifiers_by_member ON member_identifiers (program_id, member_id);

-- The event log: every item received, whatever its status.
CREATE TABLE events (
    -- (The connector's foreign key also proves the program.)
    program_id        text COLLATE "C" NOT NULL,
    id                text COLLATE "C" NOT NULL,
    seq               bigint NOT NULL,
    connector_id      text COLLATE "C" NOT NULL,
    status            text NOT NULL CHECK (status IN ('accepted', 'duplicate', 'ignored', 'rejected')),
    reason            text,
    error             json,
    client_event_id   text COLLATE "C",
    -- No foreign key: a duplicate may outlive its original when a test delivery races a purge.
    original_event_id text COLLATE "C",
    member_id         text COLLATE "C",
    test              boolean NOT NULL,
    received_at       timestamptz NOT NULL,
    occurred_at       timestamptz,
    points            bigint NOT NULL CHECK (points >= 0),
    -- json, not jsonb: the item is kept as received (jsonb rejects \u0000), and ingestion does
    -- not pay for a conversion that no query needs.
    -- lz4: a row with its raw item is just over the size where PostgreSQL compresses it in
    -- line, and lz4 costs a fraction of the default pglz's CPU for about the same size.
    awards            json NOT NULL,
    raw               json COMPRESSION lz4 NOT NULL,
    raw_truncated     boolean NOT NULL,
    mapped            json COMPRESSION lz4,
    trace             json COMPRESSION lz4,
    warnings          json NOT NULL,
    FOREIGN KEY (program_id, connector_id) REFERENCES connectors (program_id, id),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, id),
    CHECK (status NOT IN ('accepted', 'duplicate')
           OR (client_event_id IS NOT NULL AND member_id IS NOT NULL)),
    CHECK ((status = 'duplicate') = (original_event_id IS NOT NULL)),
    CHECK (status = 'accepted' OR points = 0)
);
-- The log, newest first: all of a program, by connector, by status, by member (which is also
-- the event half of a member's activity), by time, and the test events a purge deletes.
-- Ascending, read backwards: new entries go to the right edge of each index, where B-tree
-- splits leave full pages (a descending index would take them at the left edge and split
-- its pages half-full).
CREATE UNIQUE INDEX events_by_seq ON events (program_id, seq);
CREATE INDEX events_by_connector ON events (program_id, connector_id, seq);
CREATE INDEX events_by_status ON events (program_id, status, seq);
CREATE INDEX events_by_member ON events (program_id, member_id, seq) WHERE member_id IS NOT NULL;
CREATE INDEX events_by_received_at ON events (program_id, received_at);
CREATE INDEX events_test ON events (program_id, connector_id, seq) WHERE test;
-- The primary key comes last on purpose. Before the table's first ANALYZE, every index that
-- starts with program_id costs the same to the planner, which then takes the one created
-- last: the lookups by (program_id, id) (the foreign-key checks of accepted_keys and
-- ledger_entries, whose plans a connection keeps) must get this one, not a scan of the
-- program's events through events_by_received_at.
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (program_id, id);

-- The idempotency keys: at most one accepted event per (connector, clientEventId, test).
CREATE TABLE accepted_keys (
    connector_id    text COLLATE "C" NOT NULL,
    client_event_id text COLLATE "C" NOT NULL,
    test            boolean NOT NULL,
    program_id      text COLLATE "C" NOT NULL,
    event_id        text COLLATE "C" NOT NULL,
    PRIMARY KEY (connector_id, client_event_id, test),
    -- Deferred: a commit claims the key before it writes the event that holds it.
    FOREIGN KEY (program_id, event_id) REFERENCES events (program_id, id)
        DEFERRABLE INITIALLY DEFERRED
);

-- The append-only ledger. Only a purge deletes, and only test entries.
CREATE TABLE ledger_entries (
    program_id   text COLLATE "C" NOT NULL,
    member_id    text COLLATE "C" NOT NULL,
    seq          bigint NOT NULL,
    id           text COLLATE "C" NOT NULL,
    event_id     text COLLATE "C" NOT NULL,
    connector_id text COLLATE "C" NOT NULL,
    -- No foreign key: rules are deleted, their awards stay.
    rule_id      text COLLATE "C" NOT NULL,
    points       bigint NOT NULL CHECK (points > 0),
    test         boolean NOT NULL,
    created_at   timestamptz NOT NULL,
    occurred_at  timestamptz NOT NULL,
    -- Also the ledger half of a member's activity.
    PRIMARY KEY (program_id, member_id, seq),
    -- A rule awards an event once; also how a purge finds an event's entries.
    UNIQUE (program_id, member_id, event_id, rule_id),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, id),
    FOREIGN KEY (program_id, event_id) REFERENCES events (program_id, id)
);

-- How often and for how many points a rule awarded a member in a period (one row per period
-- key, every period of every award, as rules::Evaluation::usage_increments says).
CREATE TABLE member_usage (
    program_id text COLLATE "C" NOT NULL,
    member_id  text COLLATE "C" NOT NULL,
    rule_id    text COLLATE "C" NOT NULL,
    period     text COLLATE "C" NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    points     bigint NOT NULL CHECK (points >= 0),
    PRIMARY KEY (program_id, member_id, rule_id, period),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, id) ON DELETE CASCADE
) WITH (fillfactor = 80); -- room for HOT updates: every award updates five rows

-- A commit's writes, in one call (one round trip, and in autocommit one transaction):
-- 1. claims the idempotency keys (sorted), 2. enrols the identifiers (sorted), 3. locks the
-- members (sorted) — the global lock order of every commit — then 4. checks that the members'
-- usage is still what the caller read when it decided, and 5. numbers and inserts the events
-- and ledger entries, adds the usage and the balances. Returns the positions taken from the
-- sequence, one per event and ledger entry, ascending.
--
-- A caller that decided on an unlocked read (the store's fast path) passes what must still hold:
-- if a key was taken, an identifier enrolled, a member purged or a usage changed meanwhile, the
-- call fails with serialization_failure (40001) and writes nothing, and the caller decides
-- again under locks. A caller that already holds the keys and the locks passes empty arrays
-- for steps 1 to 4.
--
-- Whatever the statistics say (a new database has none), the lookups are nested loops over
-- the primary keys: the inputs are at most a few thousand rows.
CREATE FUNCTION loyalty_commit(
    k_connector text[], k_client text[], k_test boolean[], k_program text[], k_event text[],
    i_program text[], i_kind text[], i_value text[], i_member text[], i_test boolean[],
    i_created timestamptz[],
    m_program text[], m_id text[],
    v_program text[], v_member text[], v_rule text[], v_period text[], v_count bigint[],
    v_points bigint[],
    position_count integer,
    e_ord integer[], e_program text[], e_id text[], e_connector text[], e_status text[],
    e_reason text[], e_error text[], e_client_id text[], e_original text[], e_member text[],
    e_test boolean[], e_received timestamptz[], e_occurred timestamptz[], e_points bigint[],
    e_awards text[], e_raw text[], e_truncated boolean[], e_mapped text[], e_trace text[],
    e_warnings text[],
    l_ord integer[], l_program text[], l_member text[], l_id text[], l_event text[],
    l_connector text[], l_rule text[], l_points bigint[], l_test boolean[],
    l_created timestamptz[], l_occurred timestamptz[],
    u_program text[], u_member text[], u_rule text[], u_period text[], u_count bigint[],
    u_points bigint[],
    b_program text[], b_member text[], b_delta bigint[], b_test boolean[]
) RETURNS bigint[]
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    done bigint;
    result_positions bigint[];
BEGIN
    IF cardinality(k_connector) > 0 THEN
        WITH claimed AS (
            INSERT INTO accepted_keys (connector_id, client_event_id, test, program_id, event_id)
            SELECT q.c, q.k, q.t, q.p, q.e FROM UNNEST(k_connector, k_client, k_test, k_program, k_event)
                AS q(c, k, t, p, e)
            ORDER BY q.c COLLATE "C", q.k COLLATE "C", q.t
            ON CONFLICT DO NOTHING
            RETURNING 1
        )
        SELECT count(*) INTO done FROM claimed;
        IF done <> cardinality(k_connector) THEN
            RAISE EXCEPTION 'an idempotency key was taken meanwhile'
                USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;

    IF cardinality(i_program) > 0 THEN
        WITH claimed AS (
            INSERT INTO member_identifiers (program_id, kind, value, member_id)
            SELECT q.p, q.k, q.v, q.m FROM UNNEST(i_program, i_kind, i_value, i_member)
                AS q(p, k, v, m)
            ORDER BY q.p COLLATE "C", q.k COLLATE "C", q.v COLLATE "C"
            ON CONFLICT DO NOTHING
            RETURNING 1
        )
        SELECT count(*) INTO done FROM claimed;
        IF done <> cardinality(i_program) THEN
            RAISE EXCEPTION 'a member was enrolled meanwhile'
                USING ERRCODE = 'serialization_failure';
        END IF;
        INSERT INTO members (program_id, id, balance, test, created_at)
        SELECT q.p, q.m, 0, q.t, q.c FROM UNNEST(i_program, i_member, i_test, i_created)
            AS q(p, m, t, c);
    END IF;

    IF cardinality(m_program) > 0 THEN
        -- The locking clause applies to rows as the sort emits them: locked in order.
        SELECT count(*) INTO done FROM (
            SELECT 1 FROM members m
            JOIN UNNEST(m_program, m_id) AS q(p, id) ON m.program_id = q.p AND m.id = q.id
            ORDER BY m.program_id, m.id
            FOR NO KEY UPDATE OF m
        ) locked;
        IF done <> cardinality(m_program) THEN
            RAISE EXCEPTION 'a member was purged meanwhile'
                USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;

    -- Only the holder of a member's lock writes its usage: read now, it is current.
    IF cardinality(v_program) > 0 AND EXISTS (
        SELECT 1 FROM UNNEST(v_program, v_member, v_rule, v_period, v_count, v_points)
            AS v(p, m, r, d, c, s)
        LEFT JOIN member_usage u ON u.program_id = v.p AND u.member_id = v.m
            AND u.rule_id = v.r AND u.period = v.d
        WHERE COALESCE(u.count, 0) <> v.c OR COALESCE(u.points, 0) <> v.s
    ) THEN
        RAISE EXCEPTION 'a usage changed meanwhile' USING ERRCODE = 'serialization_failure';
    END IF;

    -- Data-modifying CTEs all run, referenced or not; positions is evaluated once.
    WITH positions AS (
        SELECT ARRAY(SELECT nextval('loyalty_seq') FROM generate_series(1, position_count)
                     ORDER BY 1) AS seqs
    ), new_events AS (
        INSERT INTO events (program_id, id, seq, connector_id, status, reason, error,
            client_event_id, original_event_id, member_id, test, received_at, occurred_at,
            points, awards, raw, raw_truncated, mapped, trace, warnings)
        SELECT q.program_id, q.id, p.seqs[q.ord], q.connector_id, q.status, q.reason,
            q.error::json, q.client_event_id, q.original_event_id, q.member_id, q.test,
            q.received_at, q.occurred_at, q.points, q.awards::json, q.raw::json,
            q.raw_truncated, q.mapped::json, q.trace::json, q.warnings::json
        FROM positions p, UNNEST(e_ord, e_program, e_id, e_connector, e_status, e_reason,
            e_error, e_client_id, e_original, e_member, e_test, e_received, e_occurred,
            e_points, e_awards, e_raw, e_truncated, e_mapped, e_trace, e_warnings)
          AS q(ord, program_id, id, connector_id, status, reason, error, client_event_id,
            original_event_id, member_id, test, received_at, occurred_at, points, awards,
            raw, raw_truncated, mapped, trace, warnings)
    ), new_ledger AS (
        INSERT INTO ledger_entries (program_id, member_id, seq, id, event_id, connector_id,
            rule_id, points, test, created_at, occurred_at)
        SELECT q.program_id, q.member_id, p.seqs[q.ord], q.id, q.event_id, q.connector_id,
            q.rule_id, q.points, q.test, q.created_at, q.occurred_at
        FROM positions p, UNNEST(l_ord, l_program, l_member, l_id, l_event, l_connector,
            l_rule, l_points, l_test, l_created, l_occurred)
          AS q(ord, program_id, member_id, id, event_id, connector_id, rule_id, points, test,
            created_at, occurred_at)
    ), new_usage AS (
        INSERT INTO member_usage AS u (program_id, member_id, rule_id, period, count, points)
        SELECT * FROM UNNEST(u_program, u_member, u_rule, u_period, u_count, u_points)
        ON CONFLICT (program_id, member_id, rule_id, period) DO UPDATE
            SET count = u.count + EXCLUDED.count, points = u.points + EXCLUDED.points
    ), new_balances AS (
        -- Only the rows that change: most accepted events award nothing.
        UPDATE members m SET balance = m.balance + d.delta, test = m.test AND d.test
        FROM UNNEST(b_program, b_member, b_delta, b_test) AS d(program_id, id, delta, test)
        WHERE m.program_id = d.program_id AND m.id = d.id
          AND (d.delta <> 0 OR (m.test AND NOT d.test))
    )
    SELECT seqs INTO result_positions FROM positions;
    RETURN result_positions;
END
$$;
