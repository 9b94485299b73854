-- Single-use coupons issued to customers. A coupon is issued once per
-- source (a request id, a journey run's step: UNIQUE), its code is unique in
-- the tenant, and it is redeemed by one conditional UPDATE — of concurrent
-- redemptions the row lock lets exactly one find it unredeemed.
CREATE TABLE coupons (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL,
    code             text        NOT NULL,
    customer_id      uuid        NOT NULL,
    currency_code    text        NOT NULL,
    value_minor      bigint      NOT NULL CHECK (value_minor > 0),
    description      text        NOT NULL DEFAULT '',
    valid_from       timestamptz NOT NULL,
    expire_time      timestamptz NOT NULL CHECK (expire_time > valid_from),
    redeem_time      timestamptz,
    redeem_reference text        NOT NULL DEFAULT '',
    source           text        NOT NULL,
    create_time      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, code),
    UNIQUE (tenant_id, source)
);

-- A customer's coupons, newest first.
CREATE INDEX coupons_by_customer ON coupons (tenant_id, customer_id, id DESC);

ALTER TABLE coupons ENABLE ROW LEVEL SECURITY;
ALTER TABLE coupons FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON coupons
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
