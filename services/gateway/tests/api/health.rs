//! Liveness and readiness.

use reqwest::{Method, StatusCode};

use crate::helpers::spawn_gateway;

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
