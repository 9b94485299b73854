-- Conversions: goals customers reached (a purchase, a ticket resolved, a
-- custom goal), each recorded once per source (UNIQUE: a replayed event or a
-- retried call records nothing twice), with the message it is attributed to
-- — the last one sent to the customer within the attribution window — and
-- that message's campaign or journey, copied so reports need no join.
CREATE TABLE conversions (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    customer_id   uuid        NOT NULL,
    goal          text        NOT NULL,
    source        text        NOT NULL,
    currency_code text        NOT NULL DEFAULT '',
    revenue_minor bigint      NOT NULL DEFAULT 0,
    delivery_id   uuid,
    campaign_id   uuid,
    journey_id    uuid,
    occur_time    timestamptz NOT NULL,
    create_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, source)
);

CREATE INDEX conversions_by_campaign ON conversions (tenant_id, campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX conversions_by_journey ON conversions (tenant_id, journey_id) WHERE journey_id IS NOT NULL;
-- The last message sent to a customer before a goal.
CREATE INDEX deliveries_sent_by_customer ON deliveries (tenant_id, customer_id, send_time DESC) WHERE send_time IS NOT NULL;

ALTER TABLE conversions ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON conversions
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
