-- The delivery ledger and sent log: one row per message to one customer on
-- one channel, written before anything is sent. The unique keys make a
-- retried notice or a re-run campaign step find its row instead of adding a
-- second message.
CREATE TABLE deliveries (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL,
    kind                text        NOT NULL,
    campaign_id         uuid,
    request_id          text        NOT NULL DEFAULT '',
    template_id         uuid        NOT NULL,
    customer_id         uuid        NOT NULL,
    channel             text        NOT NULL,
    purpose             text        NOT NULL,
    recipient           text        NOT NULL DEFAULT '',
    status              text        NOT NULL,
    skip_reason         text        NOT NULL DEFAULT '',
    locale              text        NOT NULL DEFAULT '',
    subject             text        NOT NULL DEFAULT '',
    body                text        NOT NULL DEFAULT '',
    html_body           text        NOT NULL DEFAULT '',
    data                jsonb       NOT NULL DEFAULT '{}',
    attempts            integer     NOT NULL DEFAULT 0,
    provider_id         uuid,
    provider_message_id text        NOT NULL DEFAULT '',
    error               text        NOT NULL DEFAULT '',
    create_time         timestamptz NOT NULL,
    update_time         timestamptz NOT NULL,
    send_time           timestamptz,
    next_attempt_time   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX deliveries_notice_request ON deliveries (tenant_id, request_id) WHERE kind = 'NOTICE';
CREATE UNIQUE INDEX deliveries_campaign_recipient ON deliveries (tenant_id, campaign_id, customer_id, channel) WHERE campaign_id IS NOT NULL;
-- The sent log, newest first, overall and per customer and recipient (ids
-- are UUIDv7: time-ordered). Filters name customers as resource names.
CREATE INDEX deliveries_by_customer ON deliveries (tenant_id, ('customers/' || customer_id::text), id);
CREATE INDEX deliveries_by_recipient ON deliveries (tenant_id, recipient, id);

ALTER TABLE deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deliveries
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- Messages waiting for a worker: a row while a delivery is QUEUED or
-- SUBMITTING. `due_time` is when it may next be taken: its next attempt, or
-- for a claimed one the end of the claiming replica's lease — so a message
-- whose sender died becomes due again by itself. Lane 0 (notices) is served
-- before lane 1 (campaigns). Workers find due tenants through the read-only
-- `due_scan` policy, which only a transaction that sets
-- crm.scope = 'delivery-scan' gets; the table holds ids and instants only,
-- and every claim and send then happens in a tenant-scoped transaction.
CREATE TABLE delivery_queue (
    tenant_id   uuid        NOT NULL,
    delivery_id uuid        NOT NULL,
    lane        smallint    NOT NULL,
    due_time    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id),
    FOREIGN KEY (tenant_id, delivery_id) REFERENCES deliveries (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX delivery_queue_due ON delivery_queue (due_time);
CREATE INDEX delivery_queue_by_tenant ON delivery_queue (tenant_id, lane, due_time);

ALTER TABLE delivery_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE delivery_queue FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON delivery_queue
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY due_scan ON delivery_queue FOR SELECT
    USING (current_setting('crm.scope', true) = 'delivery-scan');
