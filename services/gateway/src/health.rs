//! `/healthz` (the process is up) and `/readyz` (every backend answers the
//! gRPC health check with SERVING, and the gateway is not draining), for
//! load balancers and Kubernetes probes.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::{errors::ApiError, state::Gateway};

/// How long one backend's health check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Liveness: answers as long as the process serves HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "SERVING"}))
}

/// Readiness: 200 when every backend is SERVING, else 503 naming the ones
/// that are not; 503 `DRAINING` from SIGTERM on.
pub async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    if *gateway.draining.borrow() {
        return ApiError::Backend {
            code: tonic::Code::Unavailable,
            message: "draining: the gateway is shutting down; send new requests to another replica".to_owned(),
            details: vec![json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "DRAINING",
                "domain": crate::errors::DOMAIN,
            })],
        }
        .into_response();
    }
    let checks = gateway.backends.iter().map(|(url, channel)| {
        let mut client = HealthClient::new(channel.clone());
        async move {
            let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
            request.set_timeout(CHECK_TIMEOUT);
            let state = match tokio::time::timeout(CHECK_TIMEOUT, client.check(request)).await {
                Ok(Ok(response)) => match ServingStatus::try_from(response.into_inner().status) {
                    Ok(ServingStatus::Serving) => "SERVING",
                    _ => "NOT_SERVING",
                },
                Ok(Err(_)) => "UNREACHABLE",
                Err(_) => "TIMEOUT",
            };
            (url.to_owned(), state)
        }
    });
    let results = futures::future::join_all(checks).await;
    let mut backends = Map::new();
    let mut failed = Vec::new();
    for (url, state) in results {
        // Name backends by what they serve (their packages) so the answer says what is affected.
        let keys: Vec<&str> = gateway.backend_keys(&url);
        for key in &keys {
            backends.insert((*key).to_owned(), json!({"url": url, "status": state}));
        }
        if state != "SERVING" {
            failed.push(format!("{} ({url}): {state}", keys.join(", ")));
        }
    }
    if failed.is_empty() {
        return Json(json!({"status": "SERVING", "backends": backends})).into_response();
    }
    failed.sort();
    let metadata: Map<String, Value> = backends.iter().map(|(k, v)| (k.clone(), v["status"].clone())).collect();
    ApiError::Backend {
        code: tonic::Code::Unavailable,
        message: format!("not ready: {}", failed.join("; ")),
        details: vec![json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "BACKENDS_NOT_SERVING",
            "domain": crate::errors::DOMAIN,
            "metadata": metadata,
        })],
    }
    .into_response()
}
