//! The holiday calendar over REST through the gateway, as the docs' curl
//! examples call it (real profiles, campaigns and gateway processes): the
//! year's dates in the JSON, a holiday of the tenant's own created with its
//! id in the query, a built-in disabled under its etag.

use crm_e2e::{assert_ok, marketing::Marketing};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_calendar_is_read_and_changed_over_rest() {
    let suite = Marketing::start(&[]).await;

    // 2034's calendar: 春节 after 2033's leap 11th month.
    let calendar = suite.call(&suite.marketer, Method::GET, "/v1/holidays?year=2034", None).await;
    assert_ok(&calendar);
    let spring = calendar.body["holidays"].as_array().unwrap().iter().find(|h| h["name"] == "holidays/spring-festival").cloned().unwrap();
    assert_eq!(spring["dates"], json!([{"year": 2034, "month": 2, "day": 19}]), "{spring:#}");
    assert_eq!(spring["rule"], json!({"lunar": {"month": 1, "day": 1}}));

    // A holiday of the tenant's own; the same id again is a 409 in the JSON error format.
    let body = json!({"displayName": "建司纪念日", "rule": {"lunar": {"month": 3, "day": 3}}});
    let created = suite.call(&suite.marketer, Method::POST, "/v1/holidays?holidayId=founders-day", Some(body.clone())).await;
    assert_ok(&created);
    assert_eq!(created.body["name"], "holidays/founders-day");
    let again = suite.call(&suite.marketer, Method::POST, "/v1/holidays?holidayId=founders-day", Some(body)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:#}", again.body);
    assert_eq!(again.reason(), "HOLIDAY_EXISTS");

    // Christmas disabled under its etag; a stale etag is refused.
    let patch = json!({"disabled": true, "etag": "r1"});
    let disabled = suite.call(&suite.marketer, Method::PATCH, "/v1/holidays/christmas?updateMask=disabled", Some(patch.clone())).await;
    assert_ok(&disabled);
    assert_eq!((disabled.body["disabled"].clone(), disabled.body["etag"].clone()), (json!(true), json!("r2")));
    let stale = suite.call(&suite.marketer, Method::PATCH, "/v1/holidays/christmas?updateMask=disabled", Some(patch)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{:#}", stale.body);
    assert_eq!(stale.reason(), "ETAG_MISMATCH");
}
