-- Outbound webhooks: a program's endpoints and the deliveries to them.
--
-- An endpoint's dispatch_cursor is the feed position up to which its program's changes have
-- been turned into deliveries; it moves in the same transaction as the deliveries it creates,
-- so the feed row written with a change is the outbox: a committed change is never lost, and
-- never sent before it is committed.

CREATE TABLE webhooks (
    id              text COLLATE "C" PRIMARY KEY,
    program_id      text COLLATE "C" NOT NULL REFERENCES programs (id),
    url             text NOT NULL CHECK (url ~ '^https?://'),
    events          text[] NOT NULL CHECK (cardinality(events) > 0
                        AND events <@ ARRAY['member.points_changed', 'event.logged']),
    -- [{secret, expiresAt}], the current secret first.
    secrets         jsonb NOT NULL CHECK (jsonb_typeof(secrets) = 'array'),
    dispatch_cursor bigint NOT NULL CHECK (dispatch_cursor >= 0),
    created_at      timestamptz NOT NULL
);
CREATE INDEX webhooks_by_program ON webhooks (program_id, created_at, id);

CREATE TABLE webhook_deliveries (
    -- The message's webhook-id.
    id              text COLLATE "C" PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    webhook_id      text COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    program_id      text COLLATE "C" NOT NULL REFERENCES programs (id),
    message_type    text NOT NULL,
    member_id       text COLLATE "C",
    ordering_key    text COLLATE "C" NOT NULL,
    ordering        bigint NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    next_attempt_at timestamptz,
    lease           text,
    leased_until    timestamptz,
    -- [{at, status, error?, durationMs}], oldest first.
    attempts        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(attempts) = 'array'),
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
-- What is due (a worker's claim).
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
-- The head of each endpoint's and member's queue.
CREATE INDEX webhook_deliveries_queue
    ON webhook_deliveries (webhook_id, ordering_key, ordering, seq)
    WHERE state = 'pending';
-- The delivery log, newest first.
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, seq);
