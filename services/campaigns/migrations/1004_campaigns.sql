-- Bulk campaigns. A started campaign's audience is snapshotted into the
-- delivery ledger (one row per member, unique per campaign, customer and
-- channel), in batches; `snapshot_page_token` is profiles' page token after
-- the last stored batch, so a snapshot interrupted by a crash resumes where
-- it stopped instead of starting over.
CREATE TABLE campaigns (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL,
    display_name        text        NOT NULL,
    template_id         uuid        NOT NULL,
    audience_filter     text        NOT NULL DEFAULT '',
    variables           jsonb       NOT NULL DEFAULT '{}',
    schedule_time       timestamptz,
    state               text        NOT NULL,
    snapshot_page_token text,
    snapshot_done       boolean     NOT NULL DEFAULT false,
    start_time          timestamptz,
    run_time            timestamptz,
    end_time            timestamptz,
    revision            bigint      NOT NULL DEFAULT 1,
    create_time         timestamptz NOT NULL,
    update_time         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

ALTER TABLE campaigns ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaigns FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaigns
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- Exact, live counts per campaign, kept in the transaction of every status
-- change. Each change adds to one of 16 shards chosen at random, so that
-- concurrent senders of one campaign do not queue on one counter row; a read
-- sums the shards.
CREATE TABLE campaign_counters (
    tenant_id   uuid     NOT NULL,
    campaign_id uuid     NOT NULL,
    status      text     NOT NULL,
    skip_reason text     NOT NULL DEFAULT '',
    shard       smallint NOT NULL,
    count       bigint   NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, status, skip_reason, shard)
);

ALTER TABLE campaign_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaign_counters
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);

-- Campaigns the campaign job must look at, and when: a SCHEDULED one at its
-- schedule time (to snapshot its audience, under a lease like the delivery
-- queue's), a RUNNING one now and then (to complete it once nothing is
-- queued). Found across tenants through the read-only `due_scan` policy
-- (crm.scope = 'campaign-scan'); ids and instants only.
CREATE TABLE campaign_jobs (
    tenant_id   uuid        NOT NULL,
    campaign_id uuid        NOT NULL,
    due_time    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_jobs_due ON campaign_jobs (due_time);

ALTER TABLE campaign_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaign_jobs
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
CREATE POLICY due_scan ON campaign_jobs FOR SELECT
    USING (current_setting('crm.scope', true) = 'campaign-scan');

-- Pausing, resuming and cancelling act on a campaign's queued messages.
ALTER TABLE delivery_queue ADD COLUMN campaign_id uuid;
CREATE INDEX delivery_queue_by_campaign ON delivery_queue (tenant_id, campaign_id) WHERE campaign_id IS NOT NULL;

-- A campaign's sent log (filters name campaigns as resource names).
CREATE INDEX deliveries_by_campaign ON deliveries (tenant_id, ('campaigns/' || campaign_id::text), id);
