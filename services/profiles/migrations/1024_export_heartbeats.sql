-- An export whose process dies (SIGKILL, a lost node) cannot finish its
-- audit entry: it would stay RUNNING for ever. A running export beats every
-- tenth of CRM_EXPORT_STALE_SECS; an entry whose heartbeat is older than
-- that is ended FAILED by a sweep on any replica (found across tenants by
-- id and time only).
ALTER TABLE data_exports ADD COLUMN heartbeat_time timestamptz;
UPDATE data_exports SET heartbeat_time = create_time WHERE state = 'RUNNING';
CREATE INDEX data_exports_running ON data_exports (heartbeat_time) WHERE state = 'RUNNING';
CREATE POLICY export_sweep ON data_exports FOR SELECT
    USING (current_setting('crm.scope', true) = 'export-sweep');
