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
    awards            json NOT NULL,
    raw               json NOT NULL,
    raw_truncated     boolean NOT NULL,
    mapped            json,
    trace             json,
    warnings          json NOT NULL,
    PRIMARY KEY (program_id, id),
    FOREIGN KEY (program_id, connector_id) REFERENCES connectors (program_id, id),
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, id),
    CHECK (status NOT IN ('accepted', 'duplicate')
           OR (client_event_id IS NOT NULL AND member_id IS NOT NULL)),
    CHECK ((status = 'duplicate') = (original_event_id IS NOT NULL)),
    CHECK (status = 'accepted' OR points = 0)
);
-- The log, newest first: all of a program, by connector, by status, by member (which is also
-- the event half of a member's activity), by time, and the test events a purge deletes.
CREATE UNIQUE INDEX events_by_seq ON events (program_id, seq DESC);
CREATE INDEX events_by_connector ON events (program_id, connector_id, seq DESC);
CREATE INDEX events_by_status ON events (program_id, status, seq DESC);
CREATE INDEX events_by_member ON events (program_id, member_id, seq DESC) WHERE member_id IS NOT NULL;
CREATE INDEX events_by_received_at ON events (program_id, received_at);
CREATE INDEX events_test ON events (program_id, connector_id, seq DESC) WHERE test;

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
