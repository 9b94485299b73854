//! The loyalty programme against real campaigns and profiles: purchases
//! recorded in profiles earn points (at the tier's multiplier, in the
//! programme's currency only, refunds and purchases from before the rate
//! nothing), member tiers follow the points over the window, and bad
//! programmes are refused with each field named.

use std::time::Duration;

use crm_proto::{
    crm::{
        campaigns::v1::{self as pb, loyalty_service_client::LoyaltyServiceClient},
        profiles::v1::{self as profiles, transaction_service_client::TransactionServiceClient},
    },
    google::r#type::Money,
};
use tonic::Code;

use crate::helpers::{Person, TestApp, assert_error, spawn_app, violations};

fn tier(id: &str, threshold: i64, multiplier_percent: i32) -> pb::MemberTier {
    pb::MemberTier { id: id.into(), display_name: id.into(), threshold, multiplier_percent }
}

async fn set_program(app: &TestApp, program: pb::LoyaltyProgram, paths: &[&str]) -> Result<pb::LoyaltyProgram, tonic::Status> {
    let request = pb::UpdateLoyaltyProgramRequest {
        loyalty_program: Some(pb::LoyaltyProgram { name: "loyaltyProgram".into(), ..program }),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
    };
    let mut client = LoyaltyServiceClient::new(app.clients.channel.clone());
    Ok(client.update_loyalty_program(app.as_roles(request, &["marketer"])).await?.into_inner().loyalty_program.unwrap())
}

async fn buy(app: &TestApp, customer: &str, id: &str, kind: profiles::TransactionKind, currency: &str, units: i64, nanos: i32) {
    let transaction = profiles::Transaction {
        external_id: id.into(),
        kind: kind as i32,
        amount: Some(Money { currency_code: currency.into(), units, nanos }),
        occur_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 60, nanos: 0 }),
        ..Default::default()
    };
    let request = profiles::CreateTransactionRequest { parent: customer.into(), transaction: Some(transaction) };
    TransactionServiceClient::new(app.profiles.as_ref().unwrap().channel.clone())
        .create_transaction(app.as_roles(request, &["agent"]))
        .await
        .unwrap();
}

async fn account(app: &TestApp, customer: &str) -> pb::PointsAccount {
    let request = app.as_roles(pb::GetPointsAccountRequest { name: format!("{customer}/pointsAccount") }, &["marketer"]);
    LoyaltyServiceClient::new(app.clients.channel.clone()).get_points_account(request).await.unwrap().into_inner().points_account.unwrap()
}

