//! Loyalty points against real campaigns and profiles: grants and
//! redemptions booked once per request id, the soonest-expiring points
//! redeemed first, a balance that never goes below zero under concurrent
//! redemptions, expiry booked by the job, and every kind of bad input.

use std::time::Duration;

use crm_proto::crm::campaigns::v1::{self as pb, loyalty_service_client::LoyaltyServiceClient};
use crm_testkit::auth::{customer_token, with_token};
use tonic::{Code, transport::Channel};

use crate::helpers::{Person, assert_error, spawn_app, violations};

fn grant(account: &str, points: i64, request_id: &str, expire_in: Option<Duration>) -> pb::GrantPointsRequest {
    let expire_time = expire_in.map(|d| crm_kit::time::to_timestamp(chrono::Utc::now() + chrono::Duration::from_std(d).unwrap()));
    pb::GrantPointsRequest { account: account.into(), points, reason: "welcome gift".into(), expire_time, request_id: request_id.into() }
}

fn redeem(account: &str, points: i64, request_id: &str) -> pb::RedeemPointsRequest {
    pb::RedeemPointsRequest { account: account.into(), points, reason: "coffee".into(), request_id: request_id.into() }
}

async fn balance(client: &LoyaltyServiceClient<Channel>, token: &str, account: &str) -> pb::PointsAccount {
    let request = with_token(pb::GetPointsAccountRequest { name: account.into() }, token);
    client.clone().get_points_account(request).await.unwrap().into_inner().points_account.unwrap()
}

