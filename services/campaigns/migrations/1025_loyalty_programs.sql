-- The tenant's loyalty programme: how purchases earn points and the member
-- tiers (stored as JSON in the shape of the domain's `loyalty_program::Program`).
-- A purchase's earning is an ordinary GRANT entry with source
-- "transactions/{id}" (unique per customer: a replayed event earns nothing
-- twice) and the spend it came from, which SPEND tiers sum.
CREATE TABLE loyalty_programs (
    tenant_id   uuid        PRIMARY KEY,
    program     jsonb       NOT NULL,
    revision    bigint      NOT NULL DEFAULT 1,
    update_time timestamptz NOT NULL
);

ALTER TABLE loyalty_programs ENABLE ROW LEVEL SECURITY;
ALTER TABLE loyalty_programs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON loyalty_programs
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

ALTER TABLE points_entries ADD COLUMN spend_minor bigint NOT NULL DEFAULT 0 CHECK (spend_minor >= 0);
ALTER TABLE points_balances ADD COLUMN tier text NOT NULL DEFAULT '';
ALTER TABLE points_balances ADD COLUMN tier_progress bigint NOT NULL DEFAULT 0;
