-- Business-hours calendars and SLA policies (see crm.tickets.v1.SlaPolicyService).
CREATE TABLE business_calendars (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    display_name  text        NOT NULL,
    time_zone     text        NOT NULL,
    -- [{"day": 1-7 (Monday = 1), "start": minute, "end": minute}, ...]
    opening_hours jsonb       NOT NULL,
    holidays      date[]      NOT NULL DEFAULT '{}',
    create_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE sla_policies (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    display_name      text        NOT NULL,
    priority          text        NOT NULL,
    customer_category text        NOT NULL DEFAULT '',
    calendar_id       uuid,
    first_response_ms bigint      NOT NULL,
    resolution_ms     bigint      NOT NULL,
    warning_ratio     double precision NOT NULL,
    create_time       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT sla_policies_one_per_scope UNIQUE (tenant_id, priority, customer_category),
    FOREIGN KEY (tenant_id, calendar_id) REFERENCES business_calendars (tenant_id, id)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['business_calendars', 'sla_policies'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)$p$, t);
    END LOOP;
END $$;
