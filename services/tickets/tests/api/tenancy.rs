//! RLS at the SQL level: the service's role, without a tenant set, sees no row
//! of any tickets table — even with data in all of them.

use crm_proto::crm::tickets::v1 as pb;
use sqlx::Connection;

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_tickets_table_hides_its_rows_without_a_tenant() {
    let suite = spawn_app().await;
    // Put rows in every table: ticket, comment, timeline, team, member, rule,
    // calendar, policy, timer, follow-up, survey, article, version, outbox.
    let team = crate::teams::team(&suite, "Support", pb::AssignmentStrategy::Manual).await;
    crate::teams::set_member(&suite, &team, "alice", 5, &[], true).await;
    let rule =
        pb::ClassificationRule { display_name: "r".into(), keywords: vec!["x".into()], set_category: "c".into(), ..Default::default() };
    pb::classification_rule_service_client::ClassificationRuleServiceClient::new(suite.channel.clone())
        .create_classification_rule(suite.admin(pb::CreateClassificationRuleRequest { request_id: String::new(), rule: Some(rule) }))
        .await
        .unwrap();
    let calendar = crate::sla::create_calendar(&suite, crate::sla::office_calendar("UTC", vec![])).await;
    let policy = pb::SlaPolicy {
        display_name: "p".into(),
        priority: pb::Priority::Normal as i32,
        calendar,
        first_response_target: crate::sla::hours(100),
        resolution_target: crate::sla::hours(200),
        ..Default::default()
    };
    crate::sla::client(&suite)
        .create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { request_id: String::new(), policy: Some(policy) }))
        .await
        .unwrap();
    let article = pb::Article { title: "t".into(), ..Default::default() };
    pb::article_service_client::ArticleServiceClient::new(suite.channel.clone())
        .create_article(suite.admin(pb::CreateArticleRequest { request_id: String::new(), article: Some(article) }))
        .await
        .unwrap();
    let ticket = suite.open(&suite.customer("Ada").await, "x").await;
    let comment = pb::AddCommentRequest {
        request_id: String::new(),
        parent: ticket.name.clone(),
        comment: Some(pb::Comment { body: "hi".into(), ..Default::default() }),
    };
    suite.tickets.clone().add_comment(suite.admin(comment)).await.unwrap();
    suite.transition(&ticket.name, pb::Status::Resolved).await.unwrap();

    let tables = [
        "tickets",
        "ticket_comments",
        "ticket_events",
        "teams",
        "team_members",
        "classification_rules",
        "business_calendars",
        "sla_policies",
        "sla_timers",
        "follow_ups",
        "surveys",
        "articles",
        "article_versions",
        "outbox",
        "outbox_pending",
        "outbox_positions",
        "idempotency_keys",
    ];
    let mut conn = sqlx::PgConnection::connect(suite.app_database_url()).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(suite.tenant.to_string()).execute(&mut *tx).await.unwrap();
    let mut seen_with_tenant = 0;
    for table in tables {
        seen_with_tenant += sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
    }
    tx.rollback().await.unwrap();
    assert!(seen_with_tenant > 15, "the tenant sees its own rows ({seen_with_tenant})");
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 0, "{table} shows rows to a query without a tenant");
    }
}
