-- Per-tenant settings of the service desk (crm.tickets.v1.TicketSettings).
-- A tenant without a row, or a NULL value, uses the service's default.
CREATE TABLE ticket_settings (
    tenant_id            uuid PRIMARY KEY,
    follow_up_delay_secs bigint CHECK (follow_up_delay_secs BETWEEN 0 AND 31536000),
    revision             bigint NOT NULL DEFAULT 1,
    update_time          timestamptz NOT NULL
);

ALTER TABLE ticket_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_settings
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
