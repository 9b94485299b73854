-- Bulk export (issue 15). Every export is audited: the entry is written
-- (RUNNING) before the first byte leaves and finished with what was sent.
-- The entry keeps what was asked (a filter may name an email, which only
-- `pii` holders can filter on), never the exported data.
CREATE TABLE data_exports (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('CUSTOMERS', 'TRANSACTIONS')),
    format           text NOT NULL CHECK (format IN ('CSV', 'XLSX')),
    actor            text NOT NULL,
    filter           text NOT NULL DEFAULT '',
    segment_id       uuid,
    order_by         text NOT NULL DEFAULT '',
    range_start_time timestamptz,
    range_end_time   timestamptz,
    columns          text[] NOT NULL,
    -- Personal data went out unmasked (the caller held `pii`).
    personal_data    boolean NOT NULL,
    state            text NOT NULL CHECK (state IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    row_count        bigint NOT NULL DEFAULT 0,
    size_bytes       bigint NOT NULL DEFAULT 0,
    failure_message  text NOT NULL DEFAULT '',
    create_time      timestamptz NOT NULL,
    finish_time      timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- Imports keep personal data only as long as they need it: a job's stored
-- file and refused rows are deleted a retention period (CRM_IMPORT_RETENTION_SECS)
-- after it ended, or after its upload if it never started; purge_time says
-- when. The sweep finds due jobs across tenants by their ids and times only.
ALTER TABLE import_jobs ADD COLUMN purge_time timestamptz;
CREATE INDEX import_jobs_to_purge ON import_jobs ((coalesce(end_time, create_time))) WHERE purge_time IS NULL AND state <> 'RUNNING';
CREATE POLICY import_sweep ON import_jobs FOR SELECT
    USING (current_setting('crm.scope', true) = 'import-sweep');

-- Transactions by occur time, for exports of a time range.
CREATE INDEX transactions_by_occur_time ON transactions (tenant_id, occur_time, id);

ALTER TABLE data_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON data_exports
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
