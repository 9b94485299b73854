//! `crm.tickets.v1.ClassificationRuleService` and the conversion of stored
//! rules into the domain's classifier rules.

use chrono::Utc;
use crm_kit::{
    Error, FieldViolation,
    auth::{Permission, caller},
    db::begin_tenant,
    protoenum, time,
};
use crm_proto::crm::tickets::v1::{self as pb, classification_rule_service_server::ClassificationRuleService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    resources::{RULE, TEAM},
    store::{self, RuleRow},
};

const CUSTOMER_CATEGORIES: [&str; 4] = ["VIP", "REGULAR", "NEW", "POTENTIAL"];

/// Handlers of ClassificationRuleService.
#[derive(Clone)]
pub struct RuleApi {
    pool: PgPool,
}

impl RuleApi {
    /// Handlers over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
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
    }
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
    })
}

#[tonic::async_trait]
impl ClassificationRuleService for RuleApi {
    async fn create_classification_rule(
        &self,
        request: Request<pb::CreateClassificationRuleRequest>,
    ) -> Result<Response<pb::CreateClassificationRuleResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let rule = request.into_inner().rule.ok_or_else(|| Error::invalid("rule", "REQUIRED", "rule is required"))?;
        let row = validate(&rule)?;
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        crate::app::ensure_team(&mut tx, principal.tenant, &row.set_team, "rule.set_team").await?;
        let stored = store::insert_rule(&mut tx, principal.tenant, &row).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::CreateClassificationRuleResponse { rule: Some(to_proto(&stored)) }))
    }

    async fn list_classification_rules(
        &self,
        request: Request<pb::ListClassificationRulesRequest>,
    ) -> Result<Response<pb::ListClassificationRulesResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        let rows = store::list_rules(&mut tx, principal.tenant).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListClassificationRulesResponse { rules: rows.iter().map(to_proto).collect() }))
    }

    async fn delete_classification_rule(
        &self,
        request: Request<pb::DeleteClassificationRuleRequest>,
    ) -> Result<Response<pb::DeleteClassificationRuleResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let name = &request.get_ref().name;
        let id = crm_kit::resource::parse_id(name, "classificationRules", "name", "INVALID_NAME")?;
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        if !store::delete_rule(&mut tx, principal.tenant, id).await? {
            return Err(Error::NotFound { resource_type: "tickets.crm/ClassificationRule", name: name.clone() }.into());
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::DeleteClassificationRuleResponse {}))
    }
}
