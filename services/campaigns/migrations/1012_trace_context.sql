-- The trace a campaign or notice was started in (W3C `traceparent`, '' when
-- spans are not exported): the snapshot and every send of the campaign, and
-- a notice's send, continue it, so that one trace runs from StartCampaign or
-- SendNotice through the ledger to each provider call.
ALTER TABLE campaigns ADD COLUMN traceparent text NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN traceparent text NOT NULL DEFAULT '';
