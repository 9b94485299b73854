-- When profiles merges customers (CustomersMerged), their tickets are
-- re-pointed to the survivor; each move is kept so that an unmerge
-- (CustomersUnmerged) puts back exactly the tickets it moved.
CREATE TABLE ticket_customer_moves (
    tenant_id        uuid NOT NULL,
    merge_id         uuid NOT NULL,
    ticket_id        uuid NOT NULL,
    from_customer_id uuid NOT NULL,
    to_customer_id   uuid NOT NULL,
    PRIMARY KEY (tenant_id, merge_id, ticket_id)
);

ALTER TABLE ticket_customer_moves ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_customer_moves FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_customer_moves
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
