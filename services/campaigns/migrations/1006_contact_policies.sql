-- Each tenant's contact rules (frequency caps, quiet hours, its time zone);
-- a tenant without a row has the defaults (none of them).
CREATE TABLE contact_policies (
    tenant_id   uuid        PRIMARY KEY,
    time_zone   text        NOT NULL DEFAULT '',
    quiet_start integer,
    quiet_end   integer,
    caps        jsonb       NOT NULL DEFAULT '[]',
    revision    bigint      NOT NULL DEFAULT 1,
    update_time timestamptz NOT NULL
);

ALTER TABLE contact_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_policies
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- Frequency caps count a customer's marketing messages sent (or being sent)
-- on a channel since the start of their local day and week.
CREATE INDEX deliveries_marketing_sent ON deliveries (tenant_id, customer_id, channel, (coalesce(send_time, update_time)))
    WHERE purpose = 'MARKETING' AND status IN ('SENT', 'SUBMITTING');
