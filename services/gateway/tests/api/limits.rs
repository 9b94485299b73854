//! Rate limits (429 with Retry-After and RetryInfo) and the page-size cap.

use crm_testkit::auth::{claims, token_with};
use reqwest::{Method, StatusCode};

use crate::helpers::spawn_gateway_with;

fn bearer(token: &str) -> [(&'static str, String); 1] {
    [("authorization", format!("Bearer {token}"))]
}

#[tokio::test]
async fn a_caller_over_its_read_budget_gets_429_with_when_to_retry() {
    let gw = spawn_gateway_with(|c| c.rate_limit_per_subject = "read=1/3".parse().unwrap()).await;
    let alice = token_with(&claims("alice", gw.tenant, &["admin"]));
    for _ in 0..3 {
        assert_eq!(gw.call_with(Method::GET, "/v1/customers", None, &bearer(&alice)).await.status, StatusCode::OK);
    }

    let limited = gw.call_with(Method::GET, "/v1/customers", None, &bearer(&alice)).await;

    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(limited.reason(), "RATE_LIMITED");
    assert_eq!(limited.detail("google.rpc.ErrorInfo")["metadata"]["scope"], "subject");
    let delay = limited.detail("google.rpc.RetryInfo")["retryDelay"].as_str().unwrap().trim_end_matches('s').parse::<f64>().unwrap();
    assert!(delay > 0.0 && delay <= 1.0, "{delay}");
    assert_eq!(limited.headers["retry-after"], "1");
    // Writes have their own budget, and another caller is not affected.
    let create = gw.call_with(Method::POST, "/v1/customers", Some(serde_json::json!({"displayName": "Ada"})), &bearer(&alice)).await;
    assert_eq!(create.status, StatusCode::OK);
    let bob = token_with(&claims("bob", gw.tenant, &["admin"]));
    assert_eq!(gw.call_with(Method::GET, "/v1/customers", None, &bearer(&bob)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_budget_is_shared_by_all_its_callers() {
    let gw = spawn_gateway_with(|c| c.rate_limit_per_tenant = "read=0.1/2".parse().unwrap()).await;
    let callers: Vec<String> = ["a", "b", "c"].iter().map(|s| token_with(&claims(s, gw.tenant, &["readonly"]))).collect();
    let mut statuses = Vec::new();
    for token in &callers {
        statuses.push(gw.call_with(Method::GET, "/v1/customers", None, &bearer(token)).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    let other_tenant = token_with(&claims("a", uuid::Uuid::now_v7(), &["readonly"]));
    assert_eq!(gw.call_with(Method::GET, "/v1/customers", None, &bearer(&other_tenant)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn page_sizes_above_the_cap_are_lowered() {
    let gw = spawn_gateway_with(|c| c.max_page_size = 2).await;
    for name in ["A", "B", "C"] {
        gw.create_customer(name, &format!("{name}@example.com")).await;
    }
    let page = gw.call(Method::GET, "/v1/customers?pageSize=1000", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body["customers"].as_array().unwrap().len(), 2);
    assert!(page.body["nextPageToken"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn behind_a_trusted_proxy_anonymous_callers_are_told_apart_by_its_header() {
    let gw = spawn_gateway_with(|c| {
        c.rate_limit_per_subject = "write=0.1/1".parse().unwrap();
        c.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    let answer = async |client: &'static str| {
        let body = serde_json::json!({"token": "not-a-real-token", "csat": 5});
        gw.call_with(Method::POST, "/v1/surveys:answer", Some(body), &[("x-forwarded-for", client.to_owned())]).await
    };
    assert_ne!(answer("203.0.113.7, 10.0.0.1").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer("203.0.113.7, 10.0.0.2").await.status, StatusCode::TOO_MANY_REQUESTS, "same client, other proxy hop");
    assert_ne!(answer("198.51.100.9").await.status, StatusCode::TOO_MANY_REQUESTS, "another client has its own bucket");
}
