-- Tenants that had tickets before tickets followed profiles' stream (1013)
-- are found once at start-up, through this read-only policy (the job reads
-- the tenant ids only), and marked as followed tenant by tenant.
CREATE POLICY tenant_scan ON tickets FOR SELECT
    USING (current_setting('crm.scope', true) = 'tenant-scan');
