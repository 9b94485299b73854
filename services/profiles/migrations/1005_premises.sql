-- Premises (房产) and who holds them over time (迁入/迁出). An occupancy
-- covers [move_in_date, move_out_date): the exclusion constraint keeps one
-- holder per premises and role at any date, whatever the writers do.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE premises (
    tenant_id   uuid             NOT NULL,
    id          uuid             NOT NULL,
    unit_code   text             NOT NULL,
    building    text             NOT NULL DEFAULT '',
    floor       text             NOT NULL DEFAULT '',
    area        double precision NOT NULL DEFAULT 0,
    kind        text             NOT NULL DEFAULT '',
    revision    bigint           NOT NULL DEFAULT 1,
    create_time timestamptz      NOT NULL,
    update_time timestamptz      NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT premises_unit_code_unique UNIQUE (tenant_id, unit_code)
);

CREATE TABLE occupancies (
    tenant_id     uuid        NOT NULL,
    premises_id   uuid        NOT NULL,
    id            uuid        NOT NULL,
    customer_id   uuid        NOT NULL,
    role          text        NOT NULL,
    move_in_date  date        NOT NULL,
    move_out_date date,
    revision      bigint      NOT NULL DEFAULT 1,
    create_time   timestamptz NOT NULL,
    update_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, premises_id) REFERENCES premises (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    CONSTRAINT occupancies_move_out_after_move_in CHECK (move_out_date IS NULL OR move_out_date >= move_in_date),
    CONSTRAINT occupancies_one_holder_per_role EXCLUDE USING gist (
        tenant_id WITH =, premises_id WITH =, role WITH =, daterange(move_in_date, move_out_date, '[)') WITH &&
    )
);

-- A premises' history and a customer's, latest move-in first.
CREATE INDEX occupancies_by_premises ON occupancies (tenant_id, premises_id, move_in_date DESC, id DESC);
CREATE INDEX occupancies_by_customer ON occupancies (tenant_id, customer_id, move_in_date DESC, id DESC);

ALTER TABLE premises ENABLE ROW LEVEL SECURITY;
ALTER TABLE premises FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON premises
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
ALTER TABLE occupancies ENABLE ROW LEVEL SECURITY;
ALTER TABLE occupancies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON occupancies
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
