-- The accounts a customer pays from (客户帐号). At most one primary per
-- customer, enforced here (the partial unique index), not only by code.
CREATE TABLE payment_accounts (
    tenant_id      uuid        NOT NULL,
    customer_id    uuid        NOT NULL,
    id             uuid        NOT NULL,
    holder_name    text        NOT NULL,
    bank           text        NOT NULL,
    branch         text        NOT NULL DEFAULT '',
    account_number text        NOT NULL,
    is_primary     boolean     NOT NULL DEFAULT false,
    revision       bigint      NOT NULL DEFAULT 1,
    create_time    timestamptz NOT NULL,
    update_time    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

-- A customer's accounts, oldest first (ids are UUIDv7).
CREATE INDEX payment_accounts_by_customer ON payment_accounts (tenant_id, customer_id, id);
CREATE UNIQUE INDEX payment_accounts_one_primary ON payment_accounts (tenant_id, customer_id) WHERE is_primary;

ALTER TABLE payment_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON payment_accounts
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
