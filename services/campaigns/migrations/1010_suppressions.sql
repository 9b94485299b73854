-- Addresses that bounced hard (an SMTP 5.1.x refusal, an invalid phone
-- number): nothing more is sent to them, on any purpose, until someone
-- removes the entry. One row per (channel, address); the delivery that
-- bounced is kept as the evidence.
CREATE TABLE suppressions (
    tenant_id   uuid        NOT NULL,
    channel     text        NOT NULL,
    address     text        NOT NULL,
    delivery_id uuid        NOT NULL,
    reason      text        NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, channel, address)
);

ALTER TABLE suppressions ENABLE ROW LEVEL SECURITY;
ALTER TABLE suppressions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON suppressions
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
