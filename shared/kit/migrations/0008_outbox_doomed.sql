-- The retention's next batch (crm_kit::retention): up to `max_events` of the
-- tenant's stamped events from before `cutoff`, lowest positions first. A
-- function, so that its plan can be pinned as outbox_window's is (0005):
-- planned freely, the row-security filter's low estimates make it a bitmap
-- scan of every position of the tenant and a sort, for each batch — pruning
-- a tenant cost its whole outbox once per 5000 events pruned. The index walk
-- stops after `max_events` old events, which lead the positions; only the
-- last batch of a round walks on to the tenant's newest position.
CREATE FUNCTION outbox_doomed(tenant uuid, cutoff timestamptz, max_events bigint)
    RETURNS TABLE ("position" bigint, seq bigint)
    LANGUAGE plpgsql STABLE
    SET enable_bitmapscan = off
    SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT p.position, p.seq FROM outbox_positions p
    WHERE p.tenant_id = outbox_doomed.tenant AND p.time < outbox_doomed.cutoff
    ORDER BY p.position LIMIT outbox_doomed.max_events;
END
$$;