/// Waits (at most 15 s) until the customer's balance is `balance`.
async fn balance_reaches(app: &TestApp, customer: &str, balance: i64) -> pb::PointsAccount {
    for _ in 0..300 {
        let found = account(app, customer).await;
        if found.balance == balance {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the balance did not reach {balance}: {:?}", account(app, customer).await);
}

#[tokio::test]
async fn purchases_earn_points_at_the_tiers_rate_and_tiers_follow_the_points() {
    let app = spawn_app().await;
    let ada = app.customer(Person { name: "Ada", ..Default::default() }).await;
    // Bought before the programme earned anything: earns nothing when the stream is replayed to campaigns.
    buy(&app, &ada, "before", profiles::TransactionKind::Purchase, "CNY", 500, 0).await;

    let program = pb::LoyaltyProgram {
        earn_currency_code: "CNY".into(),
        points_per_unit: 1,
        earned_points_expire_days: 365,
        tier_basis: pb::MemberTierBasis::Points as i32,
        tiers: vec![tier("silver", 100, 100), tier("gold", 300, 150)],
        ..Default::default()
    };
    let stored = set_program(&app, program, &["earn_currency_code", "points_per_unit", "earned_points_expire_days", "tier_basis", "tiers"])
        .await
        .unwrap();
    assert_eq!((stored.tier_window_days, stored.tiers.len()), (365, 2));

    // CNY 99.99 at 1 point per yuan: 99 points, no tier yet.
    buy(&app, &ada, "order-1", profiles::TransactionKind::Purchase, "CNY", 99, 990_000_000).await;
    let first = balance_reaches(&app, &ada, 99).await;
    assert_eq!(first.tier, "");
    // CNY 250: 349 points, gold.
    buy(&app, &ada, "order-2", profiles::TransactionKind::Purchase, "CNY", 250, 0).await;
    let gold = balance_reaches(&app, &ada, 349).await;
    assert_eq!((gold.tier.as_str(), gold.tier_progress), ("gold", 349));
    // A refund, a purchase in dollars: nothing; CNY 100 as gold: 150 points.
    buy(&app, &ada, "refund-1", profiles::TransactionKind::Refund, "CNY", 50, 0).await;
    buy(&app, &ada, "order-usd", profiles::TransactionKind::Purchase, "USD", 80, 0).await;
    buy(&app, &ada, "order-3", profiles::TransactionKind::Purchase, "CNY", 100, 0).await;
    let after = balance_reaches(&app, &ada, 499).await;
    assert_eq!(after.tier_progress, 499);

    // The ledger: three earnings, each named by its transaction, expiring in a year.
    let request =
        app.as_roles(pb::ListPointsEntriesRequest { parent: format!("{ada}/pointsAccount"), ..Default::default() }, &["marketer"]);
    let entries = LoyaltyServiceClient::new(app.clients.channel.clone()).list_points_entries(request).await.unwrap().into_inner().entries;
    assert_eq!(entries.iter().map(|e| e.points).collect::<Vec<_>>(), [150, 250, 99]);
    assert!(entries.iter().all(|e| e.source.starts_with("transactions/") && e.expire_time.is_some()), "{entries:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(account(&app, &ada).await.balance, 499, "nothing more was earned");
}

#[tokio::test]
async fn bad_programmes_are_refused_with_each_field_named() {
    let app = spawn_app().await;
    let program = pb::LoyaltyProgram {
        earn_currency_code: "XXX".into(),
        points_per_unit: 5000,
        tiers: vec![tier("gold", 300, 150), tier("silver", 100, 90)],
        ..Default::default()
    };
    let refused = assert_error(
        set_program(&app, program.clone(), &["earn_currency_code", "points_per_unit", "tiers"]).await,
        Code::InvalidArgument,
        "INVALID_FIELDS",
    );
    let fields: Vec<String> = violations(&refused).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "loyalty_program.points_per_unit",
            "loyalty_program.tiers[1].threshold",
            "loyalty_program.tiers[1].multiplier_percent",
            "loyalty_program.earn_currency_code"
        ]
    );
    // Changing the programme needs loyalty.configure, which an agent lacks.
    let request = pb::UpdateLoyaltyProgramRequest {
        loyalty_program: Some(pb::LoyaltyProgram { name: "loyaltyProgram".into(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["points_per_unit".into()] }),
    };
    let denied = LoyaltyServiceClient::new(app.clients.channel.clone()).update_loyalty_program(app.as_roles(request, &["agent"])).await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
}

/// When `customer`'s tier is next judged without a booking, as stored.
async fn review_time(app: &TestApp, customer: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let id = uuid::Uuid::parse_str(customer.trim_start_matches("customers/")).unwrap();
    sqlx::query_scalar("SELECT tier_review_time FROM points_balances WHERE customer_id = $1")
        .bind(id)
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

/// Waits (at most 15 s) until the customer's tier is `tier`.
async fn tier_becomes(app: &TestApp, customer: &str, tier: &str) -> pb::PointsAccount {
    for _ in 0..300 {
        let found = account(app, customer).await;
        if found.tier == tier {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the tier did not become {tier:?}: {:?}", account(app, customer).await);
}

#[tokio::test]
async fn tiers_fall_when_grants_leave_the_window_and_follow_a_changed_programme() {
    let app = spawn_app().await;
    let program = pb::LoyaltyProgram {
        tier_basis: pb::MemberTierBasis::Points as i32,
        tier_window_days: 30,
        tiers: vec![tier("silver", 100, 100)],
        ..Default::default()
    };
    set_program(&app, program.clone(), &["tier_basis", "tier_window_days", "tiers"]).await.unwrap();
    let ada = app.customer(Person { name: "Ada", ..Default::default() }).await;
    let mut loyalty = LoyaltyServiceClient::new(app.clients.channel.clone());
    let grant = |points: i64, request_id: &str| {
        let request = pb::GrantPointsRequest {
            account: format!("{ada}/pointsAccount"),
            points,
            reason: "welcome".into(),
            expire_time: None,
            request_id: request_id.into(),
        };
        app.as_roles(request, &["marketer"])
    };
    loyalty.grant_points(grant(150, "welcome")).await.unwrap();
    assert_eq!(account(&app, &ada).await.tier, "silver");
    // Judged again when the grant leaves the 30-day window, not before. The
    // programme's first sweep may still mark her due now (it started before
    // she had a balance), so wait for the review that follows to settle.
    let in_30_days = chrono::Utc::now() + chrono::Duration::days(30);
    let mut due = None;
    for _ in 0..300 {
        due = review_time(&app, &ada).await;
        if due.is_some_and(|due| (due - in_30_days).num_seconds().abs() < 60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let due = due.expect("a review is due some day");
    assert!((due - in_30_days).num_seconds().abs() < 60, "{due} against {in_30_days}");

    // A month on (the grant moved back 31 days, its review due): the tier falls, though nothing was booked.
    let id = uuid::Uuid::parse_str(ada.trim_start_matches("customers/")).unwrap();
    let mut owner = app.owner().await;
    sqlx::query("UPDATE points_entries SET create_time = create_time - interval '31 days' WHERE customer_id = $1")
        .bind(id)
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("UPDATE points_balances SET tier_review_time = now() WHERE customer_id = $1").bind(id).execute(&mut owner).await.unwrap();
    let fallen = tier_becomes(&app, &ada, "").await;
    assert_eq!((fallen.tier_progress, fallen.balance), (0, 150), "the points stay; the tier's progress left the window");
    assert_eq!(review_time(&app, &ada).await, None, "nothing left in the window to review");

    // A new grant makes her silver again; a programme with a higher threshold judges everyone again.
    loyalty.grant_points(grant(120, "again")).await.unwrap();
    assert_eq!(account(&app, &ada).await.tier, "silver");
    let stricter = pb::LoyaltyProgram { tiers: vec![tier("silver", 200, 100)], ..program.clone() };
    set_program(&app, stricter, &["tiers"]).await.unwrap();
    assert_eq!(tier_becomes(&app, &ada, "").await.tier_progress, 120);
    // Silver again at 220; a programme without tiers takes every tier away, and nothing is left to review.
    loyalty.grant_points(grant(100, "more")).await.unwrap();
    assert_eq!(account(&app, &ada).await.tier, "silver");
    set_program(&app, pb::LoyaltyProgram { tiers: vec![], ..program }, &["tiers"]).await.unwrap();
    tier_becomes(&app, &ada, "").await;
    for _ in 0..100 {
        if review_time(&app, &ada).await.is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a review is still due without tiers: {:?}", review_time(&app, &ada).await);
}
