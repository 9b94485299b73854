-- The NATS JetStream relay (crm_kit::relay, on when CRM_NATS_URL is set):
-- where each tenant's events stand in the relay. `position`: the last event
-- JetStream acknowledged. A replica relays a tenant only while it holds the
-- lease; `due_time` holds a retry back after NATS failed. Relays find their
-- work through the read-only `relay_scan` policy (ids, positions, instants).
CREATE TABLE relay_cursors (
    tenant_id   uuid        PRIMARY KEY,
    position    bigint      NOT NULL DEFAULT 0,
    failures    integer     NOT NULL DEFAULT 0,
    due_time    timestamptz,
    lease_owner uuid,
    lease_until timestamptz
);

ALTER TABLE relay_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE relay_cursors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON relay_cursors
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY relay_scan ON relay_cursors FOR SELECT
    USING (current_setting('crm.scope', true) = 'relay-scan');

-- The relay also finds the tenants that have events at all (ids only).
ALTER POLICY background_scan ON outbox
    USING (current_setting('crm.scope', true) IN ('outbox-retention', 'webhook-scan', 'relay-scan'));
