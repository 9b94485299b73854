-- Merging duplicate customers, reversibly: a merged customer points at its
-- survivor; each merge keeps what undoing it exactly needs — the involved
-- customers' rows before (to_jsonb), the survivor's revision right after
-- (a later edit is a conflict), every moved record with where it came from
-- and its revision after the move, and the static segments involved.
ALTER TABLE customers ADD COLUMN merged_into uuid;

CREATE TABLE customer_merges (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    survivor_id       uuid        NOT NULL,
    merged_ids        uuid[]      NOT NULL,
    field_sources     jsonb       NOT NULL,
    snapshots         jsonb       NOT NULL,
    survivor_revision bigint      NOT NULL,
    moved             jsonb       NOT NULL,
    static_joined     uuid[]      NOT NULL,
    static_left       jsonb       NOT NULL,
    actor             text        NOT NULL,
    merge_time        timestamptz NOT NULL,
    unmerge_time      timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX customer_merges_by_survivor ON customer_merges (tenant_id, survivor_id);

ALTER TABLE customer_merges ENABLE ROW LEVEL SECURITY;
ALTER TABLE customer_merges FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON customer_merges
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
