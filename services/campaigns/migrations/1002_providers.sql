-- Delivery providers, one per tenant and channel. `credentials` holds the
-- secret settings (passwords, API keys) encrypted with AES-256-GCM under the
-- service's credentials key, bound to the tenant and provider id; the
-- database never sees them in clear.
CREATE TABLE providers (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL,
    display_name   text        NOT NULL,
    channel        text        NOT NULL,
    kind           text        NOT NULL,
    max_per_second integer     NOT NULL DEFAULT 0,
    settings       jsonb       NOT NULL,
    credentials    bytea,
    revision       bigint      NOT NULL DEFAULT 1,
    create_time    timestamptz NOT NULL,
    update_time    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT providers_one_per_channel UNIQUE (tenant_id, channel)
);
CREATE INDEX providers_by_display_name ON providers (tenant_id, display_name, id);

ALTER TABLE providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON providers
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
