-- Transactional outbox: every state change writes its event here in the same
-- transaction. `position` is stamped after commit by the stream reader (see
-- crm_kit::outbox), never by writers, so that readers cannot skip an event
-- whose transaction commits late.
CREATE TABLE outbox (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL UNIQUE,
    position    bigint      UNIQUE,
    type        text        NOT NULL,
    subject     text        NOT NULL,
    time        timestamptz NOT NULL DEFAULT now(),
    data        bytea       NOT NULL,
    traceparent text        NOT NULL DEFAULT ''
);

CREATE SEQUENCE outbox_position_seq;

CREATE INDEX outbox_unstamped ON outbox (tenant_id, seq) WHERE position IS NULL;
CREATE INDEX outbox_by_position ON outbox (tenant_id, position) WHERE position IS NOT NULL;

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
