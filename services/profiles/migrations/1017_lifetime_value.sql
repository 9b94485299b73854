-- Churn risk and lifetime value: each customer's churn risk (from their
-- own purchase rhythm) and what the tenant's fitted BG/NBD + Gamma-Gamma
-- model predicts of them over the value horizon; the model itself is kept
-- in grading_state beside the cut points, fitted by the grading job.
ALTER TABLE customers
    ADD COLUMN churn_risk            text             NOT NULL DEFAULT '' CHECK (churn_risk IN ('', 'LOW', 'MEDIUM', 'HIGH')),
    ADD COLUMN probability_alive     double precision CHECK (probability_alive BETWEEN 0 AND 1),
    ADD COLUMN expected_purchases    double precision CHECK (expected_purchases >= 0),
    ADD COLUMN expected_value_minor  bigint           CHECK (expected_value_minor >= 0),
    ADD COLUMN expected_value_currency text           NOT NULL DEFAULT '';

ALTER TABLE grading_settings
    ADD COLUMN value_horizon_days integer NOT NULL DEFAULT 365 CHECK (value_horizon_days BETWEEN 30 AND 1825);

ALTER TABLE grading_state
    ADD COLUMN purchase_model     double precision[] CHECK (cardinality(purchase_model) = 4),  -- r, alpha (days), a, b
    ADD COLUMN spend_model        double precision[] CHECK (cardinality(spend_model) = 3),     -- p, q, gamma (minor units)
    ADD COLUMN model_customers    bigint,
    ADD COLUMN model_repeat_check double precision,
    ADD COLUMN model_fit_time     timestamptz;
