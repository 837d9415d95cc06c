-- The life of points: ledger entries of four kinds, each linked to what caused it. Entries are
-- still never updated; the sign and the links of each kind are checked here, not only in Rust.
--   award       positive; its event and rule (at most one award per event and rule)
--   reversal    negative; the award it takes from, and the refund event or an admin's reason
--   expiry      negative; the award whose points expired
--   adjustment  non-zero; an admin's reason, and an idempotency key if one was given
ALTER TABLE ledger_entries
    ADD COLUMN kind text NOT NULL DEFAULT 'award'
        CONSTRAINT ledger_entries_kind_known CHECK (kind IN ('award', 'reversal', 'adjustment', 'expiry')),
    ADD COLUMN reverses text COLLATE "C",
    -- The position of the award `reverses` names: the foreign key goes to the primary key, so
    -- that awards, which are most of the rows, carry no second unique index for it.
    ADD COLUMN reverses_seq bigint,
    ADD COLUMN reason text,
    ADD COLUMN idempotency_key text COLLATE "C",
    ALTER COLUMN event_id DROP NOT NULL,
    ALTER COLUMN connector_id DROP NOT NULL,
    ALTER COLUMN rule_id DROP NOT NULL,
    DROP CONSTRAINT ledger_entries_points_check,
    DROP CONSTRAINT ledger_entries_program_id_member_id_event_id_rule_id_key,
    ADD CONSTRAINT ledger_entries_kind_rules CHECK (
        (kind = 'award' AND points > 0 AND event_id IS NOT NULL AND rule_id IS NOT NULL
            AND reverses IS NULL AND reverses_seq IS NULL AND idempotency_key IS NULL)
        OR (kind = 'reversal' AND points < 0 AND reverses IS NOT NULL AND reverses_seq IS NOT NULL
            AND (event_id IS NOT NULL OR reason IS NOT NULL) AND idempotency_key IS NULL)
        OR (kind = 'expiry' AND points < 0 AND reverses IS NOT NULL AND reverses_seq IS NOT NULL
            AND idempotency_key IS NULL)
        OR (kind = 'adjustment' AND points <> 0 AND reason IS NOT NULL AND reverses IS NULL
            AND reverses_seq IS NULL)),
    -- A reversal or an expiry takes from an award of the same member.
    ADD CONSTRAINT ledger_entries_reverses_fkey FOREIGN KEY (program_id, member_id, reverses_seq)
        REFERENCES ledger_entries (program_id, member_id, seq);

-- A rule awards an event once; also how a purge finds an event's entries.
CREATE UNIQUE INDEX ledger_entries_award_key ON ledger_entries (program_id, member_id, event_id, rule_id)
    WHERE kind = 'award';
-- An adjustment sent again with its key is the same adjustment.
CREATE UNIQUE INDEX ledger_entries_adjustment_key ON ledger_entries (program_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX ledger_entries_by_reversed ON ledger_entries (program_id, member_id, reverses)
    WHERE reverses IS NOT NULL;

-- A reversal may take back points already spent elsewhere: a balance may go below zero, and a
-- refund's log item carries the (negative) points it reversed.
ALTER TABLE members DROP CONSTRAINT members_balance_check;
ALTER TABLE events DROP CONSTRAINT events_points_check;
-- A duplicate names its original; an accepted refund names the purchase it refers to.
ALTER TABLE events DROP CONSTRAINT events_check1,
    ADD CONSTRAINT events_original_check CHECK (
        (status = 'duplicate' AND original_event_id IS NOT NULL)
        OR (status = 'accepted')
        OR original_event_id IS NULL);

-- Refunds are incoming events of their own type.
ALTER TABLE connectors DROP CONSTRAINT connectors_event_type_check,
    ADD CONSTRAINT connectors_event_type_check
        CHECK (event_type IN ('custom.basic', 'ecommerce.purchase', 'ecommerce.refund'));

-- Expiry is a program's policy; pending days a rule's option, fixed on each award when it is
-- made (a rule changed later does not move the awards it already gave).
ALTER TABLE programs ADD COLUMN points_expiry_days integer
    CHECK (points_expiry_days BETWEEN 1 AND 36600);
ALTER TABLE rules ADD COLUMN pending_days integer CHECK (pending_days BETWEEN 0 AND 36600);
ALTER TABLE ledger_entries ADD COLUMN available_at timestamptz
    CONSTRAINT ledger_entries_pending_awards CHECK (available_at IS NULL OR kind = 'award');
-- An award expires once.
CREATE UNIQUE INDEX ledger_entries_expiry_key ON ledger_entries (program_id, member_id, reverses)
    WHERE kind = 'expiry';
-- The sweep's candidates: awards by time. BRIN: events arrive roughly in time order, and a
-- block-range summary costs an award's insert next to nothing (a B-tree cost a tenth of the
-- single-event rate).
CREATE INDEX ledger_entries_awards_by_time ON ledger_entries USING brin (occurred_at)
    WHERE kind = 'award';
