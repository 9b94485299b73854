-- Match keys looked up through a btree. Under row-level security Postgres
-- evaluates no operator that is not leakproof before the tenant policy, so
-- the GIN index on customers.match_keys (array overlap) could never serve a
-- tenant's lookup: every FindDuplicates read the whole tenant. Text
-- equality is leakproof: one row per (key, customer) here, written with the
-- customer, serves `key = ANY(...)` by index.
DROP INDEX customers_match_keys;

CREATE TABLE customer_match_keys (
    tenant_id   uuid NOT NULL,
    key         text NOT NULL,
    customer_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, key, customer_id)
);
CREATE INDEX customer_match_keys_by_customer ON customer_match_keys (tenant_id, customer_id);

ALTER TABLE customer_match_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE customer_match_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON customer_match_keys
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- The duplicate scan finds the tenants that have customers (to start their
-- scans, whoever created the customers) through this read-only policy.
CREATE POLICY duplicate_scan ON customers FOR SELECT
    USING (current_setting('crm.scope', true) = 'duplicate-scan');
