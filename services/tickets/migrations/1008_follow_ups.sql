-- Follow-up visits scheduled when tickets are resolved.
CREATE TABLE follow_ups (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    ticket_id     uuid        NOT NULL,
    agent         text        NOT NULL,
    due_time      timestamptz NOT NULL,
    state         text        NOT NULL,
    reached       boolean     NOT NULL DEFAULT false,
    satisfied     boolean     NOT NULL DEFAULT false,
    notes         text        NOT NULL DEFAULT '',
    completed_by  text        NOT NULL DEFAULT '',
    complete_time timestamptz,
    create_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX follow_ups_scheduled ON follow_ups (tenant_id, agent, due_time) WHERE state = 'SCHEDULED';
CREATE INDEX follow_ups_by_ticket ON follow_ups (tenant_id, ticket_id);

ALTER TABLE follow_ups ENABLE ROW LEVEL SECURITY;
ALTER TABLE follow_ups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON follow_ups
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
