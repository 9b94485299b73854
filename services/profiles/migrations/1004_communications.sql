-- Every contact with a customer (沟通记录), and when to follow up.
CREATE TABLE communications (
    tenant_id         uuid        NOT NULL,
    customer_id       uuid        NOT NULL,
    id                uuid        NOT NULL,
    kind              text        NOT NULL,
    direction         text        NOT NULL DEFAULT '',
    subject           text        NOT NULL DEFAULT '',
    content           text        NOT NULL DEFAULT '',
    occur_time        timestamptz NOT NULL,
    duration_seconds  integer,
    agent             text        NOT NULL DEFAULT '',
    outcome           text        NOT NULL DEFAULT '',
    next_contact_date date,
    revision          bigint      NOT NULL DEFAULT 1,
    create_time       timestamptz NOT NULL,
    update_time       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    CHECK (length(content) <= 65536)
);

-- A customer's records, oldest first (ids are UUIDv7).
CREATE INDEX communications_by_customer ON communications (tenant_id, customer_id, id);
-- An agent's due follow-ups, earliest first (and everyone's).
CREATE INDEX communications_due_by_agent ON communications (tenant_id, agent, next_contact_date, id) WHERE next_contact_date IS NOT NULL;
CREATE INDEX communications_due ON communications (tenant_id, next_contact_date, id) WHERE next_contact_date IS NOT NULL;

ALTER TABLE communications ENABLE ROW LEVEL SECURITY;
ALTER TABLE communications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON communications
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
