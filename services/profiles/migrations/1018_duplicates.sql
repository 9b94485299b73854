-- Duplicate detection: each customer's match keys (normalised emails and
-- phones, name keys by pinyin and letters; NULL until computed — customers
-- from before this migration get theirs from the scan job), the pairs the
-- tenant-wide scan found, and the scan's position per tenant (the last
-- change it covered). A row in duplicate_scans also means "this tenant has
-- customers" (CreateCustomer adds it): the job finds the tenants through
-- the read-only `duplicate_scan` policy.
ALTER TABLE customers ADD COLUMN match_keys text[];
CREATE INDEX customers_match_keys ON customers USING gin (match_keys);

CREATE TABLE duplicate_pairs (
    tenant_id    uuid             NOT NULL,
    customer_id  uuid             NOT NULL,
    duplicate_id uuid             NOT NULL,
    score        double precision NOT NULL CHECK (score > 0 AND score <= 1),
    signals      text[]           NOT NULL,
    find_time    timestamptz      NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, duplicate_id),
    CHECK (customer_id < duplicate_id)
);
CREATE INDEX duplicate_pairs_by_score ON duplicate_pairs (tenant_id, score DESC, customer_id, duplicate_id);
CREATE INDEX duplicate_pairs_by_duplicate ON duplicate_pairs (tenant_id, duplicate_id);

CREATE TABLE duplicate_scans (
    tenant_id     uuid        PRIMARY KEY,
    scanned_time  timestamptz NOT NULL DEFAULT 'epoch',
    scanned_id    uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'
);

ALTER TABLE duplicate_pairs ENABLE ROW LEVEL SECURITY;
ALTER TABLE duplicate_pairs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON duplicate_pairs
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE duplicate_scans ENABLE ROW LEVEL SECURITY;
ALTER TABLE duplicate_scans FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON duplicate_scans
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY duplicate_scan ON duplicate_scans FOR SELECT
    USING (current_setting('crm.scope', true) = 'duplicate-scan');

-- Tenants with customers today are scanned from the start.
INSERT INTO duplicate_scans (tenant_id) SELECT DISTINCT tenant_id FROM customers;
