-- Journeys: the editable draft of each, and the versions published from it.
-- A definition is stored as JSON in the shape of the domain's
-- `journey::Definition` (serde, externally tagged enums: {"send": {...}},
-- "exit"); a published version is never updated, so runs on it keep
-- following what they started on.
CREATE TABLE journeys (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    display_name      text        NOT NULL,
    draft             jsonb       NOT NULL,
    state             text        NOT NULL CHECK (state IN ('DRAFT', 'ACTIVE', 'PAUSED')),
    published_version integer     NOT NULL DEFAULT 0,
    revision          bigint      NOT NULL DEFAULT 1,
    create_time       timestamptz NOT NULL,
    update_time       timestamptz NOT NULL,
    publish_time      timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- ListJourneys pages newest first by id (UUIDv7): the primary key serves it.

CREATE TABLE journey_versions (
    tenant_id    uuid        NOT NULL,
    journey_id   uuid        NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    definition   jsonb       NOT NULL,
    publish_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, journey_id, version),
    FOREIGN KEY (tenant_id, journey_id) REFERENCES journeys (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE journeys ENABLE ROW LEVEL SECURITY;
ALTER TABLE journeys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journeys
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

ALTER TABLE journey_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE journey_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON journey_versions
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
