-- The customer archive. Lists of contacts are JSONB (read with the row, no
-- N+1) with GIN indexes for filters; email uniqueness among live customers is
-- enforced by customer_emails. Every table is tenant-scoped by RLS with FORCE,
-- and the service's login role is not the owner, so RLS always applies.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE customers (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    display_name    text        NOT NULL,
    given_name      text        NOT NULL DEFAULT '',
    family_name     text        NOT NULL DEFAULT '',
    kind            text        NOT NULL DEFAULT '',
    emails          jsonb       NOT NULL DEFAULT '[]',
    phones          jsonb       NOT NULL DEFAULT '[]',
    addresses       jsonb       NOT NULL DEFAULT '[]',
    company         text        NOT NULL DEFAULT '',
    job_title       text        NOT NULL DEFAULT '',
    industry        text        NOT NULL DEFAULT '',
    company_size    text        NOT NULL DEFAULT '',
    source_channel  text        NOT NULL DEFAULT '',
    birthday_year   integer,
    birthday_month  integer,
    birthday_day    integer,
    time_zone       text        NOT NULL DEFAULT '',
    locale          text        NOT NULL DEFAULT '',
    tags            text[]      NOT NULL DEFAULT '{}',
    attributes      jsonb       NOT NULL DEFAULT '{}',
    owner           text        NOT NULL DEFAULT '',
    category        text        NOT NULL DEFAULT '',
    consent         jsonb       NOT NULL DEFAULT '{}',
    value_tier      text        NOT NULL DEFAULT '',
    lifecycle_stage text        NOT NULL DEFAULT '',
    revision        bigint      NOT NULL DEFAULT 1,
    create_time     timestamptz NOT NULL,
    update_time     timestamptz NOT NULL,
    delete_time     timestamptz,
    verify_time     timestamptz,
    PRIMARY KEY (tenant_id, id)
);

-- Keyset paging for each order_by key (id breaks ties).
CREATE INDEX customers_by_create_time ON customers (tenant_id, create_time, id);
CREATE INDEX customers_by_update_time ON customers (tenant_id, update_time, id);
CREATE INDEX customers_by_display_name ON customers (tenant_id, display_name, id);
-- Filters.
CREATE INDEX customers_emails ON customers USING gin (emails jsonb_path_ops);
CREATE INDEX customers_phones ON customers USING gin (phones jsonb_path_ops);
CREATE INDEX customers_addresses ON customers USING gin (addresses jsonb_path_ops);
CREATE INDEX customers_tags ON customers USING gin (tags);
CREATE INDEX customers_display_name_trgm ON customers USING gin (display_name gin_trgm_ops);
CREATE INDEX customers_company ON customers (tenant_id, company);
CREATE INDEX customers_category ON customers (tenant_id, category);
CREATE INDEX customers_owner ON customers (tenant_id, owner);
CREATE INDEX customers_birthday ON customers (tenant_id, birthday_month, birthday_day);

ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE customers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON customers
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- One row per email address of a live customer: the primary key makes an
-- address unique per tenant even under concurrent writers.
CREATE TABLE customer_emails (
    tenant_id   uuid NOT NULL,
    address     text NOT NULL,
    customer_id uuid NOT NULL,
    CONSTRAINT customer_emails_unique_address PRIMARY KEY (tenant_id, address),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX customer_emails_by_customer ON customer_emails (tenant_id, customer_id);

ALTER TABLE customer_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE customer_emails FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON customer_emails
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
