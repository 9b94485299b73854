-- Satisfaction surveys, one per ticket (created at its first resolution).
CREATE TABLE surveys (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    ticket_id   uuid        NOT NULL,
    agent       text        NOT NULL,
    team        text        NOT NULL,
    category    text        NOT NULL,
    send_time   timestamptz NOT NULL,
    csat        smallint CHECK (csat BETWEEN 1 AND 5),
    nps         smallint CHECK (nps BETWEEN 0 AND 10),
    comment     text        NOT NULL DEFAULT '',
    answer_time timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT surveys_one_per_ticket UNIQUE (tenant_id, ticket_id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX surveys_by_send_time ON surveys (tenant_id, send_time);

ALTER TABLE surveys ENABLE ROW LEVEL SECURITY;
ALTER TABLE surveys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON surveys
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
