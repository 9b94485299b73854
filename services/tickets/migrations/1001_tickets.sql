-- Tickets, their comments and their audit timeline; tenant-scoped by RLS with
-- FORCE (the service's login role is not the owner).
CREATE TABLE tickets (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL,
    customer_id         uuid        NOT NULL,
    subject             text        NOT NULL,
    description         text        NOT NULL DEFAULT '',
    type                text        NOT NULL,
    channel             text        NOT NULL DEFAULT '',
    priority            text        NOT NULL,
    category            text        NOT NULL DEFAULT '',
    tags                text[]      NOT NULL DEFAULT '{}',
    status              text        NOT NULL,
    assignee            text        NOT NULL DEFAULT '',
    team                text        NOT NULL DEFAULT '',
    first_response_time timestamptz,
    resolve_time        timestamptz,
    pending_since       timestamptz,
    pending_ms          bigint      NOT NULL DEFAULT 0,
    revision            bigint      NOT NULL DEFAULT 1,
    create_time         timestamptz NOT NULL,
    update_time         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX tickets_newest ON tickets (tenant_id, create_time DESC, id DESC);
CREATE INDEX tickets_by_status ON tickets (tenant_id, status, priority);
CREATE INDEX tickets_by_customer ON tickets (tenant_id, customer_id);
CREATE INDEX tickets_by_assignee ON tickets (tenant_id, assignee);
CREATE INDEX tickets_tags ON tickets USING gin (tags);

CREATE TABLE ticket_comments (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    ticket_id   uuid        NOT NULL,
    body        text        NOT NULL,
    public      boolean     NOT NULL,
    author      text        NOT NULL,
    attachments text[]      NOT NULL DEFAULT '{}',
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX ticket_comments_by_ticket ON ticket_comments (tenant_id, ticket_id, id);

CREATE TABLE ticket_events (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    ticket_id   uuid        NOT NULL,
    kind        text        NOT NULL,
    actor       text        NOT NULL,
    detail      text        NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX ticket_events_by_ticket ON ticket_events (tenant_id, ticket_id, id);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tickets', 'ticket_comments', 'ticket_events'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)$p$, t);
    END LOOP;
END $$;
