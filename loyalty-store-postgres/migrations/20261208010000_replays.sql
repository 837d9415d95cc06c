-- Replays: logged items run again through a fixed mapping or a draft rule set.

-- An item a replay processed anew names the replay and the item it replays.
ALTER TABLE events
    ADD COLUMN replay_id text COLLATE "C",
    ADD COLUMN replayed_event_id text COLLATE "C";

-- A replay that changes an accepted event's awards reverses what is left of them and awards
-- anew, with the replay named in the entries' reason: an event may then hold a rule's award
-- more than once, at most once per replay (and once without one, its first award).
DROP INDEX ledger_entries_award_key;
CREATE UNIQUE INDEX ledger_entries_award_key
    ON ledger_entries (program_id, member_id, event_id, rule_id, (COALESCE(reason, '')))
    WHERE kind = 'award';

-- The accepted events each replay changed: a replay changes an event at most once, also when
-- it is applied twice, resumed after a restart, or run by two processes at once.
CREATE TABLE replay_changes (
    program_id text COLLATE "C" NOT NULL,
    replay_id  text COLLATE "C" NOT NULL,
    event_id   text COLLATE "C" NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (program_id, replay_id, event_id),
    FOREIGN KEY (program_id, event_id) REFERENCES events (program_id, id) ON DELETE CASCADE
);

-- Replay jobs: what was asked, the fixed end of the items read, where the job is, its report.
CREATE TABLE replays (
    program_id text COLLATE "C" NOT NULL REFERENCES programs (id),
    id         text COLLATE "C" NOT NULL,
    spec       json NOT NULL,
    until      timestamptz NOT NULL,
    state      text NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled')),
    processed  bigint NOT NULL CHECK (processed >= 0),
    total      bigint NOT NULL CHECK (total >= 0),
    report     json,
    error      text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (program_id, id)
);
CREATE INDEX replays_running ON replays (state) WHERE state = 'running';

-- A replay's items in event-time order, as a cursor the caller fetches page by page in its
-- transaction: PostgreSQL sorts them (on disk past work_mem), the replay holds one page.
CREATE FUNCTION loyalty_replay_items(
    p_cursor refcursor, p_program text, p_connector text, p_since timestamptz,
    p_until timestamptz, p_statuses text[]
) RETURNS refcursor LANGUAGE plpgsql AS $$
BEGIN
    OPEN p_cursor NO SCROLL FOR
        SELECT seq FROM events
        WHERE program_id = p_program AND connector_id = p_connector
          AND (p_since IS NULL OR received_at >= p_since) AND received_at < p_until
          AND status = ANY (p_statuses)
        ORDER BY COALESCE(occurred_at, received_at), seq;
    RETURN p_cursor;
END
$$;
