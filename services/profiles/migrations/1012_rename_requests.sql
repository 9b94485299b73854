-- Renaming with approval (客户更名单): whether a tenant requires it, and the
-- requests — at most one pending per customer, enforced here.
CREATE TABLE rename_settings (
    tenant_id         uuid        PRIMARY KEY,
    approval_required boolean     NOT NULL,
    update_time       timestamptz NOT NULL
);

CREATE TABLE rename_requests (
    tenant_id             uuid        NOT NULL,
    customer_id           uuid        NOT NULL,
    id                    uuid        NOT NULL,
    display_name          text        NOT NULL,
    given_name            text        NOT NULL DEFAULT '',
    family_name           text        NOT NULL DEFAULT '',
    reason                text        NOT NULL DEFAULT '',
    previous_display_name text        NOT NULL,
    previous_given_name   text        NOT NULL DEFAULT '',
    previous_family_name  text        NOT NULL DEFAULT '',
    state                 text        NOT NULL CHECK (state IN ('PENDING', 'APPROVED', 'REJECTED')),
    requester             text        NOT NULL,
    reviewer              text        NOT NULL DEFAULT '',
    review_comment        text        NOT NULL DEFAULT '',
    revision              bigint      NOT NULL DEFAULT 1,
    create_time           timestamptz NOT NULL,
    review_time           timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    -- Reviewed exactly when no longer pending, and never by the requester.
    CHECK ((state = 'PENDING') = (review_time IS NULL)),
    CHECK (state = 'PENDING' OR reviewer <> requester)
);

CREATE UNIQUE INDEX rename_requests_one_pending ON rename_requests (tenant_id, customer_id) WHERE state = 'PENDING';
CREATE INDEX rename_requests_by_customer ON rename_requests (tenant_id, customer_id, id);
CREATE INDEX rename_requests_by_state ON rename_requests (tenant_id, state, id);

ALTER TABLE rename_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE rename_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rename_settings
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE rename_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE rename_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rename_requests
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
