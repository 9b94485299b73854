-- Journey runs: one row per customer's start on a journey version, and the
-- steps it took. A run enters exactly once per entry key: the unique key
-- (journey, customer, entry_key) is "once" for journeys a customer enters
-- once, else the trigger's own identity (the stream event, the request id,
-- the birthday's year), so a replayed event or a retried call finds the run
-- it started before. A step is recorded in the transaction that does it and
-- moves the run on, under the run's row lock and its step count, so a
-- restarted runner never repeats one.
CREATE TABLE journey_runs (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    journey_id       uuid        NOT NULL,
    version          integer     NOT NULL,
    customer_id      uuid        NOT NULL,
    entry_key        text        NOT NULL,
    -- What started it, for people: "profiles event 123", "request abc".
    trigger          text        NOT NULL DEFAULT '',
    state            text        NOT NULL CHECK (state IN ('ACTIVE', 'WAITING', 'COMPLETED', 'EXITED')),
    -- The step to take next (or the wait step it is in); NULL once ended.
    step_id          text,
    -- Steps taken so far: the next history entry's number.
    step_count       integer     NOT NULL DEFAULT 0,
    -- When the runner takes it next: now for ACTIVE, the wake-up for WAITING,
    -- pushed out by a claim's lease; NULL once ended.
    due_time         timestamptz,
    exit_on_purchase boolean     NOT NULL,
    enter_time       timestamptz NOT NULL,
    end_time         timestamptz,
    end_reason       text        NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, journey_id, customer_id, entry_key),
    FOREIGN KEY (tenant_id, journey_id, version) REFERENCES journey_versions (tenant_id, journey_id, version),
    CHECK ((state IN ('COMPLETED', 'EXITED')) = (due_time IS NULL))
);

-- ListJourneyRuns by journey and by customer, newest first (ids are UUIDv7).
CREATE INDEX journey_runs_by_journey ON journey_runs (tenant_id, journey_id, id DESC);
CREATE INDEX journey_runs_by_customer ON journey_runs (tenant_id, customer_id, id DESC);
-- The runner's scan across tenants for due runs, and its claim within one
-- tenant (so one tenant's backlog does not slow another's claims).
CREATE INDEX journey_runs_due ON journey_runs (due_time) WHERE due_time IS NOT NULL;
CREATE INDEX journey_runs_due_by_tenant ON journey_runs (tenant_id, due_time) WHERE due_time IS NOT NULL;

CREATE TABLE journey_run_steps (
    tenant_id   uuid        NOT NULL,
    run_id      uuid        NOT NULL,
    seq         integer     NOT NULL,
    step_id     text        NOT NULL,
    outcome     text        NOT NULL,
    delivery_id uuid,
    detail      text        NOT NULL DEFAULT '',
    time        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, run_id, seq),
    FOREIGN KEY (tenant_id, run_id) REFERENCES journey_runs (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE journey_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE journey_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journey_runs
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
-- The runner finds tenants with due runs across tenants (ids and instants only), then works per tenant.
CREATE POLICY due_scan ON journey_runs FOR SELECT
    USING (current_setting('crm.scope', true) = 'journey-scan' AND due_time IS NOT NULL);

ALTER TABLE journey_run_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE journey_run_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journey_run_steps
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