#[tokio::test]
async fn points_are_granted_and_redeemed_once_each_soonest_expiring_first() {
    let app = spawn_app().await;
    let customer = app.clients.customer(Person { name: "Li Lei", email: "li@example.com", ..Person::default() }).await;
    let account = format!("{customer}/pointsAccount");
    let agent = app.clients.admin_token.clone();
    let mut client = LoyaltyServiceClient::new(app.clients.channel.clone());

    // Two grants: 100 expiring in 10 days, 50 that never expire; a retry books nothing more.
    let ten_days = Some(Duration::from_secs(10 * 86_400));
    let welcome = grant(&account, 100, "g-1", ten_days);
    let first = client.grant_points(with_token(welcome.clone(), &agent)).await.unwrap().into_inner();
    let again = client.grant_points(with_token(welcome, &agent)).await.unwrap().into_inner();
    assert_eq!(first.entry.as_ref().unwrap().name, again.entry.as_ref().unwrap().name, "a retry returns the first booking");
    assert_eq!(again.points_account.as_ref().unwrap().balance, 100);
    let reused = client.grant_points(with_token(grant(&account, 7, "g-1", None), &agent)).await;
    assert_error(reused, Code::InvalidArgument, "REQUEST_ID_REUSED");
    client.grant_points(with_token(grant(&account, 50, "g-2", None), &agent)).await.unwrap();
    let account_now = balance(&client, &agent, &account).await;
    assert_eq!((account_now.balance, account_now.lifetime_earned, account_now.expiring_points), (150, 150, 100));

    // Redeeming 120 takes the expiring 100 first, then 20 of the others: nothing is left to expire.
    let redeemed = client.redeem_points(with_token(redeem(&account, 120, "r-1"), &agent)).await.unwrap().into_inner();
    let entry = redeemed.entry.unwrap();
    assert_eq!((entry.kind, entry.points, entry.balance_after), (pb::PointsEntryKind::Redeem as i32, -120, 30));
    let after = redeemed.points_account.unwrap();
    assert_eq!((after.balance, after.expiring_points, after.next_expire_time), (30, 0, None));
    client.redeem_points(with_token(redeem(&account, 120, "r-1"), &agent)).await.unwrap();
    assert_eq!(balance(&client, &agent, &account).await.balance, 30, "a retried redemption is booked once");

    // More than the balance is refused and changes nothing.
    let short = client.redeem_points(with_token(redeem(&account, 31, "r-2"), &agent)).await;
    assert_error(short, Code::FailedPrecondition, "INSUFFICIENT_POINTS");
    assert_eq!(balance(&client, &agent, &account).await.balance, 30);

    // The ledger, newest first, each entry with the balance it left.
    let listed = client
        .list_points_entries(with_token(pb::ListPointsEntriesRequest { parent: account.clone(), ..Default::default() }, &agent))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let summary: Vec<(i64, i64)> = listed.iter().map(|e| (e.points, e.balance_after)).collect();
    assert_eq!(summary, [(-120, 30), (50, 150), (100, 100)]);
    assert_eq!(listed[2].source, "requests/g-1");

    // The customer reads their own account, not another's; an analyst reads but cannot book.
    let own = customer_token(app.clients.tenant, &customer);
    assert_eq!(balance(&client, &own, &account).await.balance, 30);
    let other = app.clients.customer(Person { name: "Han Meimei", email: "han@example.com", ..Person::default() }).await;
    let foreign = client.get_points_account(with_token(pb::GetPointsAccountRequest { name: format!("{other}/pointsAccount") }, &own)).await;
    assert_error(foreign, Code::NotFound, "NOT_FOUND");
    let analyst = crm_testkit::auth::token(app.clients.tenant, &["analyst"]);
    assert_eq!(balance(&client, &analyst, &account).await.balance, 30);
    let denied = client.grant_points(with_token(grant(&account, 1, "g-3", None), &analyst)).await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn concurrent_redemptions_never_take_the_balance_below_zero() {
    let app = spawn_app().await;
    let customer = app.clients.customer(Person { name: "Li Lei", email: "li@example.com", ..Person::default() }).await;
    let account = format!("{customer}/pointsAccount");
    let agent = app.clients.admin_token.clone();
    let client = LoyaltyServiceClient::new(app.clients.channel.clone());
    client.clone().grant_points(with_token(grant(&account, 30, "g-1", None), &agent)).await.unwrap();

    // Ten redemptions of 10 at once, each its own request: three fit.
    let attempts: Vec<_> = (0..10)
        .map(|i| {
            let (mut client, request) = (client.clone(), with_token(redeem(&account, 10, &format!("r-{i}")), &agent));
            tokio::spawn(async move { client.redeem_points(request).await })
        })
        .collect();
    let (mut succeeded, mut refused) = (0, 0);
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((succeeded, refused), (3, 7));
    assert_eq!(balance(&client, &agent, &account).await.balance, 0);
}

#[tokio::test]
async fn expired_points_leave_the_balance_once() {
    let app = spawn_app().await;
    let customer = app.clients.customer(Person { name: "Li Lei", email: "li@example.com", ..Person::default() }).await;
    let account = format!("{customer}/pointsAccount");
    let agent = app.clients.admin_token.clone();
    let mut client = LoyaltyServiceClient::new(app.clients.channel.clone());
    client.grant_points(with_token(grant(&account, 40, "short-lived", Some(Duration::from_secs(1))), &agent)).await.unwrap();
    client.grant_points(with_token(grant(&account, 5, "lasting", None), &agent)).await.unwrap();
    assert_eq!(balance(&client, &agent, &account).await.balance, 45);

    // The job (every 200 ms in tests) books the expiry once the second has passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while balance(&client, &agent, &account).await.balance != 5 {
        assert!(std::time::Instant::now() < deadline, "the points never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let entries = client
        .list_points_entries(with_token(pb::ListPointsEntriesRequest { parent: account.clone(), ..Default::default() }, &agent))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let expiries: Vec<&pb::PointsEntry> = entries.iter().filter(|e| e.kind == pb::PointsEntryKind::Expire as i32).collect();
    assert_eq!(expiries.len(), 1, "booked once: {entries:?}");
    assert_eq!((expiries[0].points, expiries[0].balance_after), (-40, 5));
    assert!(expiries[0].source.starts_with("expiries/"));
}

#[tokio::test]
async fn bad_bookings_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    let customer = app.clients.customer(Person { name: "Li Lei", email: "li@example.com", ..Person::default() }).await;
    let account = format!("{customer}/pointsAccount");
    let agent = app.clients.admin_token.clone();
    let mut client = LoyaltyServiceClient::new(app.clients.channel.clone());

    let zero = client.grant_points(with_token(grant(&account, 0, "g", None), &agent)).await;
    assert_eq!(
        violations(&assert_error(zero, Code::InvalidArgument, "INVALID_POINTS")),
        [("points".to_owned(), "INVALID_POINTS".to_owned())]
    );
    let no_id = client.redeem_points(with_token(redeem(&account, 1, ""), &agent)).await;
    assert_error(no_id, Code::InvalidArgument, "INVALID_REQUEST_ID");
    let mut long = grant(&account, 1, "g", None);
    long.reason = "x".repeat(201);
    assert_error(client.grant_points(with_token(long, &agent)).await, Code::InvalidArgument, "INVALID_REASON");
    let mut past = grant(&account, 1, "g", None);
    past.expire_time = Some(prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 });
    assert_error(client.grant_points(with_token(past, &agent)).await, Code::InvalidArgument, "INVALID_EXPIRE_TIME");
    let nobody = format!("customers/{}/pointsAccount", uuid::Uuid::now_v7());
    assert_error(client.grant_points(with_token(grant(&nobody, 1, "g", None), &agent)).await, Code::InvalidArgument, "UNKNOWN_CUSTOMER");
    let malformed = client.grant_points(with_token(grant("customers/x", 1, "g", None), &agent)).await;
    assert_error(malformed, Code::InvalidArgument, "INVALID_NAME");
}
