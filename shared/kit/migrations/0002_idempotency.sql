-- AIP-155 request ids: the first response to (tenant, method, request_id) is
-- kept so that a retry gets the same answer instead of a duplicate.
CREATE TABLE idempotency_keys (
    tenant_id    uuid        NOT NULL,
    method       text        NOT NULL,
    request_id   text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    create_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, method, request_id)
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (tenant_id, create_time);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
