-- A/B/n tests of bulk campaigns, per-campaign attribution windows and
-- questionnaires sent by campaigns.
--
-- A tested campaign keeps its test (variants, holdout, test fraction,
-- metric) with it and, once chosen, the winner. At the snapshot each member
-- falls in a variant (a ledger row with its `variant`), in the holdout or in
-- the rest (a `campaign_ab_members` row: nobody is sent anything yet); once
-- the winner is chosen the campaign job sends it to the rest in customer-id
-- order, `rest_cursor` being how far it got.
ALTER TABLE campaigns
    ADD COLUMN ab_test                 jsonb,
    ADD COLUMN ab_winner               text        NOT NULL DEFAULT '',
    ADD COLUMN ab_decision             text        NOT NULL DEFAULT '',
    ADD COLUMN ab_detail               text        NOT NULL DEFAULT '',
    ADD COLUMN ab_decide_time          timestamptz,
    ADD COLUMN rest_cursor             uuid,
    ADD COLUMN rest_done               boolean     NOT NULL DEFAULT false,
    ADD COLUMN attribution_window_days integer     NOT NULL DEFAULT 7
        CHECK (attribution_window_days BETWEEN 1 AND 90),
    -- Each recipient's message invites them to this questionnaire.
    ADD COLUMN questionnaire_id        uuid;

-- The campaign an invitation came with (results per campaign).
ALTER TABLE questionnaire_invitations ADD COLUMN campaign_id uuid;

-- A test's numbers: which messages a conversion is attributed to.
CREATE INDEX conversions_by_delivery ON conversions (tenant_id, delivery_id) WHERE delivery_id IS NOT NULL;

-- "a", "b", … for a tested campaign's test groups, "rest" for the rest
-- (who got the winner); '' otherwise. A constant default: no table rewrite.
ALTER TABLE deliveries ADD COLUMN variant text NOT NULL DEFAULT '';

CREATE TABLE campaign_ab_members (
    tenant_id   uuid NOT NULL,
    campaign_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    -- 'holdout': never sent anything (the baseline of lift); 'rest': gets the winner.
    grp         text NOT NULL CHECK (grp IN ('holdout', 'rest')),
    PRIMARY KEY (tenant_id, campaign_id, customer_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE campaign_ab_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign_ab_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaign_ab_members
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
