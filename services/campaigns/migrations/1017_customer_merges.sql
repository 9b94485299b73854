-- When profiles merges customers (CustomersMerged), what campaigns holds per
-- customer that should follow the person — their devices, unsubscribes and
-- open complaints — moves to the survivor; each move is kept so that an
-- unmerge (CustomersUnmerged) puts back exactly what it moved. Deliveries
-- (the ledger and sent log) stay with the customer they were sent to.
CREATE TABLE customer_moves (
    tenant_id        uuid NOT NULL,
    merge_id         uuid NOT NULL,
    kind             text NOT NULL,
    row_id           uuid NOT NULL,
    from_customer_id uuid NOT NULL,
    to_customer_id   uuid NOT NULL,
    PRIMARY KEY (tenant_id, merge_id, kind, row_id)
);

ALTER TABLE customer_moves ENABLE ROW LEVEL SECURITY;
ALTER TABLE customer_moves FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON customer_moves
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
