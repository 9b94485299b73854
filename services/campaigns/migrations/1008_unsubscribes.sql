-- Unsubscribe links followed: one row per delivery whose link was used
-- (following it twice changes nothing). The row is the promise: it is
-- written before the answer, dispatch skips marketing to the customer on the
-- channel from then on, and `apply_time` stays empty until profiles has
-- recorded the opt-out (the unsubscribe job retries until it has, finding
-- pending rows across tenants through the read-only `unsubscribe_scan`
-- policy).
CREATE TABLE unsubscribes (
    tenant_id   uuid        NOT NULL,
    delivery_id uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    channel     text        NOT NULL,
    campaign_id uuid,
    create_time timestamptz NOT NULL,
    apply_time  timestamptz,
    PRIMARY KEY (tenant_id, delivery_id)
);
CREATE INDEX unsubscribes_customer ON unsubscribes (tenant_id, customer_id, channel);
CREATE INDEX unsubscribes_pending ON unsubscribes (create_time) WHERE apply_time IS NULL;

ALTER TABLE unsubscribes ENABLE ROW LEVEL SECURITY;
ALTER TABLE unsubscribes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON unsubscribes
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY unsubscribe_scan ON unsubscribes FOR SELECT
    USING (current_setting('crm.scope', true) = 'unsubscribe-scan' AND apply_time IS NULL);
