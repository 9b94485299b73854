-- SLA tracking per ticket: the policy and calendar chosen at intake, and for
-- each target (first response, resolution) its clock — business time banked
-- before the current running period, when that period began — plus the due
-- and warning instants while running, so reads need no calendar.
ALTER TABLE tickets
    ADD COLUMN sla_policy_id     uuid,
    ADD COLUMN sla_calendar_id   uuid,
    ADD COLUMN sla_warning_ratio double precision NOT NULL DEFAULT 0.8,
    ADD COLUMN fr_target_ms      bigint,
    ADD COLUMN fr_consumed_ms    bigint NOT NULL DEFAULT 0,
    ADD COLUMN fr_since          timestamptz,
    ADD COLUMN fr_due            timestamptz,
    ADD COLUMN fr_warn_at        timestamptz,
    ADD COLUMN fr_breached       boolean NOT NULL DEFAULT false,
    ADD COLUMN res_target_ms     bigint,
    ADD COLUMN res_consumed_ms   bigint NOT NULL DEFAULT 0,
    ADD COLUMN res_since         timestamptz,
    ADD COLUMN res_due           timestamptz,
    ADD COLUMN res_warn_at       timestamptz,
    ADD COLUMN res_breached      boolean NOT NULL DEFAULT false;

-- Tickets whose SLA is running, by due time (for reports and the escalation job).
CREATE INDEX tickets_resolution_due ON tickets (tenant_id, res_due) WHERE res_due IS NOT NULL;
CREATE INDEX tickets_first_response_due ON tickets (tenant_id, fr_due) WHERE fr_due IS NOT NULL;
