//! Customer 360: one call, two backends fetched concurrently, partial answers
//! when a backend is down or refuses.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestGateway, path, spawn_gateway};

async fn ticket(gw: &TestGateway, customer: &Value, subject: &str) -> Value {
    let created = gw.call(Method::POST, "/v1/tickets", Some(json!({"customer": customer["name"], "subject": subject}))).await;
    assert_eq!(created.status, StatusCode::OK, "{:#}", created.body);
    created.body.clone()
}

fn subjects(tickets: &Value) -> Vec<&str> {
    tickets.as_array().map(|a| a.iter().map(|t| t["subject"].as_str().unwrap()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn the_overview_has_the_customer_and_their_open_and_recent_tickets() {
    let gw = spawn_gateway().await;
    let ada = gw.create_customer("Ada", "ada@example.com").await;
    let other = gw.create_customer("Bob", "bob@example.com").await;
    ticket(&gw, &ada, "Router down").await;
    let done = ticket(&gw, &ada, "Invoice question").await;
    ticket(&gw, &other, "Not Ada's").await;
    let resolved = gw.call(Method::POST, &format!("{}:transition", path(&done["name"])), Some(json!({"status": "STATUS_RESOLVED"}))).await;
    assert_eq!(resolved.status, StatusCode::OK);

    let overview = gw.call(Method::GET, &format!("{}:overview", path(&ada["name"])), None).await;

    assert_eq!(overview.status, StatusCode::OK, "{:#}", overview.body);
    assert_eq!(overview.body["customer"]["displayName"], "Ada");
    assert_eq!(subjects(&overview.body["openTickets"]), ["Router down"]);
    assert_eq!(subjects(&overview.body["recentTickets"]), ["Invoice question"]);
    assert!(overview.body["openTickets"][0]["status"].is_string(), "tickets carry their status and SLA fields");
    assert!(overview.body.get("unavailable").is_none(), "{:#}", overview.body);
    // Beside the tickets, the customer's own timeline: here, the fields set when Ada was created.
    let timeline = overview.body["timeline"].as_array().expect("a timeline");
    assert!(!timeline.is_empty() && timeline.len() <= 20, "{:#}", overview.body);
    assert!(timeline.iter().all(|item| item["record"] == ada["name"] && item["kind"] == "TIMELINE_KIND_FIELD_CHANGE"), "{timeline:#?}");
    assert!(timeline.iter().any(|item| item["change"]["fieldPath"] == "display_name" && item["change"]["newValue"] == "Ada"));

    let unknown = gw.call(Method::GET, &format!("/v1/customers/{}:overview", uuid::Uuid::now_v7()), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let malformed = gw.call(Method::GET, "/v1/customers/not-an-id:overview", None).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.reason(), "INVALID_NAME");
}

#[tokio::test]
async fn a_backend_that_is_down_or_refuses_leaves_its_part_marked_not_a_500() {
    let mut gw = spawn_gateway().await;
    let ada = gw.create_customer("Ada", "ada@example.com").await;
    ticket(&gw, &ada, "Router down").await;

    // A marketer may read the customer but has no ticket access.
    let marketer = [("authorization", format!("Bearer {}", gw.token(&["marketer"])))];
    let partial = gw.call_with(Method::GET, &format!("{}:overview", path(&ada["name"])), None, &marketer).await;
    assert_eq!(partial.status, StatusCode::OK, "{:#}", partial.body);
    assert_eq!(partial.body["customer"]["displayName"], "Ada");
    assert_eq!(
        partial.body["unavailable"],
        json!([{"part": "tickets", "status": "PERMISSION_DENIED", "message": partial.body["unavailable"][0]["message"]}])
    );

    gw.tickets.take().unwrap().terminate().await;
    let without_tickets = gw.call(Method::GET, &format!("{}:overview", path(&ada["name"])), None).await;
    assert_eq!(without_tickets.status, StatusCode::OK, "{:#}", without_tickets.body);
    assert_eq!(without_tickets.body["customer"]["displayName"], "Ada");
    assert_eq!(without_tickets.body["unavailable"][0]["part"], "tickets");
    assert_eq!(without_tickets.body["unavailable"][0]["status"], "UNAVAILABLE");
    assert!(without_tickets.body.get("openTickets").is_none());
}
