-- Tickets follows profiles' event stream (for CustomerErased: a customer's
-- personal text in tickets is erased with their profile): per tenant, the
-- position of the last event applied. A row also means "this tenant has
-- tickets: follow its stream"; the follower finds the tenants through the
-- read-only `consumer_scan` policy (ids and positions only).
CREATE TABLE stream_positions (
    tenant_id   uuid        NOT NULL,
    source      text        NOT NULL,
    position    bigint      NOT NULL DEFAULT 0,
    update_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, source)
);

ALTER TABLE stream_positions ENABLE ROW LEVEL SECURITY;
ALTER TABLE stream_positions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stream_positions
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY consumer_scan ON stream_positions FOR SELECT
    USING (current_setting('crm.scope', true) = 'consumer-scan');

-- Tenants with tickets before this migration are followed from the start of their stream.
INSERT INTO stream_positions (tenant_id, source) SELECT DISTINCT tenant_id, 'profiles' FROM tickets;
