-- Customers' purchases and refunds (交易记录): a ledger, never changed or
-- removed. Amounts are whole minor units of their ISO 4217 currency.
CREATE TABLE transactions (
    tenant_id     uuid        NOT NULL,
    customer_id   uuid        NOT NULL,
    id            uuid        NOT NULL,
    external_id   text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('PURCHASE', 'REFUND')),
    currency_code text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    amount_minor  bigint      NOT NULL CHECK (amount_minor >= 0),
    occur_time    timestamptz NOT NULL,
    channel       text        NOT NULL DEFAULT '',
    store         text        NOT NULL DEFAULT '',
    create_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    -- Re-sending a transaction changes nothing: the recording system's id is the key.
    UNIQUE (tenant_id, external_id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

-- A customer's transactions, most recent first (the list and the timeline).
CREATE INDEX transactions_by_customer ON transactions (tenant_id, customer_id, occur_time DESC, id DESC);

-- What was sold, line by line, for queries by product (segments, grading).
CREATE TABLE transaction_items (
    tenant_id        uuid     NOT NULL,
    transaction_id   uuid     NOT NULL,
    position         smallint NOT NULL,
    product          text     NOT NULL,
    sku              text     NOT NULL DEFAULT '',
    quantity         integer  NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint   NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (tenant_id, transaction_id, position),
    FOREIGN KEY (tenant_id, transaction_id) REFERENCES transactions (tenant_id, id)
);

CREATE INDEX transaction_items_by_sku ON transaction_items (tenant_id, sku) WHERE sku <> '';

-- Each customer's spending per currency, kept in the transaction that
-- records a purchase or refund: the inputs of value grading.
CREATE TABLE customer_spending (
    tenant_id           uuid        NOT NULL,
    customer_id         uuid        NOT NULL,
    currency_code       text        NOT NULL,
    purchase_count      bigint      NOT NULL DEFAULT 0,
    refund_count        bigint      NOT NULL DEFAULT 0,
    purchase_minor      bigint      NOT NULL DEFAULT 0,
    refund_minor        bigint      NOT NULL DEFAULT 0,
    first_purchase_time timestamptz,
    last_purchase_time  timestamptz,
    PRIMARY KEY (tenant_id, customer_id, currency_code),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

ALTER TABLE transactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE transactions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON transactions
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE transaction_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE transaction_items FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON transaction_items
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE customer_spending ENABLE ROW LEVEL SECURITY;
ALTER TABLE customer_spending FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON customer_spending
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
