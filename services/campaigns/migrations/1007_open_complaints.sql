-- What campaigns keeps from other services' event streams: per tenant and
-- source, the position of the last event applied (a row also means "this
-- tenant sends: follow its streams"; the consumer finds the tenants through
-- the read-only `consumer_scan` policy, ids and positions only), and from
-- tickets, which customers have an open complaint — no marketing reaches them.
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

-- One row per ticket of the tenant that was ever a complaint; `open` as of
-- the event at `position` (an older event replayed changes nothing).
CREATE TABLE complaint_tickets (
    tenant_id   uuid    NOT NULL,
    ticket_id   uuid    NOT NULL,
    customer_id uuid    NOT NULL,
    open        boolean NOT NULL,
    position    bigint  NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id)
);
CREATE INDEX complaint_tickets_open ON complaint_tickets (tenant_id, customer_id) WHERE open;

ALTER TABLE complaint_tickets ENABLE ROW LEVEL SECURITY;
ALTER TABLE complaint_tickets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON complaint_tickets
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
