//! `crm.tickets.v1.ClassificationRuleService` and the conversion of stored
//! rules into the domain's classifier rules.

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
use crm_proto::crm::tickets::v1::{self as pb, classification_rule_service_server::ClassificationRuleService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    permissions,
    resources::{RULE, TEAM},
    store::{self, RuleRow},
};

const CUSTOMER_CATEGORIES: [&str; 4] = ["VIP", "REGULAR", "NEW", "POTENTIAL"];

/// Handlers of ClassificationRuleService.
#[derive(Clone)]
pub struct RuleApi {
    pool: PgPool,
    page_tokens: PageTokenCodec,
}

impl RuleApi {
    /// Handlers over `pool`, signing page tokens with `page_tokens`.
    pub fn new(pool: PgPool, page_tokens: PageTokenCodec) -> Self {
        Self { pool, page_tokens }
    }
}

fn to_proto(row: &RuleRow) -> pb::ClassificationRule {
    let numbers = |names: &[String], prefix: &str, number_of: fn(&str) -> Option<i32>| {
        names.iter().map(|n| protoenum::number(n, prefix, number_of)).collect()
    };
    pb::ClassificationRule {
        name: RULE.name(row.id),
        display_name: row.display_name.clone(),
        position: row.position,
        keywords: row.keywords.clone(),
        channels: numbers(&row.channels, "CHANNEL_", |s| pb::Channel::from_str_name(s).map(|e| e as i32)),
        types: numbers(&row.types, "TICKET_TYPE_", |s| pb::TicketType::from_str_name(s).map(|e| e as i32)),
        customer_categories: row.customer_categories.clone(),
        set_category: row.set_category.clone(),
        set_priority: protoenum::number(&row.set_priority, "PRIORITY_", |s| pb::Priority::from_str_name(s).map(|e| e as i32)),
        set_team: row.set_team.clone(),
        create_time: Some(time::to_timestamp(row.create_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// Paths UpdateClassificationRule may change.
const RULE_PATHS: &[&str] =
    &["display_name", "position", "keywords", "channels", "types", "customer_categories", "set_category", "set_priority", "set_team"];

mod rule_mask {
    use super::pb;
    crm_kit::mask_fields!(pb::ClassificationRule;
        "display_name" => display_name,
        "position" => position,
        "keywords" => keywords,
        "channels" => channels,
        "types" => types,
        "customer_categories" => customer_categories,
        "set_category" => set_category,
        "set_priority" => set_priority,
        "set_team" => set_team,
    );
}

/// Validates a rule; every bad field is reported.
fn validate(rule: &pb::ClassificationRule) -> Result<RuleRow, Error> {
    let mut v = Vec::new();
    let display_name = rule.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        v.push(FieldViolation::new("rule.display_name", "INVALID_VALUE", "1-100 characters"));
    }
    if rule.keywords.len() > 50 || rule.keywords.iter().any(|k| k.trim().is_empty() || k.chars().count() > 100) {
        v.push(FieldViolation::new("rule.keywords", "INVALID_VALUE", "at most 50 keywords of 1-100 characters"));
    }
    let mut enums = |field: &str, values: &[i32], name_of: fn(i32) -> Option<&'static str>, prefix: &str| -> Vec<String> {
        values
            .iter()
            .filter_map(|n| match protoenum::short_name(*n, name_of, prefix) {
                Ok(s) if !s.is_empty() => Some(s),
                Ok(_) => {
                    v.push(FieldViolation::new(field, "INVALID_ENUM", "unspecified is not a value to match"));
                    None
                }
                Err((reason, message)) => {
                    v.push(FieldViolation::new(field, reason, message));
                    None
                }
            })
            .collect()
    };
    let channels = enums("rule.channels", &rule.channels, |n| pb::Channel::try_from(n).ok().map(|e| e.as_str_name()), "CHANNEL_");
    let types = enums("rule.types", &rule.types, |n| pb::TicketType::try_from(n).ok().map(|e| e.as_str_name()), "TICKET_TYPE_");
    let set_priority = enums(
        "rule.set_priority",
        &[rule.set_priority].into_iter().filter(|p| *p != 0).collect::<Vec<_>>(),
        |n| pb::Priority::try_from(n).ok().map(|e| e.as_str_name()),
        "PRIORITY_",
    )
    .pop()
    .unwrap_or_default();
    if let Some(bad) = rule.customer_categories.iter().find(|c| !CUSTOMER_CATEGORIES.contains(&c.as_str())) {
        v.push(FieldViolation::new(
            "rule.customer_categories",
            "INVALID_VALUE",
            format!("{bad:?} is not one of {}", CUSTOMER_CATEGORIES.join(", ")),
        ));
    }
    let set_category = rule.set_category.trim().to_owned();
    if set_category.chars().count() > 100 {
        v.push(FieldViolation::new("rule.set_category", "TOO_LONG", "at most 100 characters"));
    }
    if !rule.set_team.is_empty()
        && let Err(Error::InvalidArgument { violations }) = TEAM.parse_as(&rule.set_team, "rule.set_team", "INVALID_TEAM")
    {
        v.extend(violations);
    }
    if set_category.is_empty() && set_priority.is_empty() && rule.set_team.is_empty() {
        v.push(FieldViolation::new("rule", "NO_ACTION", "set at least one of set_category, set_priority, set_team"));
    }
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok(RuleRow {
        id: Uuid::now_v7(),
        display_name,
        position: rule.position,
        keywords: rule.keywords.iter().map(|k| k.trim().to_owned()).collect(),
        channels,
        types,
        customer_categories: rule.customer_categories.clone(),
        set_category,
        set_priority,
        set_team: rule.set_team.clone(),
        create_time: Utc::now(),
        revision: 1,
    })
}

#[tonic::async_trait]
impl ClassificationRuleService for RuleApi {
    #[tracing::instrument(skip_all)]
    async fn create_classification_rule(
        &self,
        request: Request<pb::CreateClassificationRuleRequest>,
    ) -> Result<Response<pb::CreateClassificationRuleResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateClassificationRule",
                &request.request_id,
                &pb::CreateClassificationRuleRequest { request_id: String::new(), ..request.clone() },
            )?;
            let row = validate(&required(request.rule, "rule")?)?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            if let Some(replay) = idempotency::replay(key.as_ref(), &mut tx, tenant).await? {
                tx.commit().await?;
                return Ok(replay);
            }
            crate::app::ensure_team(&mut tx, tenant, &row.set_team, "rule.set_team").await?;
            let stored = store::insert_rule(&mut tx, tenant, &row).await?;
            let response = pb::CreateClassificationRuleResponse { rule: Some(to_proto(&stored)) };
            idempotency::remember(key.as_ref(), &mut tx, tenant, &response).await?;
            tx.commit().await?;
            Ok(response)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_classification_rule(
        &self,
        request: Request<pb::GetClassificationRuleRequest>,
    ) -> Result<Response<pb::GetClassificationRuleResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let id = RULE.parse(&request.get_ref().name, "name")?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let row = store::find_rule(&mut tx, principal.tenant, id, false).await?.ok_or_else(|| RULE.not_found(id))?;
            tx.commit().await?;
            Ok(pb::GetClassificationRuleResponse { rule: Some(to_proto(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_classification_rule(
        &self,
        request: Request<pb::UpdateClassificationRuleRequest>,
    ) -> Result<Response<pb::UpdateClassificationRuleResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let pb::UpdateClassificationRuleRequest { rule, update_mask } = request.into_inner();
            let input = required(rule, "rule")?;
            let id = RULE.parse(&input.name, "rule.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), RULE_PATHS)?.resolve(RULE_PATHS);
            etag::parse(&input.etag, "rule.etag")?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            let current = store::find_rule(&mut tx, tenant, id, true).await?.ok_or_else(|| RULE.not_found(id))?;
            RULE.check_etag(&input.etag, "rule.etag", id, current.revision)?;
            let mut merged = to_proto(&current);
            for path in &paths {
                rule_mask::copy_field(&mut merged, &input, path);
            }
            let row = RuleRow { id, create_time: current.create_time, revision: current.revision, ..validate(&merged)? };
            crate::app::ensure_team(&mut tx, tenant, &row.set_team, "rule.set_team").await?;
            let unchanged = RULE_PATHS.iter().all(|p| rule_mask::same_field(&to_proto(&current), &to_proto(&row), p));
            let stored = if unchanged { current } else { store::update_rule(&mut tx, tenant, &row).await? };
            tx.commit().await?;
            Ok(pb::UpdateClassificationRuleResponse { rule: Some(to_proto(&stored)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_classification_rules(
        &self,
        request: Request<pb::ListClassificationRulesRequest>,
    ) -> Result<Response<pb::ListClassificationRulesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(request.page_size, &request.page_token, &["ListClassificationRules", &principal.tenant.to_string()])?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let rows = store::rules_page(&mut tx, principal.tenant, page.after, page.fetch_limit()).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |r| (i64::from(r.position), r.id));
            Ok(pb::ListClassificationRulesResponse { rules: rows.iter().map(to_proto).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_classification_rule(
        &self,
        request: Request<pb::DeleteClassificationRuleRequest>,
    ) -> Result<Response<pb::DeleteClassificationRuleResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let request = request.get_ref();
            let id = RULE.parse(&request.name, "name")?;
            etag::parse(&request.etag, "etag")?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let current = store::find_rule(&mut tx, principal.tenant, id, true).await?.ok_or_else(|| RULE.not_found(id))?;
            RULE.check_etag(&request.etag, "etag", id, current.revision)?;
            store::delete_rule(&mut tx, principal.tenant, id).await?;
            tx.commit().await?;
            Ok(pb::DeleteClassificationRuleResponse {})
        })
        .await
    }
}
