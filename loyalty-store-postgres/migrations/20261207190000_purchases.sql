-- Accepted purchases by order, so that a refund finds the newest purchase of its order in one
-- index lookup (the order id and amount as validated, not as the mapping wrote them).
CREATE TABLE purchases (
    program_id text COLLATE "C" NOT NULL,
    order_id   text COLLATE "C" NOT NULL,
    test       boolean NOT NULL,
    -- The purchase event's position: the newest is the largest.
    seq        bigint NOT NULL,
    event_id   text COLLATE "C" NOT NULL,
    member_id  text COLLATE "C" NOT NULL,
    amount     double precision NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (program_id, order_id, test, seq),
    FOREIGN KEY (program_id, event_id) REFERENCES events (program_id, id) ON DELETE CASCADE,
    FOREIGN KEY (program_id, member_id) REFERENCES members (program_id, id)
);

-- Purchases accepted before this migration, as their mapped events name them, so that their
-- refunds find them. Best effort: an order id or amount the mapping wrote as something the
-- validation converted (a numeric string amount, an integer written as 1.0) is left out.
INSERT INTO purchases (program_id, order_id, test, seq, event_id, member_id, amount)
SELECT e.program_id, btrim(e.mapped -> 'payload' ->> 'orderId'), e.test, e.seq, e.id,
    e.member_id, q.amount
FROM events e
JOIN connectors c ON c.program_id = e.program_id AND c.id = e.connector_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN json_typeof(e.mapped -> 'payload' -> 'amount') = 'number'
                THEN (e.mapped -> 'payload' ->> 'amount')::double precision END AS amount
) q
WHERE c.event_type = 'ecommerce.purchase' AND e.status = 'accepted'
  AND e.member_id IS NOT NULL AND e.mapped IS NOT NULL
  AND json_typeof(e.mapped -> 'payload') = 'object'
  AND json_typeof(e.mapped -> 'payload' -> 'orderId') IN ('string', 'number')
  AND btrim(e.mapped -> 'payload' ->> 'orderId') <> ''
  AND q.amount >= 0;

-- loyalty_commit also records accepted purchases (p_*), in the statement that writes them, and
-- when a pending award becomes spendable (l_available).
DROP FUNCTION loyalty_commit(text[], text[], boolean[], text[], text[], text[], text[], text[], text[], boolean[], timestamptz[], text[], text[], text[], text[], text[], text[], bigint[], bigint[], integer, integer[], text[], text[], text[], text[], text[], text[], text[], text[], text[], boolean[], timestamptz[], timestamptz[], bigint[], text[], text[], boolean[], text[], text[], text[], integer[], text[], text[], text[], text[], text[], text[], bigint[], boolean[], timestamptz[], timestamptz[], text[], text[], text[], text[], bigint[], bigint[], text[], text[], bigint[], boolean[]);

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
    b_program text[], b_member text[], b_delta bigint[], b_test boolean[],
    p_ord integer[], p_program text[], p_order text[], p_test boolean[], p_event text[],
    p_member text[], p_amount double precision[],
    l_available timestamptz[]
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
            rule_id, points, test, created_at, occurred_at, available_at)
        SELECT q.program_id, q.member_id, p.seqs[q.ord], q.id, q.event_id, q.connector_id,
            q.rule_id, q.points, q.test, q.created_at, q.occurred_at, q.available_at
        FROM positions p, UNNEST(l_ord, l_program, l_member, l_id, l_event, l_connector,
            l_rule, l_points, l_test, l_created, l_occurred, l_available)
          AS q(ord, program_id, member_id, id, event_id, connector_id, rule_id, points, test,
            created_at, occurred_at, available_at)
    ), new_purchases AS (
        INSERT INTO purchases (program_id, order_id, test, seq, event_id, member_id, amount)
        SELECT q.program_id, q.order_id, q.test, p.seqs[q.ord], q.event_id, q.member_id,
            q.amount
        FROM positions p, UNNEST(p_ord, p_program, p_order, p_test, p_event, p_member,
            p_amount) AS q(ord, program_id, order_id, test, event_id, member_id, amount)
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
