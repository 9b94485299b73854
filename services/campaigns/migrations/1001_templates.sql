-- Message templates. Contents (one per locale) are JSONB: they are read and
-- written whole with the template, never queried inside.
CREATE TABLE templates (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    display_name     text        NOT NULL,
    channel          text        NOT NULL,
    purpose          text        NOT NULL,
    contents         jsonb       NOT NULL,
    default_locale   text        NOT NULL,
    locked_variables text[]      NOT NULL DEFAULT '{}',
    variables        text[]      NOT NULL DEFAULT '{}',
    revision         bigint      NOT NULL DEFAULT 1,
    create_time      timestamptz NOT NULL,
    update_time      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX templates_by_display_name ON templates (tenant_id, display_name, id);

ALTER TABLE templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE templates FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON templates
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
