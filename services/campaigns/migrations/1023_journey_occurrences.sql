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

-- The scheduler finds the ACTIVE journeys across tenants (ids only), then
-- reads each one's trigger in its tenant's transaction.
CREATE POLICY schedule_scan ON journeys FOR SELECT
    USING (current_setting('crm.scope', true) = 'journey-schedule-scan' AND state = 'ACTIVE');
