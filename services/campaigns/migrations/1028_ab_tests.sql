-- A/B/n tests of journeys' send steps: one row per tested step of a
-- published version, with its winner once chosen. Which group a run's step
-- fell in is kept with the step.
CREATE TABLE ab_tests (
    tenant_id    uuid        NOT NULL,
    journey_id   uuid        NOT NULL,
    version      integer     NOT NULL,
    step_id      text        NOT NULL,
    publish_time timestamptz NOT NULL,
    -- "a", "b", …; empty until chosen.
    winner       text        NOT NULL DEFAULT '',
    decision     text        NOT NULL DEFAULT '',
    detail       text        NOT NULL DEFAULT '',
    decide_time  timestamptz,
    PRIMARY KEY (tenant_id, journey_id, version, step_id),
    FOREIGN KEY (tenant_id, journey_id, version) REFERENCES journey_versions (tenant_id, journey_id, version)
);

ALTER TABLE ab_tests ENABLE ROW LEVEL SECURITY;
ALTER TABLE ab_tests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ab_tests
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
-- The decision job finds the undecided tests across tenants (ids and instants; no winner yet).
CREATE POLICY decide_scan ON ab_tests FOR SELECT
    USING (current_setting('crm.scope', true) = 'ab-test-scan' AND winner = '');

ALTER TABLE journey_run_steps ADD COLUMN variant text NOT NULL DEFAULT '';
