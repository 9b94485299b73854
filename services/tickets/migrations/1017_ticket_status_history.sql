-- Every status a ticket has been in, from when until when, so reports can say
-- what the desk looked like in a past period (backlog at its end, time in each
-- status, reopens) instead of reading today's state. Written in the statement
-- that changes `tickets.status` (creation, every transition, merges): the
-- current stay gets its `until`, the new one is added. A stay keeps what a
-- report needs to know about the ticket at that point, so a report reads only
-- the stays that touch its period (no ordering of a ticket's whole history).
CREATE TABLE ticket_status_history (
    tenant_id    uuid        NOT NULL,
    ticket_id    uuid        NOT NULL,
    -- Order of a ticket's stays (changes are serialised by the ticket's row
    -- lock, so a later stay always gets a larger number).
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    status       text        NOT NULL,
    since        timestamptz NOT NULL,
    -- NULL while the ticket is still in this status.
    until        timestamptz,
    -- Entered by a reopen (RESOLVED → OPEN, as the domain decides).
    reopened     boolean     NOT NULL DEFAULT false,
    -- The ticket's latest resolution and its reopens so far, when it entered.
    resolve_time timestamptz,
    reopen_count integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, ticket_id, seq),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id),
    CHECK (until IS NULL OR until >= since)
);

CREATE INDEX ticket_status_history_until ON ticket_status_history (tenant_id, until);

-- Tickets from before this table get the history their row still tells: open
-- (in their current status when still open) from creation, RESOLVED from
-- their latest resolution, CLOSED from their last update. Earlier reopens and
-- PENDING spells are not recoverable; docs/api/tickets.md says so. RLS is
-- forced on `tickets` for its owner too (who runs this): lifted for the
-- backfill, inside this migration's transaction, so every tenant's tickets
-- are read; the new table gets its policy after it is filled.
ALTER TABLE tickets NO FORCE ROW LEVEL SECURITY;
INSERT INTO ticket_status_history (tenant_id, ticket_id, status, since, until, reopen_count)
SELECT tenant_id, id, CASE WHEN status IN ('RESOLVED', 'CLOSED') THEN 'OPEN' ELSE status END, create_time,
       CASE WHEN status IN ('RESOLVED', 'CLOSED') THEN greatest(coalesce(resolve_time, update_time), create_time) END, reopen_count
FROM tickets;
INSERT INTO ticket_status_history (tenant_id, ticket_id, status, since, until, resolve_time, reopen_count)
SELECT tenant_id, id, 'RESOLVED', greatest(resolve_time, create_time),
       CASE WHEN status = 'CLOSED' THEN greatest(update_time, resolve_time, create_time) END, resolve_time, reopen_count
FROM tickets WHERE status IN ('RESOLVED', 'CLOSED') AND resolve_time IS NOT NULL;
INSERT INTO ticket_status_history (tenant_id, ticket_id, status, since, resolve_time, reopen_count)
SELECT tenant_id, id, 'CLOSED', greatest(update_time, resolve_time, create_time), resolve_time, reopen_count
FROM tickets WHERE status = 'CLOSED';
ALTER TABLE tickets FORCE ROW LEVEL SECURITY;

ALTER TABLE ticket_status_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_status_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_status_history
    USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid);
