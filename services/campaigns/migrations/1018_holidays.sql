-- A tenant's holiday calendar: the built-in holidays (in code, with their
-- rules) and the tenant's own. A row exists for each holiday of the tenant's
-- own (with its rule) and for each built-in the tenant renamed or disabled
-- (rule NULL: the built-in's rule applies).
CREATE TABLE holidays (
    tenant_id    uuid        NOT NULL,
    id           text        NOT NULL,
    display_name text        NOT NULL,
    -- {"kind": "GREGORIAN"|"LUNAR", "month": m, "day": d} | {"kind": "LUNAR_NEW_YEARS_EVE"} | {"kind": "SOLAR_TERM", "degrees": n}
    rule         jsonb,
    disabled     boolean     NOT NULL DEFAULT false,
    revision     bigint      NOT NULL DEFAULT 1,
    create_time  timestamptz NOT NULL,
    update_time  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

ALTER TABLE holidays ENABLE ROW LEVEL SECURITY;
ALTER TABLE holidays FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON holidays
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
