-- Questionnaires journeys send, and the invitations sent: one per journey
-- run's step (UNIQUE source: a retried step invites once), answered at most
-- once (the answer is written by a conditional UPDATE) before it expires.
CREATE TABLE questionnaires (
    tenant_id          uuid        NOT NULL,
    id                 uuid        NOT NULL,
    display_name       text        NOT NULL,
    questions          jsonb       NOT NULL,
    answer_within_days integer     NOT NULL CHECK (answer_within_days BETWEEN 1 AND 90),
    create_time        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE questionnaire_invitations (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    questionnaire_id uuid        NOT NULL,
    customer_id      uuid        NOT NULL,
    journey_id       uuid,
    source           text        NOT NULL,
    expire_time      timestamptz NOT NULL,
    answer_time      timestamptz,
    answers          jsonb,
    create_time      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, source),
    FOREIGN KEY (tenant_id, questionnaire_id) REFERENCES questionnaires (tenant_id, id)
);

CREATE INDEX questionnaire_invitations_by_questionnaire ON questionnaire_invitations (tenant_id, questionnaire_id);

ALTER TABLE questionnaires ENABLE ROW LEVEL SECURITY;
ALTER TABLE questionnaires FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON questionnaires
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE questionnaire_invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE questionnaire_invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON questionnaire_invitations
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
