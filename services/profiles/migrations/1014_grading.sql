-- Value grading (RFM) and lifecycle stages: each customer's scores, the
-- tenant's settings (defaults apply until set), and the grading state the
-- job keeps — the quintile cut points and when the tenant is due again. A
-- row in grading_state also means "this tenant grades": the job finds the
-- tenants through the read-only `grading_scan` policy (ids and times only).
ALTER TABLE customers
    ADD COLUMN recency_score   smallint CHECK (recency_score BETWEEN 1 AND 5),
    ADD COLUMN frequency_score smallint CHECK (frequency_score BETWEEN 1 AND 5),
    ADD COLUMN monetary_score  smallint CHECK (monetary_score BETWEEN 1 AND 5),
    ADD COLUMN lifecycle_time  timestamptz;

CREATE TABLE grading_settings (
    tenant_id              uuid             PRIMARY KEY,
    currency_code          text             NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    high_min_score         integer          NOT NULL,
    medium_min_score       integer          NOT NULL,
    new_days               integer          NOT NULL CHECK (new_days BETWEEN 1 AND 3650),
    at_risk_days           integer          NOT NULL CHECK (at_risk_days BETWEEN 1 AND 3650),
    at_risk_gap_factor     double precision NOT NULL CHECK (at_risk_gap_factor BETWEEN 1 AND 100),
    lapsed_days            integer          NOT NULL CHECK (lapsed_days BETWEEN 1 AND 3650),
    loyal_min_purchases    integer          NOT NULL CHECK (loyal_min_purchases BETWEEN 2 AND 1000000),
    won_back_days          integer          NOT NULL CHECK (won_back_days BETWEEN 1 AND 3650),
    regrade_interval_hours integer          NOT NULL CHECK (regrade_interval_hours BETWEEN 1 AND 168),
    update_time            timestamptz      NOT NULL,
    CHECK (medium_min_score BETWEEN 3 AND 15 AND high_min_score BETWEEN 3 AND 15 AND medium_min_score < high_min_score),
    CHECK (at_risk_days < lapsed_days)
);

CREATE TABLE grading_state (
    tenant_id        uuid        PRIMARY KEY,
    recency_days     integer[],
    frequency        bigint[],
    monetary         bigint[],
    graded_customers bigint      NOT NULL DEFAULT 0,
    compute_time     timestamptz,
    next_run_time    timestamptz NOT NULL
);

ALTER TABLE grading_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE grading_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON grading_settings
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE grading_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE grading_state FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON grading_state
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY grading_scan ON grading_state FOR SELECT
    USING (current_setting('crm.scope', true) = 'grading-scan');
