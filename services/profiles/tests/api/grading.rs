//! Value grading (RFM) and lifecycle stages: settings with defaults and
//! validation, a regrade's quintile cut points and tiers, a new
//! transaction re-scoring its customer at once (with CustomerGraded), the
//! purchase rhythm deciding AT_RISK, and the filters on the results.

use std::time::{Duration, SystemTime};

use crm_proto::{
    crm::profiles::v1::{self as pb, grading_service_client::GradingServiceClient, transaction_service_client::TransactionServiceClient},
    google::r#type::Money,
};
use prost::Message;
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

fn grading(app: &TestApp) -> GradingServiceClient<Channel> {
    GradingServiceClient::new(app.channel.clone())
}

/// Purchases of `customer`: (days ago, CNY amount) each.
async fn buy(app: &TestApp, customer: &str, purchases: &[(u64, i64)]) {
    let all: Vec<(String, u64, i64)> = purchases.iter().map(|(days, units)| (customer.to_owned(), *days, *units)).collect();
    buy_many(app, &all).await;
}

/// Purchases in one batch: (customer, days ago, CNY amount) each.
async fn buy_many(app: &TestApp, purchases: &[(String, u64, i64)]) {
    let requests = purchases
        .iter()
        .map(|(customer, days, units)| pb::CreateTransactionRequest {
            parent: customer.clone(),
            transaction: Some(pb::Transaction {
                external_id: uuid::Uuid::now_v7().to_string(),
                kind: pb::TransactionKind::Purchase as i32,
                amount: Some(Money { currency_code: "CNY".into(), units: *units, nanos: 0 }),
                occur_time: Some((SystemTime::now() - Duration::from_secs(days * 86_400 + 60)).into()),
                ..Default::default()
            }),
        })
        .collect();
    let request = pb::BatchCreateTransactionsRequest { parent: "customers/-".into(), requests };
    TransactionServiceClient::new(app.channel.clone()).batch_create_transactions(app.as_roles(request, &["service"])).await.unwrap();
}

async fn graded(app: &TestApp, name: &str) -> (i32, i32, [i32; 3]) {
    let c = app.get(name).await.unwrap();
    (c.value_tier, c.lifecycle_stage, [c.recency_score, c.frequency_score, c.monetary_score])
}

