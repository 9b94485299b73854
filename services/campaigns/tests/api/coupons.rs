//! Coupons against real campaigns and profiles: issued once per request id
//! (and once per journey step), redeemed exactly once — of concurrent
//! redemptions of one code exactly one succeeds — and refused clearly when
//! unknown, expired, another customer's or used.

use crm_proto::{
    crm::campaigns::v1::{self as pb, coupon_service_client::CouponServiceClient, journey_service_client::JourneyServiceClient},
    google::r#type::Money,
};
use tonic::{Code, transport::Channel};

use crate::helpers::{Person, TestApp, assert_error, spawn_app, violations};

fn yuan(units: i64) -> Option<Money> {
    Some(Money { currency_code: "CNY".into(), units, nanos: 0 })
}

fn in_days(days: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + days * 86_400, nanos: 0 })
}

async fn client(app: &TestApp) -> CouponServiceClient<Channel> {
    CouponServiceClient::new(app.clients.channel.clone())
}

async fn issue(app: &TestApp, customer: &str, request_id: &str) -> Result<pb::Coupon, tonic::Status> {
    let coupon = pb::Coupon {
        customer: customer.into(),
        value: yuan(20),
        description: "Welcome back".into(),
        expire_time: in_days(30),
        ..Default::default()
    };
    let request = app.as_roles(pb::IssueCouponRequest { coupon: Some(coupon), request_id: request_id.into() }, &["agent"]);
    Ok(client(app).await.issue_coupon(request).await?.into_inner().coupon.unwrap())
}

async fn redeem(app: &TestApp, code: &str, reference: &str, customer: &str) -> Result<pb::Coupon, tonic::Status> {
    let request = pb::RedeemCouponRequest { code: code.into(), reference: reference.into(), customer: customer.into() };
    Ok(client(app).await.redeem_coupon(app.as_roles(request, &["agent"])).await?.into_inner().coupon.unwrap())
}

#[tokio::test]
async fn a_coupon_is_issued_once_and_redeemed_exactly_once_under_concurrency() {
    let app = spawn_app().await;
    let ada = app.customer(Person { name: "Ada", ..Default::default() }).await;
    let bob = app.customer(Person { name: "Bob", ..Default::default() }).await;

    let coupon = issue(&app, &ada, "welcome-ada").await.unwrap();
    assert_eq!((coupon.state, coupon.code.len(), coupon.customer.as_str()), (pb::CouponState::Issued as i32, 12, ada.as_str()));
    assert_eq!(coupon.value, yuan(20));
    assert_eq!(issue(&app, &ada, "welcome-ada").await.unwrap().name, coupon.name, "a retry is the same coupon");

    // Another customer's code is unknown to them; a forged one is unknown.
    assert_error(redeem(&app, &coupon.code, "order-1", &bob).await, Code::NotFound, "NOT_FOUND");
    assert_error(redeem(&app, "ABCDEFGHJKMN", "order-1", "").await, Code::NotFound, "NOT_FOUND");

    // Ten tills redeem the same code at once: exactly one succeeds.
    let code = coupon.code.to_lowercase();
    let attempts: Vec<_> = (0..10)
        .map(|i| {
            let (app, code) = (&app, code.clone());
            async move { redeem(app, &code, &format!("order-{i}"), "").await }
        })
        .collect();
    let results = futures::future::join_all(attempts).await;
    let won: Vec<&pb::Coupon> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for lost in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
        assert!(format!("{lost:?}").contains("COUPON_ALREADY_REDEEMED"), "{lost:?}");
    }
    let reference = won[0].redeem_reference.clone();
    // Another tenant sees neither the coupon nor its code.
    let other = crm_testkit::auth::token(uuid::Uuid::now_v7(), &["admin"]);
    let foreign = crm_testkit::auth::with_token(pb::GetCouponRequest { name: coupon.name.clone() }, &other);
    assert_error(client(&app).await.get_coupon(foreign).await, Code::NotFound, "NOT_FOUND");
    let foreign = pb::RedeemCouponRequest { code: code.clone(), reference: reference.clone(), customer: String::new() };
    let foreign = client(&app).await.redeem_coupon(crm_testkit::auth::with_token(foreign, &other)).await;
    assert_error(foreign, Code::NotFound, "NOT_FOUND");
    assert_eq!(won[0].state, pb::CouponState::Redeemed as i32);
    // The winning till's retry gets the coupon back; anyone else is refused.
    assert_eq!(redeem(&app, &code, &reference, "").await.unwrap().name, coupon.name);
    assert_error(redeem(&app, &code, "order-99", "").await, Code::FailedPrecondition, "COUPON_ALREADY_REDEEMED");

    let listed = client(&app)
        .await
        .list_coupons(app.as_roles(pb::ListCouponsRequest { customer: ada.clone(), ..Default::default() }, &["analyst"]))
        .await
        .unwrap()
        .into_inner()
        .coupons;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, pb::CouponState::Redeemed as i32);
}

