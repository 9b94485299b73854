-- The devices push notifications go to: one FCM registration token per app
-- install, registered by the customer's app (or staff) and forgotten when
-- FCM calls it unregistered. A token is unique in the tenant — registering
-- it again updates the row (and moves it to whoever logged in on the device).
CREATE TABLE devices (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    customer_id uuid        NOT NULL,
    token       text        NOT NULL,
    platform    text        NOT NULL,
    app_version text        NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, token)
);

-- A push goes to the customer's most recently registered devices.
CREATE INDEX devices_by_customer ON devices (tenant_id, customer_id, update_time DESC, id DESC);
-- ListDevices pages the tenant's devices newest registration first.
CREATE INDEX devices_by_update ON devices (tenant_id, update_time DESC, id DESC);

ALTER TABLE devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE devices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON devices
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
