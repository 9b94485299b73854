-- Ordered intake rules (see crm.tickets.v1.ClassificationRule).
CREATE TABLE classification_rules (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL,
    display_name        text        NOT NULL,
    position            integer     NOT NULL,
    keywords            text[]      NOT NULL DEFAULT '{}',
    channels            text[]      NOT NULL DEFAULT '{}',
    types               text[]      NOT NULL DEFAULT '{}',
    customer_categories text[]      NOT NULL DEFAULT '{}',
    set_category        text        NOT NULL DEFAULT '',
    set_priority        text        NOT NULL DEFAULT '',
    set_team            text        NOT NULL DEFAULT '',
    create_time         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX classification_rules_in_order ON classification_rules (tenant_id, position, id);

ALTER TABLE classification_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE classification_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON classification_rules
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