#[tokio::test]
async fn bad_coupons_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    let ada = app.customer(Person { name: "Ada", ..Default::default() }).await;
    let bad = pb::Coupon { customer: "people/1".into(), value: yuan(0), expire_time: in_days(-1), ..Default::default() };
    let request = app.as_roles(pb::IssueCouponRequest { coupon: Some(bad), request_id: String::new() }, &["agent"]);
    let refused = assert_error(client(&app).await.issue_coupon(request).await, Code::InvalidArgument, "INVALID_FIELDS");
    let fields: Vec<String> = violations(&refused).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["coupon.value", "coupon.expire_time", "coupon.customer"]);
    // A customer profiles does not have.
    let nobody = format!("customers/{}", uuid::Uuid::now_v7());
    assert_error(issue(&app, &nobody, "").await, Code::InvalidArgument, "UNKNOWN_CUSTOMER");
    // Issuing needs coupons.write.
    let coupon = pb::Coupon { customer: ada, value: yuan(5), expire_time: in_days(1), ..Default::default() };
    let by_analyst = app.as_roles(pb::IssueCouponRequest { coupon: Some(coupon), request_id: String::new() }, &["analyst"]);
    assert_error(client(&app).await.issue_coupon(by_analyst).await, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn a_journey_step_issues_one_coupon_per_run() {
    let app = spawn_app().await;
    let ada = app.customer(Person { name: "Ada", ..Default::default() }).await;
    let step = pb::JourneyStep {
        id: "gift".into(),
        kind: Some(pb::journey_step::Kind::IssueCoupon(pb::IssueCouponStep {
            value: yuan(10),
            valid_days: 30,
            description: "Birthday gift".into(),
        })),
        next: String::new(),
    };
    let journey = pb::Journey {
        display_name: "Gift".into(),
        trigger: Some(pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Api(true)) }),
        steps: vec![step],
        ..Default::default()
    };
    let draft = app.clients.publish_journey(journey).await;
    let mut journeys = JourneyServiceClient::new(app.clients.channel.clone());
    let enter = pb::EnterJourneyRequest { name: draft.name.clone(), customer: ada.clone(), request_id: String::new() };
    let run = journeys.enter_journey(app.as_roles(enter, &["service"])).await.unwrap().into_inner().run.unwrap();
    let mut done = run.clone();
    for _ in 0..200 {
        done = journeys
            .get_journey_run(app.as_roles(pb::GetJourneyRunRequest { name: run.name.clone() }, &["marketer"]))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if done.state == pb::JourneyRunState::Completed as i32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(done.steps.len(), 1, "{done:?}");
    assert_eq!(done.steps[0].outcome, pb::JourneyStepOutcome::CouponIssued as i32);
    let coupon = client(&app).await.get_coupon(app.as_roles(pb::GetCouponRequest { name: done.steps[0].detail.clone() }, &["agent"])).await;
    let coupon = coupon.unwrap().into_inner().coupon.unwrap();
    assert_eq!((coupon.customer.as_str(), coupon.value.clone(), coupon.description.as_str()), (ada.as_str(), yuan(10), "Birthday gift"));
    assert_eq!(coupon.source, format!("{}/steps/0", run.name));
}
