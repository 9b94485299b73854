//! Tickets through REST: a second backend behind the same gateway.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{path, spawn_gateway};

#[tokio::test]
async fn a_ticket_is_opened_commented_and_transitioned() {
    let gw = spawn_gateway().await;
    let customer = gw.create_customer("Grace Hopper", "grace@example.com").await;

    let created = gw
        .call(
            Method::POST,
            "/v1/tickets",
            Some(json!({"customer": customer["name"], "subject": "Printer on fire", "priority": "PRIORITY_HIGH"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:#}", created.body);
    let ticket = created.body.clone();
    assert_eq!(ticket["status"], "STATUS_NEW", "enums as names");

    let comment =
        gw.call(Method::POST, &format!("{}/comments", path(&ticket["name"])), Some(json!({"body": "We are on it", "public": true}))).await;
    assert_eq!(comment.status, StatusCode::OK, "{:#}", comment.body);

    let moved = gw
        .call(
            Method::POST,
            &format!("{}:transition", path(&ticket["name"])),
            Some(json!({"status": "STATUS_PENDING", "reason": "waiting"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:#}", moved.body);
    assert_eq!(moved.body["ticket"]["status"], "STATUS_PENDING");

    let comments = gw.call(Method::GET, &format!("{}/comments", path(&ticket["name"])), None).await;
    assert_eq!(comments.status, StatusCode::OK, "{:#}", comments.body);
    let bodies: Vec<&str> = comments.body["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
    assert!(bodies.contains(&"We are on it"), "{bodies:?}");
}
