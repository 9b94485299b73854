-- Row security reads the session's settings once per statement, not once per
-- row. Written `tenant_id = nullif(current_setting(...), '')::uuid`, a policy
-- is a filter the executor evaluates on every row it looks at — a settings
-- lookup and a text-to-uuid parse each time — which cost a reader of the
-- outbox (stamping and reading a window of 2048 events) a sixth to a half of
-- its time. Wrapped in a scalar subquery, the setting is an initplan,
-- evaluated once per statement (each execution, cached plans included); each
-- row is compared with a parameter. The same rows pass: the settings cannot
-- change within a statement (the kit sets them at the start of each
-- transaction). The planner now estimates a tenant's share of a table as the
-- average one rather than from the setting's value; the outbox's reads have
-- pinned plans (0005) and the rest are key lookups. New tables use this form
-- (see docs/adding-a-service.md).
--
-- ALTER POLICY locks each table exclusively until this commits: wait a
-- moment at most for a lock rather than stall every writer behind a long
-- transaction (the migration fails and is run again).
SET LOCAL lock_timeout = '3s';

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY['outbox', 'outbox_pending', 'outbox_positions', 'outbox_pruned', 'idempotency_keys',
                                        'webhooks', 'webhook_cursors', 'webhook_attempts', 'relay_cursors'] LOOP
        EXECUTE format($policy$ALTER POLICY tenant_isolation ON %I
                USING (tenant_id = (SELECT nullif(current_setting('crm.tenant_id', true), '')::uuid))
                WITH CHECK (tenant_id = (SELECT nullif(current_setting('crm.tenant_id', true), '')::uuid))$policy$,
            tenant_table);
    END LOOP;
END
$$;

ALTER POLICY background_scan ON outbox
    USING ((SELECT current_setting('crm.scope', true)) IN ('outbox-retention', 'webhook-scan', 'relay-scan'));
ALTER POLICY background_scan ON outbox_pending
    USING ((SELECT current_setting('crm.scope', true)) IN ('outbox-retention', 'webhook-scan', 'relay-scan'));
ALTER POLICY background_scan ON outbox_positions
    USING ((SELECT current_setting('crm.scope', true)) IN ('outbox-retention', 'webhook-scan', 'relay-scan'));
ALTER POLICY webhook_scan ON webhook_cursors
    USING ((SELECT current_setting('crm.scope', true)) = 'webhook-scan');
ALTER POLICY relay_scan ON relay_cursors
    USING ((SELECT current_setting('crm.scope', true)) = 'relay-scan');
