-- Bulk import (issue 15). A job's file is kept in chunks until the job is
-- done with it; its refused rows are kept with their cells and problems so
-- that they can be listed and downloaded for fixing; a RUNNING job has a
-- row in import_queue, which the worker scans across tenants (ids and
-- instants only) and leases.
CREATE TABLE import_jobs (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    kind            text NOT NULL,
    file_name       text NOT NULL,
    format          text NOT NULL,
    encoding        text NOT NULL,
    delimiter       text NOT NULL,
    sheet           text NOT NULL,
    size_bytes      bigint NOT NULL,
    sha256          text NOT NULL,
    total_rows      bigint NOT NULL,
    headers         text[] NOT NULL,
    suggested       jsonb NOT NULL,
    state           text NOT NULL CHECK (state IN ('UPLOADED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    settings        jsonb,
    -- Each StartImportJob is a new run: the refused rows belong to one.
    run             integer NOT NULL DEFAULT 0,
    -- The number of the last row the current run has judged (1: the header).
    cursor_row      bigint NOT NULL DEFAULT 1,
    rows_read       bigint NOT NULL DEFAULT 0,
    rows_valid      bigint NOT NULL DEFAULT 0,
    rows_failed     bigint NOT NULL DEFAULT 0,
    rows_created    bigint NOT NULL DEFAULT 0,
    rows_updated    bigint NOT NULL DEFAULT 0,
    failure_message text NOT NULL DEFAULT '',
    actor           text NOT NULL,
    request_id      text NOT NULL,
    create_time     timestamptz NOT NULL,
    start_time      timestamptz,
    end_time        timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX import_jobs_request_id ON import_jobs (tenant_id, request_id) WHERE request_id <> '';

CREATE TABLE import_file_chunks (
    tenant_id uuid NOT NULL,
    job_id    uuid NOT NULL,
    seq       integer NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (tenant_id, job_id, seq),
    -- An upload stores the chunks as they arrive and the job last, in one transaction.
    FOREIGN KEY (tenant_id, job_id) REFERENCES import_jobs (tenant_id, id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE import_errors (
    tenant_id  uuid NOT NULL,
    job_id     uuid NOT NULL,
    run        integer NOT NULL,
    row_number bigint NOT NULL,
    cells      jsonb NOT NULL,
    problems   jsonb NOT NULL,
    PRIMARY KEY (tenant_id, job_id, run, row_number),
    FOREIGN KEY (tenant_id, job_id) REFERENCES import_jobs (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE import_queue (
    tenant_id   uuid NOT NULL,
    job_id      uuid NOT NULL,
    lease_until timestamptz NOT NULL,
    -- Who holds the lease: a batch commits only while its worker still does.
    lease_token uuid,
    PRIMARY KEY (tenant_id, job_id),
    FOREIGN KEY (tenant_id, job_id) REFERENCES import_jobs (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX import_queue_due ON import_queue (lease_until);

-- Upserts by external id find their customers through this index.
CREATE INDEX customers_external_id ON customers (tenant_id, (attributes ->> 'external_id')) WHERE attributes ? 'external_id';

ALTER TABLE import_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_jobs
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE import_file_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_file_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_file_chunks
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE import_errors ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_errors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_errors
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE import_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_queue FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_queue
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
-- The worker finds the due jobs of every tenant: ids and lease instants only.
CREATE POLICY import_scan ON import_queue FOR SELECT
    USING (current_setting('crm.scope', true) = 'import-scan');
