-- Teams and their members, for dispatch. A ticket's `team` holds "teams/{id}".
CREATE TABLE teams (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    display_name  text        NOT NULL,
    strategy      text        NOT NULL,
    lead          text        NOT NULL DEFAULT '',
    -- The agent most recently auto-assigned (round robin continues after it).
    last_assigned text        NOT NULL DEFAULT '',
    create_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE team_members (
    tenant_id uuid    NOT NULL,
    team_id   uuid    NOT NULL,
    agent     text    NOT NULL,
    capacity  integer NOT NULL,
    skills    text[]  NOT NULL DEFAULT '{}',
    available boolean NOT NULL,
    PRIMARY KEY (tenant_id, team_id, agent),
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE
);

-- An agent's load, and a team's queue of unassigned open tickets.
CREATE INDEX tickets_open_by_assignee ON tickets (tenant_id, assignee)
    WHERE status IN ('NEW', 'OPEN', 'PENDING') AND delete_time IS NULL;
CREATE INDEX tickets_team_queue ON tickets (tenant_id, team, create_time)
    WHERE assignee = '' AND status IN ('NEW', 'OPEN', 'PENDING') AND delete_time IS NULL;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['teams', 'team_members'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)$p$, t);
    END LOOP;
END $$;
