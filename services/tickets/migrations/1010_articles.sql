-- Knowledge base. `search_tokens` holds the tokens of title and body computed
-- by the service (words, and CJK bigrams; see domain::search), GIN-indexed.
CREATE TABLE articles (
    tenant_id     uuid        NOT NULL,
    id            uuid        NOT NULL,
    title         text        NOT NULL,
    body          text        NOT NULL DEFAULT '',
    category      text        NOT NULL DEFAULT '',
    tags          text[]      NOT NULL DEFAULT '{}',
    locale        text        NOT NULL DEFAULT '',
    status        text        NOT NULL,
    version       integer     NOT NULL DEFAULT 1,
    search_tokens text[]      NOT NULL DEFAULT '{}',
    revision      bigint      NOT NULL DEFAULT 1,
    create_time   timestamptz NOT NULL,
    update_time   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX articles_search ON articles USING gin (search_tokens);

CREATE TABLE article_versions (
    tenant_id   uuid        NOT NULL,
    article_id  uuid        NOT NULL,
    version     integer     NOT NULL,
    title       text        NOT NULL,
    body        text        NOT NULL,
    editor      text        NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, article_id, version),
    FOREIGN KEY (tenant_id, article_id) REFERENCES articles (tenant_id, id)
);

ALTER TABLE tickets ADD COLUMN answer_article_id uuid;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['articles', 'article_versions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = nullif(current_setting('crm.tenant_id', true), '')::uuid)$p$, t);
    END LOOP;
END $$;
