-- Positions move out of the outbox rows (crm_kit::outbox). Stamping a
-- position used to UPDATE the event's row: a new version of the whole row
-- and an entry in each of its indexes, which cost a reader about as much as
-- delivering the event. Now an outbox row is written once and only ever
-- deleted by retention; a statement trigger queues each new event in the
-- narrow `outbox_pending` (so no writer, old or new, can forget to), and a
-- reader stamps by moving the tenant's queued events into the narrow
-- `outbox_positions` (outbox_stamp, below) under the per-tenant stamping lock.

-- Committed events not yet given a position, oldest first by `seq`; `time`
-- is copied so that stamping can measure the outbox lag without the event.
CREATE TABLE outbox_pending (
    tenant_id uuid        NOT NULL,
    seq       bigint      NOT NULL,
    time      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- Each stamped event's position; `seq` is the outbox row, `time` the
-- event's (its writing transaction's), for retention and replays from a time.
CREATE TABLE outbox_positions (
    tenant_id uuid        NOT NULL,
    position  bigint      NOT NULL,
    seq       bigint      NOT NULL,
    time      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, position)
);

-- What the outbox held, kept: its stamped events keep their positions, the
-- unstamped ones are queued. The migration runs as the tables' owner, whom
-- FORCE ROW LEVEL SECURITY would otherwise show no tenant's rows; the new
-- tables get their policies after they are filled.
ALTER TABLE outbox NO FORCE ROW LEVEL SECURITY;
INSERT INTO outbox_positions (tenant_id, position, seq, time)
    SELECT tenant_id, position, seq, time FROM outbox WHERE position IS NOT NULL;
INSERT INTO outbox_pending (tenant_id, seq, time)
    SELECT tenant_id, seq, time FROM outbox WHERE position IS NULL;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;

DROP INDEX outbox_unstamped;
DROP INDEX outbox_by_position;
ALTER TABLE outbox DROP COLUMN position;

-- SECURITY DEFINER: writers queue without a privilege on outbox_pending of
-- their own, so that inserts keep working between this migration and the
-- grants that follow the migrations, and for replicas of the previous
-- release during a rolling update. The owner is under the same forced row
-- security, and the writer's transaction has set its tenant.
CREATE FUNCTION outbox_queue() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
BEGIN
    INSERT INTO outbox_pending (tenant_id, seq, time) SELECT tenant_id, seq, time FROM written;
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_queue AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION outbox_queue();

ALTER TABLE outbox_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox_pending
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY background_scan ON outbox_pending FOR SELECT
    USING (current_setting('crm.scope', true) IN ('outbox-retention', 'webhook-scan', 'relay-scan'));

ALTER TABLE outbox_positions ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_positions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox_positions
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY background_scan ON outbox_positions FOR SELECT
    USING (current_setting('crm.scope', true) IN ('outbox-retention', 'webhook-scan', 'relay-scan'));

-- A reader's next window (crm_kit::outbox::read_after): the tenant's next
-- `max_events` positions after `after`, each with its event when the event's
-- type matches one of `patterns` (LIKE patterns; none: every type), else
-- with NULLs. Functions, so that their plans can be pinned: the
-- row-security filter's low estimates make the planner prefer a bitmap scan
-- of every later position (and a sort) to an index walk that stops after a
-- few entries — O(backlog) per read, or per due-scan of every cursor.
-- PL/pgSQL, so that each session plans them once.
CREATE FUNCTION outbox_window(tenant uuid, after bigint, max_events bigint, patterns text[])
    RETURNS TABLE ("position" bigint, id uuid, type text, subject text, "time" timestamptz, data bytea, traceparent text)
    LANGUAGE plpgsql STABLE
    SET enable_bitmapscan = off
    SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT w.position, e.id, e.type, e.subject, e.time, e.data, e.traceparent
    FROM (SELECT p.position, p.seq FROM outbox_positions p
          WHERE p.tenant_id = outbox_window.tenant AND p.position > outbox_window.after
          ORDER BY p.position LIMIT outbox_window.max_events) w
    LEFT JOIN LATERAL (
        SELECT o.id, o.type, o.subject, o.time, o.data, o.traceparent FROM outbox o
        WHERE o.seq = w.seq
          AND (cardinality(outbox_window.patterns) = 0 OR o.type LIKE ANY (outbox_window.patterns))
        LIMIT 1
    ) e ON true
    ORDER BY w.position;
END
$$;

-- The tenant's highest position (NULL: none yet): the end of the index,
-- pinned for the same reason. Due-scans compare it with each cursor.
CREATE FUNCTION outbox_last_position(tenant uuid) RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET enable_bitmapscan = off
    SET enable_seqscan = off
AS $$
BEGIN
    RETURN (SELECT p.position FROM outbox_positions p WHERE p.tenant_id = outbox_last_position.tenant
            ORDER BY p.position DESC LIMIT 1);
END
$$;

-- Stamps (see crm_kit::outbox) up to `max_events` (NULL: all) of the
-- tenant's committed, queued events, oldest first, under the tenant's
-- stamping lock, which is held until the caller's transaction ends; returns
-- how long each waited (seconds), the outbox lag. The events are a range of
-- the queue's index — up to the `max_events`-th queued `seq` — so the plan
-- needs no estimate of how many there are (a join of the queue with its
-- first entries is planned as a nested loop over both when the queue's
-- statistics are stale, which they are right after a bulk write).
CREATE FUNCTION outbox_stamp(tenant uuid, max_events bigint) RETURNS SETOF double precision
    LANGUAGE plpgsql VOLATILE
    SET enable_bitmapscan = off
    SET enable_seqscan = off
AS $$
DECLARE
    last_seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('crm.outbox:' || outbox_stamp.tenant::text, 0));
    IF outbox_stamp.max_events IS NOT NULL THEN
        SELECT q.seq INTO last_seq FROM outbox_pending q WHERE q.tenant_id = outbox_stamp.tenant
            ORDER BY q.seq OFFSET outbox_stamp.max_events - 1 LIMIT 1;
    END IF;
    RETURN QUERY
    WITH queued AS (
        DELETE FROM outbox_pending q
        WHERE q.tenant_id = outbox_stamp.tenant AND q.seq <= coalesce(last_seq, 9223372036854775807)
        RETURNING q.seq, q.time
    ), stamped AS (
        INSERT INTO outbox_positions (tenant_id, position, seq, time)
        SELECT outbox_stamp.tenant, nextval('outbox_position_seq'), s.seq, s.time FROM (SELECT queued.seq, queued.time FROM queued ORDER BY queued.seq) s
    )
    SELECT extract(epoch FROM clock_timestamp() - queued.time)::float8 FROM queued;
END
$$;