async fn filtered(app: &TestApp, filter: &str) -> Vec<String> {
    let request = pb::ListCustomersRequest { filter: filter.into(), page_size: 100, ..Default::default() };
    let mut names: Vec<String> = app
        .customers
        .clone()
        .list_customers(app.admin(request))
        .await
        .unwrap()
        .into_inner()
        .customers
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn customers_are_graded_by_their_purchases_at_once_and_by_the_regrade() {
    use pb::LifecycleStage as Stage;
    let app = spawn_app().await;
    let names = ["Top", "Fresh", "Steady", "Weekly", "Slow", "Faded", "Gone", "Prospect", "Middle", "Small"];
    let mut c = std::collections::HashMap::new();
    for (i, name) in names.iter().enumerate() {
        c.insert(*name, app.create(customer(name, &format!("g{i}@example.com"))).await.name);
    }
    buy(&app, &c["Top"], &[(1, 5000), (8, 5000), (15, 5000), (22, 5000), (29, 5000), (36, 5000), (43, 5000)]).await;
    buy(&app, &c["Fresh"], &[(3, 200)]).await;
    buy(&app, &c["Steady"], &[(10, 300), (70, 300), (130, 300)]).await;
    // Every 7 days, then silent for 20: overdue by their own rhythm, long before 90 days.
    buy(&app, &c["Weekly"], &[(20, 100), (27, 100), (34, 100), (41, 100)]).await;
    // Every 60 days, silent for 20: on time.
    buy(&app, &c["Slow"], &[(20, 100), (80, 100)]).await;
    buy(&app, &c["Faded"], &[(200, 50)]).await;
    buy(&app, &c["Gone"], &[(400, 800), (500, 800)]).await;
    buy(&app, &c["Middle"], &[(45, 900), (95, 900)]).await;
    buy(&app, &c["Small"], &[(150, 1)]).await;

    // At once, before any regrade: stages (they need no cut points), no tier yet.
    let stage = |g: (i32, i32, [i32; 3])| Stage::try_from(g.1).unwrap();
    assert_eq!(stage(graded(&app, &c["Fresh"]).await), Stage::New);
    assert_eq!(stage(graded(&app, &c["Top"]).await), Stage::Loyal);
    assert_eq!(stage(graded(&app, &c["Weekly"]).await), Stage::AtRisk, "20 days against a 7-day rhythm");
    assert_eq!(stage(graded(&app, &c["Slow"]).await), Stage::Active, "20 days against a 60-day rhythm");
    assert_eq!(stage(graded(&app, &c["Faded"]).await), Stage::AtRisk);
    assert_eq!(stage(graded(&app, &c["Gone"]).await), Stage::Lapsed);
    assert_eq!(stage(graded(&app, &c["Prospect"]).await), Stage::Unspecified, "graded once it buys or at the regrade");
    assert_eq!(graded(&app, &c["Top"]).await.0, 0, "no tier before the first regrade");

    let regrade = pb::RegradeCustomersRequest { name: "gradingSettings".into() };
    assert_error(
        grading(&app).regrade_customers(app.as_roles(regrade.clone(), &["agent"])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    let done = grading(&app).regrade_customers(app.admin(regrade.clone())).await.unwrap().into_inner();
    assert!(!done.running, "a small tenant is regraded within the call");
    let cuts = done.grading_settings.unwrap().cut_points.unwrap();
    assert_eq!(cuts.graded_customers, 9);
    assert_eq!((cuts.recency_days.len(), cuts.frequency.len(), cuts.monetary.len()), (4, 4, 4));
    assert!(done.changed_customers >= 9, "every buyer got a tier, the prospect a stage");

    assert_eq!(graded(&app, &c["Top"]).await, (pb::ValueTier::High as i32, Stage::Loyal as i32, [5, 5, 5]));
    let (tier, stage_now, scores) = graded(&app, &c["Small"]).await;
    assert_eq!((tier, scores[1], scores[2]), (pb::ValueTier::Low as i32, 1, 1));
    assert_eq!(stage_now, Stage::AtRisk as i32);
    assert_eq!(graded(&app, &c["Prospect"]).await.1, Stage::Prospect as i32);
    assert_eq!(filtered(&app, "value_tier = HIGH").await, [c["Top"].clone()]);
    let mut lapsed_or_prospect = vec![c["Gone"].clone(), c["Prospect"].clone()];
    lapsed_or_prospect.sort();
    assert_eq!(filtered(&app, "lifecycle_stage = LAPSED OR lifecycle_stage = PROSPECT").await, lapsed_or_prospect);
    assert_eq!(filtered(&app, "recency_score = 5 AND frequency_score = 5").await, [c["Top"].clone()]);

    // Best customers first, paged: the same order as one page.
    let ordered = |page_size: i32, page_token: String| pb::ListCustomersRequest {
        order_by: "value_tier desc, monetary_score desc".into(),
        page_size,
        page_token,
        ..Default::default()
    };
    let whole = app.customers.clone().list_customers(app.admin(ordered(100, String::new()))).await.unwrap().into_inner().customers;
    assert_eq!(whole[0].name, c["Top"], "HIGH first");
    assert!(whole.windows(2).all(|w| (w[0].value_tier == 0) <= (w[1].value_tier == 0)), "ungraded last");
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = app.customers.clone().list_customers(app.admin(ordered(3, token))).await.unwrap().into_inner();
        paged.extend(page.customers.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, whole.iter().map(|c| c.name.clone()).collect::<Vec<_>>());

    // A lapsed customer buys again: won back at once, and announced.
    buy(&app, &c["Gone"], &[(0, 800)]).await;
    assert_eq!(graded(&app, &c["Gone"]).await.1, Stage::WonBack as i32);
    // Nine at once (each buyer's first stage), those of the regrade, then the win-back.
    let n = 9 + usize::try_from(done.changed_customers).unwrap() + 1;
    let graded_events = crm_testkit::events::collect_of(&app.channel, &app.admin_token, 0, n, &["crm.profiles.v1.CustomerGraded"]).await;
    let won_back = graded_events
        .iter()
        .map(|e| pb::CustomerGraded::decode(e.data.as_ref().unwrap().value.as_slice()).unwrap())
        .find(|g| g.customer == c["Gone"] && g.lifecycle_stage == Stage::WonBack as i32)
        .expect("CustomerGraded for the win-back");
    assert_eq!(won_back.previous_lifecycle_stage, Stage::Lapsed as i32);
}

#[tokio::test]
async fn grading_settings_have_defaults_and_refuse_what_makes_no_sense() {
    let app = spawn_app().await;
    let get = pb::GetGradingSettingsRequest { name: "gradingSettings".into() };
    let defaults =
        grading(&app).get_grading_settings(app.as_roles(get.clone(), &["readonly"])).await.unwrap().into_inner().grading_settings.unwrap();
    assert_eq!((defaults.currency_code.as_str(), defaults.high_min_score, defaults.medium_min_score), ("CNY", 12, 8));
    assert_eq!((defaults.at_risk_days, defaults.lapsed_days, defaults.at_risk_gap_factor), (90, 365, 2.0));
    assert!(defaults.cut_points.is_none() && defaults.update_time.is_none());

    let update = |settings: pb::GradingSettings, paths: &[&str]| pb::UpdateGradingSettingsRequest {
        grading_settings: Some(pb::GradingSettings { name: "gradingSettings".into(), ..settings }),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
    };
    let usd = update(pb::GradingSettings { currency_code: "USD".into(), ..Default::default() }, &["currency_code"]);
    assert_error(
        grading(&app).update_grading_settings(app.as_roles(usd.clone(), &["agent"])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    let stored = grading(&app).update_grading_settings(app.admin(usd)).await.unwrap().into_inner().grading_settings.unwrap();
    assert_eq!((stored.currency_code.as_str(), stored.high_min_score), ("USD", 12), "only the masked field changed");

    let bad = update(
        pb::GradingSettings { currency_code: "usd".into(), medium_min_score: 13, at_risk_days: 400, ..Default::default() },
        &["currency_code", "medium_min_score", "at_risk_days"],
    );
    let status = assert_error(grading(&app).update_grading_settings(app.admin(bad)).await, Code::InvalidArgument, "INVALID_FIELDS");
    let fields: Vec<String> = crate::helpers::violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["grading_settings.currency_code", "grading_settings.medium_min_score", "grading_settings.at_risk_days"]);
    assert_eq!(
        grading(&app).get_grading_settings(app.admin(get)).await.unwrap().into_inner().grading_settings.unwrap().currency_code,
        "USD"
    );
}

#[tokio::test]
async fn the_job_grades_a_tenant_once_it_has_transactions() {
    let app = crate::helpers::spawn_app_with(|c| c.grading_poll_ms = 100).await;
    let buyer = app.create(customer("Buyer", "buyer@example.com")).await;
    buy(&app, &buyer.name, &[(2, 120), (9, 80)]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while graded(&app, &buyer.name).await.0 == 0 {
        assert!(std::time::Instant::now() < deadline, "the job graded the tenant in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let get = pb::GetGradingSettingsRequest { name: "gradingSettings".into() };
    let settings = grading(&app).get_grading_settings(app.admin(get)).await.unwrap().into_inner().grading_settings.unwrap();
    assert_eq!(settings.cut_points.unwrap().graded_customers, 1);
}

#[tokio::test]
async fn churn_risk_follows_each_customers_rhythm() {
    use pb::ChurnRisk as Risk;
    let app = spawn_app().await;
    let risk = |c: pb::Customer| Risk::try_from(c.churn_risk).unwrap();
    /// A name, its purchases (days ago, amount), and the risk they make.
    type Case<'a> = (&'a str, &'a [(u64, i64)], Risk);
    let cases: [Case; 5] = [
        // Every 10 days, silent for 5: on time.
        ("OnTime", &[(5, 100), (15, 100), (25, 100)], Risk::Low),
        // Every 10 days, silent for 12: overdue, not yet twice the gap (nor the 14-day floor).
        ("Overdue", &[(12, 100), (22, 100), (32, 100)], Risk::Medium),
        // Every 7 days, silent for 20: AT_RISK by their own rhythm.
        ("Silent", &[(20, 100), (27, 100), (34, 100)], Risk::High),
        // One purchase: the tenant's rhythm (90 days / 2) stands in; 50 days is overdue.
        ("Once", &[(50, 100)], Risk::Medium),
        ("Lapsed", &[(400, 100), (410, 100)], Risk::High),
    ];
    for (i, (name, purchases, expected)) in cases.iter().enumerate() {
        let created = app.create(customer(name, &format!("risk{i}@example.com"))).await;
        buy(&app, &created.name, purchases).await;
        assert_eq!(risk(app.get(&created.name).await.unwrap()), *expected, "{name}");
    }
    let prospect = app.create(customer("Prospect", "risk-prospect@example.com")).await;
    assert_eq!(risk(app.get(&prospect.name).await.unwrap()), Risk::Unspecified);
    assert_eq!(filtered(&app, "churn_risk = HIGH").await.len(), 2);
    assert_eq!(filtered(&app, "churn_risk = CHURN_RISK_MEDIUM").await.len(), 2);
}

#[tokio::test]
async fn the_regrade_fits_a_lifetime_value_model_and_values_every_buyer() {
    let app = spawn_app().await;
    let get = pb::GetGradingSettingsRequest { name: "gradingSettings".into() };
    let regrade = pb::RegradeCustomersRequest { name: "gradingSettings".into() };
    // Too few buyers: no model, no predictions.
    let few = app.create(customer("Few", "few@example.com")).await;
    buy(&app, &few.name, &[(3, 100), (9, 100)]).await;
    let settings = grading(&app).regrade_customers(app.admin(regrade.clone())).await.unwrap().into_inner().grading_settings.unwrap();
    assert!(settings.lifetime_model.is_none());
    assert_eq!(app.get(&few.name).await.unwrap().probability_alive, None);

    // Sixty buyers with varied rhythms (every 4 to 28 days, 1 to 6 purchases) and silences (0 to 118 days).
    let mut buyers = Vec::new();
    let mut purchases = Vec::new();
    for i in 0..60_u64 {
        let created = app.create(customer(&format!("Buyer {i}"), &format!("clv{i}@example.com"))).await;
        let (count, gap, silence) = (1 + i % 6, 4 + 4 * (i % 7), (i * 2) % 120);
        purchases.extend((0..count).map(|k| (created.name.clone(), silence + k * gap, 50 + 10 * i64::try_from(i % 9).unwrap())));
        buyers.push(created.name);
    }
    buy_many(&app, &purchases).await;

    let settings = grading(&app).regrade_customers(app.admin(regrade.clone())).await.unwrap().into_inner().grading_settings.unwrap();
    let model = settings.lifetime_model.expect("a model from 61 buyers");
    assert_eq!(model.fitted_customers, 61);
    assert!(model.fit_time.is_some());
    assert!([model.r, model.alpha, model.a, model.b, model.p, model.q, model.gamma].iter().all(|v| v.is_finite() && *v > 0.0));
    assert!((0.5..2.0).contains(&model.repeat_check), "the model explains the repeat purchases: {}", model.repeat_check);

    let mut valued = Vec::new();
    for name in &buyers {
        let c = app.get(name).await.unwrap();
        let alive = c.probability_alive.expect("every buyer has a probability alive");
        assert!((0.0..=1.0).contains(&alive));
        let value = c.expected_value.expect("and an expected value");
        assert_eq!(value.currency_code, "CNY");
        assert!(c.expected_purchases.unwrap() >= 0.0);
        valued.push((c.name, alive, value.units));
    }
    // Buyer 0 bought once: the model cannot tell them gone. Buyer 55 bought 2 times, every 28 days, silent for 110: likely gone.
    assert_eq!(valued[0].1, 1.0);
    assert!(valued[55].1 < valued[1].1, "{valued:?}");
    let likely_gone: Vec<String> = {
        let mut v: Vec<String> = valued.iter().filter(|(_, alive, _)| *alive < 0.5).map(|(n, _, _)| n.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(filtered(&app, "probability_alive < 0.5").await, likely_gone);

    // Most valuable first.
    let request = pb::ListCustomersRequest { order_by: "expected_value desc".into(), page_size: 100, ..Default::default() };
    let ordered = app.customers.clone().list_customers(app.admin(request)).await.unwrap().into_inner().customers;
    let values: Vec<i64> =
        ordered.iter().map(|c| c.expected_value.as_ref().map_or(-1, |m| m.units * 100 + i64::from(m.nanos) / 10_000_000)).collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    assert!(ordered.last().unwrap().expected_value.is_none() || ordered.len() == 61);

    // A purchase revalues its customer at once, against the stored model.
    let before = app.get(&buyers[55]).await.unwrap();
    buy(&app, &buyers[55], &[(0, 90)]).await;
    let after = app.get(&buyers[55]).await.unwrap();
    assert!(after.probability_alive.unwrap() > before.probability_alive.unwrap(), "{before:?} {after:?}");

    // A longer horizon expects more.
    let horizon = pb::UpdateGradingSettingsRequest {
        grading_settings: Some(pb::GradingSettings { name: "gradingSettings".into(), value_horizon_days: 730, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["value_horizon_days".into()] }),
    };
    grading(&app).update_grading_settings(app.admin(horizon)).await.unwrap();
    grading(&app).regrade_customers(app.admin(regrade)).await.unwrap();
    let longer = app.get(&buyers[1]).await.unwrap();
    let shorter = valued.iter().find(|(n, _, _)| *n == buyers[1]).unwrap();
    assert!(longer.expected_value.as_ref().unwrap().units > shorter.2, "{longer:?}");
    let stored = grading(&app).get_grading_settings(app.admin(get)).await.unwrap().into_inner().grading_settings.unwrap();
    assert_eq!(stored.value_horizon_days, 730);
}
