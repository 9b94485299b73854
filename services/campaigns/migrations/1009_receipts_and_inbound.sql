-- What providers report back. A delivery's receipt columns take the first
-- final receipt only (`receipt_status` '' until then), so a replayed or a
-- late contradictory callback changes nothing; receipts find their delivery
-- by the provider's message id (Twilio's MessageSid, Aliyun's BizId) or by
-- the delivery id the provider echoes (Aliyun's OutId, the webhook's id).
ALTER TABLE deliveries
    ADD COLUMN receipt_status text        NOT NULL DEFAULT '',
    ADD COLUMN receipt_time   timestamptz,
    ADD COLUMN receipt_error  text        NOT NULL DEFAULT '';
CREATE INDEX deliveries_by_provider_message ON deliveries (tenant_id, provider_id, provider_message_id) WHERE provider_message_id <> '';

-- Messages customers sent to a provider of the tenant (replies, opt-out
-- keywords), once each: the provider's id of the message is unique per
-- provider, so a replayed callback inserts nothing.
CREATE TABLE inbound_messages (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL,
    provider_id         uuid        NOT NULL,
    provider_message_id text        NOT NULL,
    sender              text        NOT NULL,
    recipient           text        NOT NULL,
    body                text        NOT NULL,
    customer_id         uuid,
    opt_out             boolean     NOT NULL,
    receive_time        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, provider_id, provider_message_id)
);

ALTER TABLE inbound_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbound_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inbound_messages
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
