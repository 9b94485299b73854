//! HTTP-level behaviour: NDJSON server streams, h2c, gzip/brotli, CORS, the response size limit.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_gateway, spawn_gateway_with};

#[tokio::test]
async fn a_server_stream_arrives_as_ndjson() {
    let gw = spawn_gateway_with(|c| {
        // Events are served by every service; route the stream to the profiles process.
        let profiles = c.backends.split(',').next().unwrap().split_once('=').unwrap().1.to_owned();
        c.backends.push_str(&format!(",crm.events.v1.EventService={profiles}"));
    })
    .await;
    let created = gw.create_customer("Ada", "ada@example.com").await;

    let mut response = gw
        .http
        .get(format!("{}/v1/events:subscribe?afterPosition=0&types=crm.profiles.v1.CustomerCreated", gw.base))
        .header("authorization", format!("Bearer {}", gw.admin_token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut buffer = Vec::new();
    while !buffer.contains(&b'\n') {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk()).await.expect("an event in time").unwrap();
        buffer.extend_from_slice(&chunk.expect("the stream stays open"));
    }
    let line = buffer.split(|b| *b == b'\n').next().unwrap();
    let event: Value = serde_json::from_slice(line).unwrap();
    assert!(event.to_string().contains(created["name"].as_str().unwrap()), "{event:#}");
}

#[tokio::test]
async fn h2c_gzip_and_cors() {
    let gw = spawn_gateway_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    let mut one = serde_json::Value::Null;
    for i in 0..20 {
        one = gw.create_customer(&format!("Customer {i}"), &format!("c{i}@example.com")).await;
    }

    // HTTP/2 without TLS (prior knowledge), and a compressed answer when asked for.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().no_gzip().build().unwrap();
    let response = h2
        .get(format!("{}/v1/customers?pageSize=20", gw.base))
        .header("authorization", format!("Bearer {}", gw.admin_token))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let brotli = h2
        .get(format!("{}/v1/customers?pageSize=20", gw.base))
        .header("authorization", format!("Bearer {}", gw.admin_token))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(brotli.headers()["content-encoding"], "br");
    // One resource (well under 1 KiB) is sent as it is: compressing it would cost more than it saves.
    let small = h2
        .get(format!("{}/v1/{}", gw.base, one["name"].as_str().unwrap()))
        .header("authorization", format!("Bearer {}", gw.admin_token))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), StatusCode::OK);
    assert!(small.headers().get("content-encoding").is_none(), "{:?}", small.headers());

    // CORS preflight for the configured origin only.
    let preflight = |origin: &'static str| {
        gw.http
            .request(Method::OPTIONS, format!("{}/v1/customers", gw.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Without configured origins there are no CORS headers at all.
    let plain = spawn_gateway().await;
    let response = plain.http.get(format!("{}/healthz", plain.base)).header("origin", "https://app.example.com").send().await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_backend_answer_over_the_response_limit_is_a_502_not_a_huge_body() {
    let gw = spawn_gateway_with(|c| c.max_response_bytes = 512).await;
    for i in 0..10 {
        gw.create_customer(&format!("Customer {i}"), &format!("c{i}@example.com")).await;
    }
    let too_big = gw.call(Method::GET, "/v1/customers?pageSize=10", None).await;
    assert_eq!(too_big.status, StatusCode::BAD_GATEWAY, "{:#}", too_big.body);
    assert_eq!(too_big.reason(), "RESPONSE_TOO_LARGE");
    assert_eq!(gw.call(Method::GET, "/v1/customers?pageSize=1", None).await.status, StatusCode::OK, "a smaller page fits");
}
