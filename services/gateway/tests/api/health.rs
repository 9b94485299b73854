//! Liveness and readiness.

use reqwest::{Method, StatusCode};

use crate::helpers::{spawn_gateway, spawn_gateway_with};

#[tokio::test]
async fn ready_while_every_backend_serves_and_not_after_one_stops() {
    let mut gw = spawn_gateway().await;
    let live = gw.call_with(Method::GET, "/healthz", None, &[]).await;
    assert_eq!(live.status, StatusCode::OK);
    let ready = gw.call_with(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{:#}", ready.body);
    assert_eq!(ready.body["backends"]["crm.tickets.v1"]["status"], "SERVING");

    gw.tickets.take().unwrap().terminate().await;
    let ready = gw.call_with(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{:#}", ready.body);
    assert_eq!(ready.body["error"]["status"], "UNAVAILABLE");
    assert!(ready.body["error"]["message"].as_str().unwrap().contains("crm.tickets.v1"), "{:#}", ready.body);
    assert_eq!(ready.detail("google.rpc.ErrorInfo")["metadata"]["crm.profiles.v1"], "SERVING");
    let live = gw.call_with(Method::GET, "/healthz", None, &[]).await;
    assert_eq!(live.status, StatusCode::OK, "liveness does not depend on backends");
}

#[tokio::test]
async fn readiness_fails_from_the_start_of_the_drain_while_requests_are_still_served() {
    let mut gw = spawn_gateway_with(|config| config.shutdown_drain_ms = 3000).await;
    let customer = gw.create_customer("Ada", "ada@example.com").await;
    let ready = gw.call_with(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{:#}", ready.body);

    gw.begin_shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let ready = gw.call_with(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{:#}", ready.body);
    assert_eq!(ready.reason(), "DRAINING");
    let live = gw.call_with(Method::GET, "/healthz", None, &[]).await;
    assert_eq!(live.status, StatusCode::OK, "alive while draining");
    let read = gw.call(Method::GET, &crate::helpers::path(&customer["name"]), None).await;
    assert_eq!(read.status, StatusCode::OK, "requests are still served while draining: {:#}", read.body);

    // After the drain the listener closes.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let closed = gw.http.get(format!("{}/healthz", gw.base)).send().await;
    assert!(closed.is_err(), "no longer accepting after the drain: {closed:?}");
}
