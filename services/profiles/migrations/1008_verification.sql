-- Data verification (定期确认): how long a tenant's customer data stays
-- fresh, and which reminders went out — one per customer, last confirmation
-- and period, so replicas and repeated runs never send one twice.
CREATE TABLE verification_settings (
    tenant_id   uuid        PRIMARY KEY,
    fresh_days  integer     NOT NULL CHECK (fresh_days BETWEEN 0 AND 3650),
    update_time timestamptz NOT NULL
);

CREATE TABLE verification_notices (
    tenant_id   uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    base_time   timestamptz NOT NULL,
    period      integer     NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, base_time, period)
);

ALTER TABLE verification_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE verification_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON verification_settings
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
-- The job lists the tenants that verify (ids and periods only) across tenants.
CREATE POLICY verification_scan ON verification_settings FOR SELECT
    USING (current_setting('crm.scope', true) = 'verification-scan');
ALTER TABLE verification_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE verification_notices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON verification_notices
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
