-- Webhooks (crm_kit::webhooks): a tenant's subscriptions to this service's
-- events, each delivered in position order from its cursor, and the log of
-- delivery attempts. Signing secrets are sealed (crm_kit::sealed) with the
-- webhook's id as associated data.
CREATE TABLE webhooks (
    tenant_id                   uuid        NOT NULL,
    id                          uuid        NOT NULL,
    target_uri                  text        NOT NULL,
    event_types                 text[]      NOT NULL DEFAULT '{}',
    description                 text        NOT NULL DEFAULT '',
    state                       text        NOT NULL,
    disabled_reason             text        NOT NULL DEFAULT '',
    secret                      bytea       NOT NULL,
    previous_secret             bytea,
    previous_secret_expire_time timestamptz,
    revision                    bigint      NOT NULL DEFAULT 1,
    create_time                 timestamptz NOT NULL,
    update_time                 timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT webhooks_state CHECK (state IN ('ACTIVE', 'DISABLED'))
);

ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhooks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhooks
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- Where each webhook's delivery stands, apart from the webhook itself so
-- that deliveries never change its etag. `position`: the last event
-- delivered. `due_time`: when the head event is tried again after a failure
-- (NULL: deliver as events come). A replica delivers a webhook only while it
-- holds the lease; `generation` moves on whenever the webhook is replayed or
-- changed, so that a worker still running on the old settings cannot write
-- its progress over the new start. Dispatchers find their work through the
-- read-only `webhook_scan` policy: this table holds ids, positions and
-- instants only.
CREATE TABLE webhook_cursors (
    tenant_id     uuid        NOT NULL,
    webhook_id    uuid        NOT NULL,
    active        boolean     NOT NULL,
    position      bigint      NOT NULL,
    generation    bigint      NOT NULL DEFAULT 0,
    due_time      timestamptz,
    failures      integer     NOT NULL DEFAULT 0,
    failing_since timestamptz,
    lease_owner   uuid,
    lease_until   timestamptz,
    PRIMARY KEY (tenant_id, webhook_id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_cursors_active ON webhook_cursors (due_time) WHERE active;

ALTER TABLE webhook_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_cursors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_cursors
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY webhook_scan ON webhook_cursors FOR SELECT
    USING (current_setting('crm.scope', true) = 'webhook-scan');

-- Every delivery attempt, newest first per webhook; pruned with the outbox.
CREATE TABLE webhook_attempts (
    tenant_id         uuid        NOT NULL,
    webhook_id        uuid        NOT NULL,
    id                uuid        NOT NULL,
    event_id          uuid        NOT NULL,
    event_type        text        NOT NULL,
    position          bigint      NOT NULL,
    attempt           integer     NOT NULL,
    succeeded         boolean     NOT NULL,
    response_code     integer     NOT NULL,
    error             text        NOT NULL,
    latency_us        bigint      NOT NULL,
    attempt_time      timestamptz NOT NULL,
    next_attempt_time timestamptz,
    PRIMARY KEY (tenant_id, webhook_id, id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (tenant_id, attempt_time);

ALTER TABLE webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_attempts
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- Outbox retention (crm_kit::outbox::prune): the highest position pruned per
-- tenant, so that a consumer asking to resume below it learns that it
-- missed events instead of silently skipping them.
CREATE TABLE outbox_pruned (
    tenant_id  uuid        PRIMARY KEY,
    position   bigint      NOT NULL,
    prune_time timestamptz NOT NULL
);

ALTER TABLE outbox_pruned ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_pruned FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox_pruned
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

CREATE INDEX outbox_by_time ON outbox (time);
-- Read-only scopes across tenants: the retention job finds the tenants with
-- events past retention, and webhook dispatchers the webhooks with events
-- after their cursors (both select tenant ids and positions only), then
-- they work tenant by tenant.
CREATE POLICY background_scan ON outbox FOR SELECT
    USING (current_setting('crm.scope', true) IN ('outbox-retention', 'webhook-scan'));
