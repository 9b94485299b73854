-- Surveys about a ticket: a run started by a ticket's event keeps the
-- ticket; the invitations it sends do too; an answer to one is written
-- onto the ticket through tickets' SurveyService by a job, from a queue row
-- made in the answering transaction (so it happens even if tickets is down
-- at that moment, and once: the row goes when tickets has it).
ALTER TABLE journey_runs ADD COLUMN ticket_id uuid;
ALTER TABLE questionnaire_invitations ADD COLUMN ticket_id uuid;

CREATE TABLE ticket_answers_due (
    tenant_id     uuid        NOT NULL,
    invitation_id uuid        NOT NULL,
    due_time      timestamptz NOT NULL,
    attempts      integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, invitation_id)
);

ALTER TABLE ticket_answers_due ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_answers_due FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_answers_due
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
-- The job finds due rows across tenants (ids and instants only).
CREATE POLICY due_scan ON ticket_answers_due FOR SELECT
    USING (current_setting('crm.scope', true) = 'ticket-answers-scan');
