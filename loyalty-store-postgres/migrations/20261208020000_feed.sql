-- The change feed (loyalty_core::feed): every committed event and ledger entry of a program,
-- numbered in commit order per member, so that readers in any process can follow it by
-- cursor.
--
-- Sequence values (`seq`) are not commit order: a transaction may take a smaller seq and
-- commit after one with a larger seq, and a reader of `seq > cursor` would miss it for good.
-- So the feed is built in two steps:
-- 1. The writing transaction itself records what it wrote in `feed_pending` (statement
--    triggers on `events` and `ledger_entries`: every writer, whatever its path, is covered,
--    and the row commits, or not, with the change). A member's entries take their seq after
--    its row lock, so one member's seqs follow its commits.
-- 2. A sequencer (`loyalty_feed_sequence`, run by any process after its commits, by readers
--    before they read, and by a sweep) takes the program's head row lock, then, in a new
--    snapshot, moves every committed pending row into `feed`, numbered after the head in seq
--    order, and NOTIFYs `loyalty_feed`. One sequencer at a time per program; what it sees is
--    committed, and a member's later commit is never seen without its earlier ones.
-- The feed is kept per program (positions count per program, and every key leads with
-- program_id), so it distributes by program with the rest of the schema.

CREATE TABLE feed_pending (
    program_id text COLLATE "C" NOT NULL,
    -- 'e': events.seq; 'l': ledger_entries.seq.
    kind       "char" NOT NULL CHECK (kind IN ('e', 'l')),
    seqs       bigint[] NOT NULL,
    -- The member of each seq (NULL for an event that names none), in the order of seqs.
    members    text[] NOT NULL
);
CREATE INDEX feed_pending_by_program ON feed_pending (program_id);

CREATE TABLE feed_heads (
    program_id     text COLLATE "C" PRIMARY KEY,
    -- The last position handed out.
    position       bigint NOT NULL DEFAULT 0,
    -- Positions at or below this one were pruned (past retention).
    pruned_through bigint NOT NULL DEFAULT 0,
    pruned_at      timestamptz NOT NULL DEFAULT now()
);

-- No foreign keys to what it names: a purge of test data deletes events and ledger entries,
-- and their feed rows then simply have nothing to show.
CREATE TABLE feed (
    program_id text COLLATE "C" NOT NULL,
    position   bigint NOT NULL,
    kind       "char" NOT NULL CHECK (kind IN ('e', 'l')),
    seq        bigint NOT NULL,
    member_id  text COLLATE "C",
    -- When it was numbered: retention counts from here.
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_id, position)
);
CREATE INDEX feed_by_member ON feed (program_id, member_id, position)
    WHERE member_id IS NOT NULL;

CREATE FUNCTION loyalty_feed_record() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_pending (program_id, kind, seqs, members)
    SELECT n.program_id, TG_ARGV[0]::"char", array_agg(n.seq ORDER BY n.seq),
        array_agg(n.member_id ORDER BY n.seq)
    FROM new_rows n
    GROUP BY n.program_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_feed AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty_feed_record('e');
CREATE TRIGGER ledger_entries_feed AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty_feed_record('l');

-- Numbers the program's committed pending changes; prunes what is past retention (at most
-- once a minute); returns the head and the pruned position. Each statement of a volatile
-- function takes a new snapshot: the move below sees everything committed before the head's
-- lock was granted.
CREATE FUNCTION loyalty_feed_sequence(p_program text, p_retention interval,
    OUT head bigint, OUT pruned bigint)
LANGUAGE plpgsql AS $$
DECLARE
    added bigint;
    last_pruned timestamptz;
    keep_from bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM feed_pending WHERE program_id = p_program) THEN
        -- Nothing to number: a read, with no lock and no write.
        SELECT h.position, h.pruned_through INTO head, pruned
        FROM feed_heads h WHERE h.program_id = p_program;
        head := COALESCE(head, 0);
        pruned := COALESCE(pruned, 0);
        RETURN;
    END IF;
    INSERT INTO feed_heads (program_id) VALUES (p_program) ON CONFLICT DO NOTHING;
    SELECT h.position, h.pruned_through, h.pruned_at INTO head, pruned, last_pruned
    FROM feed_heads h WHERE h.program_id = p_program FOR UPDATE;

    WITH taken AS (
        DELETE FROM feed_pending WHERE program_id = p_program RETURNING kind, seqs, members
    ), numbered AS (
        SELECT t.kind, u.seq, u.member_id, row_number() OVER (ORDER BY u.seq) AS n
        FROM taken t, unnest(t.seqs, t.members) AS u(seq, member_id)
    ), inserted AS (
        INSERT INTO feed (program_id, position, kind, seq, member_id)
        SELECT p_program, head + q.n, q.kind, q.seq, q.member_id FROM numbered q
        RETURNING 1
    )
    SELECT count(*) INTO added FROM inserted;
    head := head + added;

    IF last_pruned < now() - interval '1 minute' THEN
        -- Positions grow with `at`: the first row still kept ends what is pruned.
        SELECT f.position INTO keep_from FROM feed f
        WHERE f.program_id = p_program AND f.at >= now() - p_retention
        ORDER BY f.position LIMIT 1;
        keep_from := COALESCE(keep_from, head + 1);
        -- Never what a webhook endpoint has yet to dispatch: its deliveries are made from
        -- these rows, however long its workers were away. (The table comes with the
        -- webhooks' migration; PL/pgSQL resolves it when this runs.)
        keep_from := LEAST(keep_from, (SELECT min(w.dispatch_cursor) + 1 FROM webhooks w
                                       WHERE w.program_id = p_program));
        DELETE FROM feed f WHERE f.program_id = p_program AND f.position < keep_from;
        pruned := GREATEST(pruned, keep_from - 1);
        UPDATE feed_heads SET position = head, pruned_through = pruned, pruned_at = now()
        WHERE program_id = p_program;
    ELSE
        UPDATE feed_heads SET position = head WHERE program_id = p_program;
    END IF;
    IF added > 0 THEN
        PERFORM pg_notify('loyalty_feed', p_program);
    END IF;
END
$$;
