-- When each ticket next needs the SLA job (a warning or breach to record).
-- The job finds due rows across tenants through the read-only `due_scan`
-- policy, which only a transaction that sets crm.scope = 'sla-scan' gets;
-- the table holds ids and instants only — no ticket content — and all work on
-- tickets then happens in tenant-scoped transactions.
ALTER TABLE tickets
    ADD COLUMN fr_warn_recorded    boolean NOT NULL DEFAULT false,
    ADD COLUMN fr_breach_recorded  boolean NOT NULL DEFAULT false,
    ADD COLUMN res_warn_recorded   boolean NOT NULL DEFAULT false,
    ADD COLUMN res_breach_recorded boolean NOT NULL DEFAULT false;

CREATE TABLE sla_timers (
    tenant_id uuid        NOT NULL,
    ticket_id uuid        NOT NULL,
    next_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX sla_timers_due ON sla_timers (next_at);

ALTER TABLE sla_timers ENABLE ROW LEVEL SECURITY;
ALTER TABLE sla_timers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sla_timers
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY due_scan ON sla_timers FOR SELECT
    USING (current_setting('crm.scope', true) = 'sla-scan');
