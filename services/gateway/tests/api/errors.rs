//! What clients see when something goes wrong: the Google JSON error format
//! with the right HTTP status, from the gateway itself or from a backend.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{path, spawn_gateway, spawn_gateway_with};

#[tokio::test]
async fn backend_errors_keep_their_details() {
    let gw = spawn_gateway().await;

    let missing = gw.call(Method::GET, "/v1/customers/0190a4c2-0000-7000-8000-00000000dead", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{:#}", missing.body);
    assert_eq!(missing.body["error"]["code"], 404);
    assert_eq!(missing.body["error"]["status"], "NOT_FOUND");
    assert_eq!(missing.detail("google.rpc.ErrorInfo")["domain"], "profiles.crm");

    let invalid = gw.call(Method::POST, "/v1/customers", Some(json!({"displayName": "", "emails": [{"address": "not-an-email"}]}))).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{:#}", invalid.body);
    assert_eq!(invalid.body["error"]["status"], "INVALID_ARGUMENT");
    let fields: Vec<&str> = invalid.detail("google.rpc.BadRequest")["fieldViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert!(fields.iter().any(|f| f.contains("display_name")), "{fields:?}");
}

#[tokio::test]
async fn tokens_are_checked_before_forwarding() {
    let gw = spawn_gateway().await;
    let none = gw.call_with(Method::GET, "/v1/customers", None, &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{:#}", none.body);
    assert_eq!(none.reason(), "MISSING_CREDENTIALS");
    assert_eq!(none.detail("google.rpc.ErrorInfo")["domain"], "gateway.crm", "answered by the gateway, not a service");

    let bad = gw.call_with(Method::GET, "/v1/customers", None, &[("authorization", "Bearer not.a.jwt".into())]).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.reason(), "INVALID_TOKEN");

    // A valid token without the permission reaches the service, which refuses it.
    let readonly = gw
        .call_with(
            Method::POST,
            "/v1/customers",
            Some(json!({"displayName": "X"})),
            &[("authorization", format!("Bearer {}", gw.token(&["readonly"])))],
        )
        .await;
    assert_eq!(readonly.status, StatusCode::FORBIDDEN, "{:#}", readonly.body);
    assert_eq!(readonly.body["error"]["status"], "PERMISSION_DENIED");

    // The survey answer carries its own one-time token: no bearer needed, so
    // it reaches the service, which judges the survey token itself.
    let survey = gw.call_with(Method::POST, "/v1/surveys:answer", Some(json!({"token": "bogus", "csat": 5})), &[]).await;
    assert_eq!(survey.detail("google.rpc.ErrorInfo")["domain"], "tickets.crm", "{:#}", survey.body);
    assert_eq!(survey.reason(), "INVALID_SURVEY_TOKEN");
}

#[tokio::test]
async fn client_mistakes_are_4xx() {
    let gw = spawn_gateway_with(|c| c.max_body_bytes = 1024).await;
    let customer = gw.create_customer("Ada", "ada@example.com").await;

    let unknown_route = gw.call(Method::GET, "/v1/nothing/here", None).await;
    assert_eq!(unknown_route.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_route.reason(), "ROUTE_NOT_FOUND");

    let wrong_verb = gw.call(Method::PUT, &path(&customer["name"]), None).await;
    assert_eq!(wrong_verb.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_verb.headers["allow"], "DELETE, GET, PATCH");

    let malformed = gw.call_raw(Method::POST, "/v1/customers", "{\"displayName\": ").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.reason(), "INVALID_JSON");

    let unknown_field = gw.call(Method::POST, "/v1/customers", Some(json!({"displayName": "A", "shoeSize": 42}))).await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    assert!(unknown_field.body["error"]["message"].as_str().unwrap().contains("shoeSize"), "{:#}", unknown_field.body);

    let wrong_type = gw.call(Method::GET, "/v1/customers?pageSize=many", None).await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);

    let oversize = gw.call_raw(Method::POST, "/v1/customers", format!("{{\"displayName\": \"{}\"}}", "x".repeat(2000))).await;
    assert_eq!(oversize.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(oversize.reason(), "BODY_TOO_LARGE");

    let form = gw
        .http
        .post(format!("{}/v1/customers", gw.base))
        .header("authorization", format!("Bearer {}", gw.admin_token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("displayName=Ada")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_stopped_backend_is_503_and_the_other_still_serves() {
    let mut gw = spawn_gateway().await;
    gw.tickets.take().unwrap().terminate().await;

    let down = gw.call(Method::GET, "/v1/tickets", None).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{:#}", down.body);
    assert_eq!(down.body["error"]["status"], "UNAVAILABLE");
    assert_eq!(down.reason(), "BACKEND_UNAVAILABLE");

    let up = gw.call(Method::GET, "/v1/customers", None).await;
    assert_eq!(up.status, StatusCode::OK, "{:#}", up.body);
}
