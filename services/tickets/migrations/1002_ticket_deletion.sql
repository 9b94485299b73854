-- Soft deletion of tickets (DeleteTicket / UndeleteTicket).
ALTER TABLE tickets ADD COLUMN delete_time timestamptz;
