-- Birthday and holiday journeys: each occurrence (a customer's birthday in
-- a year, a holiday's date) is entered by one pass over the customers it
-- concerns, read from profiles page by page. The pass keeps its page token
-- here in the transaction that enters the page's customers, so a pass cut
-- short by a crash resumes where it stopped, and a finished one is not run
-- again.
CREATE TABLE journey_occurrences (
    tenant_id   uuid        NOT NULL,
    journey_id  uuid        NOT NULL,
    -- E.g. "birthdays/2027-03-01", "holidays/mid-autumn/2027-09-15".
    occurrence  text        NOT NULL,
    page_token  text        NOT NULL DEFAULT '',
    done        boolean     NOT NULL DEFAULT false,
    entered     bigint      NOT NULL DEFAULT 0,
    update_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, journey_id, occurrence),
    FOREIGN KEY (tenant_id, journey_id) REFERENCES journeys (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE journey_occurrences ENABLE ROW LEVEL SECURITY;
ALTER TABLE journey_occurrences FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journey_occurrences
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- Which journeys a date starts (a birthday, a holiday): set when a version
-- is published. The scheduler's scan across tenants reads this table, which
-- holds ids only, then each journey's trigger in its tenant's transaction.
CREATE TABLE occasion_journeys (
    tenant_id  uuid NOT NULL,
    journey_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, journey_id),
    FOREIGN KEY (tenant_id, journey_id) REFERENCES journeys (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE occasion_journeys ENABLE ROW LEVEL SECURITY;
ALTER TABLE occasion_journeys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON occasion_journeys
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY schedule_scan ON occasion_journeys FOR SELECT
    USING (current_setting('crm.scope', true) = 'journey-schedule-scan');
