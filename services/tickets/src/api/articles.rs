//! `crm.tickets.v1.ArticleService`: the knowledge base, its search and its
//! links to tickets.

use chrono::Utc;
use crm_kit::{
    Error, FieldViolation,
    auth::caller,
    db::begin_tenant,
    etag,
    fieldmask::UpdateMask,
    idempotency::{self, IdempotencyKey},
    pagination::{PageTokenCodec, Pager},
    protoenum, required, respond, time,
};
use crm_proto::crm::tickets::v1::{self as pb, article_service_server::ArticleService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::{
    domain::{search::tokens, ticket::Ticket},
    permissions,
    resources::{ARTICLE, TICKET},
    store::{
        self,
        articles::{self, ArticleFields, ArticleRow},
    },
    wire::ticket_to_proto,
};

const WRITABLE: &[&str] = &["title", "body", "category", "tags", "locale", "status"];
const MAX_BODY: usize = 100_000;

/// Handlers of ArticleService.
#[derive(Clone)]
pub struct ArticleApi {
    pool: PgPool,
    page_tokens: PageTokenCodec,
}

impl ArticleApi {
    /// Handlers over `pool`, signing page tokens with `page_tokens`.
    pub fn new(pool: PgPool, page_tokens: PageTokenCodec) -> Self {
        Self { pool, page_tokens }
    }
}

fn to_proto(row: &ArticleRow) -> pb::Article {
    pb::Article {
        name: ARTICLE.name(row.id),
        title: row.title.clone(),
        body: row.body.clone(),
        category: row.category.clone(),
        tags: row.tags.clone(),
        locale: row.locale.clone(),
        status: protoenum::number(&row.status, "ARTICLE_STATUS_", |s| pb::ArticleStatus::from_str_name(s).map(|e| e as i32)),
        version: row.version,
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

fn validate(a: &pb::Article) -> Result<ArticleFields, Error> {
    let mut v = Vec::new();
    let title = a.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 200 {
        v.push(FieldViolation::new("article.title", "INVALID_VALUE", "1-200 characters"));
    }
    if a.body.chars().count() > MAX_BODY {
        v.push(FieldViolation::new("article.body", "TOO_LONG", format!("at most {MAX_BODY} characters")));
    }
    if a.tags.len() > 50 || a.tags.iter().any(|t| t.trim().is_empty() || t.chars().count() > 64) {
        v.push(FieldViolation::new("article.tags", "INVALID_VALUE", "at most 50 tags of 1-64 characters"));
    }
    if a.category.chars().count() > 100 || a.locale.chars().count() > 35 {
        v.push(FieldViolation::new("article", "TOO_LONG", "category at most 100 and locale at most 35 characters"));
    }
    let status = match protoenum::short_name(a.status, |n| pb::ArticleStatus::try_from(n).ok().map(|e| e.as_str_name()), "ARTICLE_STATUS_")
    {
        Ok(s) if s.is_empty() => "DRAFT".to_owned(),
        Ok(s) => s,
        Err((reason, message)) => {
            v.push(FieldViolation::new("article.status", reason, message));
            String::new()
        }
    };
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok(ArticleFields {
        title,
        body: a.body.clone(),
        category: a.category.trim().to_owned(),
        tags: a.tags.iter().map(|t| t.trim().to_owned()).collect(),
        locale: a.locale.trim().to_owned(),
        status,
    })
}

fn search_tokens(f: &ArticleFields) -> Vec<String> {
    tokens(&format!("{}\n{}", f.title, f.body))
}

crm_kit::mask_fields!(pb::Article;
    "title" => title,
    "body" => body,
    "category" => category,
    "tags" => tags,
    "locale" => locale,
    "status" => status,
);

#[tonic::async_trait]
impl ArticleService for ArticleApi {
    #[tracing::instrument(skip_all)]
    async fn create_article(&self, request: Request<pb::CreateArticleRequest>) -> Result<Response<pb::CreateArticleResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateArticle",
                &request.request_id,
                &pb::CreateArticleRequest { request_id: String::new(), ..request.clone() },
            )?;
            let fields = validate(&required(request.article, "article")?)?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            if let Some(replay) = idempotency::replay(key.as_ref(), &mut tx, tenant).await? {
                tx.commit().await?;
                return Ok(replay);
            }
            let row = articles::insert(&mut tx, tenant, &fields, &search_tokens(&fields), &principal.subject, Utc::now()).await?;
            let response = pb::CreateArticleResponse { article: Some(to_proto(&row)) };
            idempotency::remember(key.as_ref(), &mut tx, tenant, &response).await?;
            tx.commit().await?;
            Ok(response)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_article(&self, request: Request<pb::GetArticleRequest>) -> Result<Response<pb::GetArticleResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            // ArticlesRead, not TicketsRead: a customer's help center reads published articles too.
            principal.require(permissions::ARTICLES_READ)?;
            let id = ARTICLE.parse(&request.get_ref().name, "name")?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let row = articles::find(&mut tx, principal.tenant, id, false).await?.ok_or_else(|| ARTICLE.not_found(id))?;
            tx.commit().await?;
            // Readers see published articles only; drafts do not exist for them.
            if row.status != "PUBLISHED" && !principal.can(permissions::TICKETS_WRITE) {
                return Err(ARTICLE.not_found(id));
            }
            Ok(pb::GetArticleResponse { article: Some(to_proto(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_article(&self, request: Request<pb::UpdateArticleRequest>) -> Result<Response<pb::UpdateArticleResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let pb::UpdateArticleRequest { article, update_mask } = request.into_inner();
            let input = required(article, "article")?;
            let id = ARTICLE.parse(&input.name, "article.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            etag::parse(&input.etag, "article.etag")?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let row = articles::find(&mut tx, principal.tenant, id, true).await?.ok_or_else(|| ARTICLE.not_found(id))?;
            ARTICLE.check_etag(&input.etag, "article.etag", id, row.revision)?;
            let before = to_proto(&row);
            let mut merged = before.clone();
            for path in &paths {
                copy_field(&mut merged, &input, path);
            }
            let fields = validate(&merged)?;
            let new_text = fields.title != row.title || fields.body != row.body;
            let updated = articles::update(
                &mut tx,
                principal.tenant,
                id,
                &fields,
                &search_tokens(&fields),
                new_text.then_some(principal.subject.as_str()),
                Utc::now(),
            )
            .await?;
            tx.commit().await?;
            Ok(pb::UpdateArticleResponse { article: Some(to_proto(&updated)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_article_versions(
        &self,
        request: Request<pb::ListArticleVersionsRequest>,
    ) -> Result<Response<pb::ListArticleVersionsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let request = request.get_ref();
            let id = ARTICLE.parse(&request.parent, "parent")?;
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(
                request.page_size,
                &request.page_token,
                &["ListArticleVersions", &principal.tenant.to_string(), &request.parent],
            )?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            articles::find(&mut tx, principal.tenant, id, false).await?.ok_or_else(|| ARTICLE.not_found(id))?;
            let rows = articles::versions(&mut tx, principal.tenant, id, page.after, page.fetch_limit()).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |v| i64::from(v.version));
            let versions = rows
                .into_iter()
                .map(|v| pb::ArticleVersion {
                    version: v.version,
                    title: v.title,
                    body: v.body,
                    editor: v.editor,
                    create_time: Some(time::to_timestamp(v.create_time)),
                })
                .collect();
            Ok(pb::ListArticleVersionsResponse { versions, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn search_articles(&self, request: Request<pb::SearchArticlesRequest>) -> Result<Response<pb::SearchArticlesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARTICLES_READ)?;
            let r = request.into_inner();
            if r.include_unpublished {
                principal.require(permissions::TICKETS_WRITE)?;
            }
            let query = r.query.trim();
            let terms = tokens(query);
            if query.is_empty() || query.chars().count() > 500 || terms.is_empty() {
                return Err(Error::invalid("query", "INVALID_QUERY", "1-500 characters with at least one word"));
            }
            let limit = match r.page_size {
                0 => 10,
                n @ 1..=50 => n,
                _ => return Err(Error::invalid("page_size", "INVALID_PAGE_SIZE", "0-50")),
            };
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let hits =
                articles::search(&mut tx, principal.tenant, &terms, r.locale.trim(), r.include_unpublished, i64::from(limit)).await?;
            tx.commit().await?;
            Ok(pb::SearchArticlesResponse {
                hits: hits.iter().map(|(a, score)| pb::ArticleHit { article: Some(to_proto(a)), score: *score }).collect(),
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn suggest_articles(
        &self,
        request: Request<pb::SuggestArticlesRequest>,
    ) -> Result<Response<pb::SuggestArticlesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let ticket = TICKET.parse(&request.get_ref().ticket, "ticket")?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let row: Ticket =
                store::TICKETS.find(&mut tx, principal.tenant, ticket, false).await?.ok_or_else(|| TICKET.not_found(ticket))?;
            let terms = tokens(&format!("{}\n{}", row.subject, row.description));
            let hits =
                if terms.is_empty() { Vec::new() } else { articles::search(&mut tx, principal.tenant, &terms, "", false, 5).await? };
            tx.commit().await?;
            Ok(pb::SuggestArticlesResponse {
                hits: hits.iter().map(|(a, score)| pb::ArticleHit { article: Some(to_proto(a)), score: *score }).collect(),
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn link_article_to_ticket(
        &self,
        request: Request<pb::LinkArticleToTicketRequest>,
    ) -> Result<Response<pb::LinkArticleToTicketResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let ticket = TICKET.parse(&request.get_ref().ticket, "ticket")?;
            let article = ARTICLE.parse(&request.get_ref().article, "article")?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            let found = articles::find(&mut tx, tenant, article, false).await?;
            if found.as_ref().is_none_or(|a| a.status != "PUBLISHED") {
                return Err(Error::invalid("article", "ARTICLE_NOT_PUBLISHED", "link a published article"));
            }
            store::TICKETS.find::<Ticket>(&mut tx, tenant, ticket, true).await?.ok_or_else(|| TICKET.not_found(ticket))?;
            let now = Utc::now();
            let row = store::set_answer_article(&mut tx, tenant, ticket, article, now).await?;
            store::append_event(&mut tx, tenant, ticket, "ARTICLE_LINKED", &principal.subject, &ARTICLE.name(article), now).await?;
            tx.commit().await?;
            Ok(pb::LinkArticleToTicketResponse { ticket: Some(ticket_to_proto(&row, now)) })
        })
        .await
    }
}
