-- Loyalty points: a ledger of entries per customer and the balance they sum
-- to. Every entry has a source unique for its customer (a request id, later
-- a transaction or a journey step), so a retried or replayed grant or
-- redemption is never booked twice. Granted points are kept as lots that
-- redemptions and expiry consume, soonest-expiring first; the balance can
-- never go below zero (CHECK), whatever a bug or a race would do.
CREATE TABLE points_entries (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    customer_id   uuid        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('GRANT', 'REDEEM', 'EXPIRE')),
    points        bigint      NOT NULL CHECK (points <> 0),
    source        text        NOT NULL,
    reason        text        NOT NULL DEFAULT '',
    -- A grant's lot: when its points expire (NULL: never) and how many are left.
    expire_time   timestamptz,
    remaining     bigint      NOT NULL DEFAULT 0 CHECK (remaining >= 0),
    balance_after bigint      NOT NULL CHECK (balance_after >= 0),
    create_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, customer_id, source),
    CHECK (kind = 'GRANT' OR remaining = 0),
    CHECK ((kind = 'GRANT') = (points > 0))
);

-- A customer's entries newest first; a customer's open lots by expiry.
CREATE INDEX points_entries_by_customer ON points_entries (tenant_id, customer_id, id DESC);
CREATE INDEX points_lots_open ON points_entries (tenant_id, customer_id, expire_time) WHERE remaining > 0;
-- The expiry job's scan across tenants: open lots by expiry.
CREATE INDEX points_lots_expiring ON points_entries (expire_time) WHERE remaining > 0 AND expire_time IS NOT NULL;

CREATE TABLE points_balances (
    tenant_id       uuid        NOT NULL,
    customer_id     uuid        NOT NULL,
    balance         bigint      NOT NULL CHECK (balance >= 0),
    lifetime_earned bigint      NOT NULL DEFAULT 0,
    update_time     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

ALTER TABLE points_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE points_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON points_entries
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
-- The expiry job finds due lots across tenants (crm.scope = 'points-expiry-scan'), then works per tenant;
-- the scope sees open lots with an expiry only.
CREATE POLICY expiry_scan ON points_entries FOR SELECT
    USING (current_setting('crm.scope', true) = 'points-expiry-scan' AND remaining > 0 AND expire_time IS NOT NULL);

ALTER TABLE points_balances ENABLE ROW LEVEL SECURITY;
ALTER TABLE points_balances FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON points_balances
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
