//! A support case from start to finish through the gateway's REST API, as the
//! apps involved would make it: a customer app opens a ticket, an agent
//! answers and resolves it, the customer rates the service from the survey
//! link without logging in, and the customer 360 shows the result.
//!
//! The survey's one-time token reaches the customer the way the API provides:
//! staff read it from the ticket's survey (`GET /v1/tickets/{id}/survey`, the
//! agent's permission) and send it as a link; neither the customer role nor
//! any event carries it.

use crm_e2e::{assert_ok, path, spawn_suite};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The resource names in a list field of a reply (absent: none).
fn names(list: &Value) -> Vec<&str> {
    list.as_array().map(|items| items.iter().map(|item| item["name"].as_str().expect("a name")).collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_customer_opens_a_ticket_an_agent_resolves_it_and_the_customer_rates_it_once_without_logging_in() {
    // Arrange: the suite, an agent, and the customer the agent registers.
    let suite = spawn_suite().await;
    let agent = suite.token("alice", &["agent"]);
    let registered = suite
        .post(&agent, "/v1/customers", &json!({"displayName": "Ada Lovelace", "emails": [{"address": "ada@example.com", "primary": true}]}))
        .await;
    assert_ok(&registered);
    let customer = registered.body.clone();
    let customer_app = suite.customer_token(customer["name"].as_str().unwrap());

    // Act 1: the customer app opens a ticket for the customer itself.
    let opened = suite
        .post(
            &customer_app,
            "/v1/tickets",
            &json!({"customer": customer["name"], "subject": "Charged twice", "description": "My March invoice was charged twice."}),
        )
        .await;

    assert_ok(&opened);
    let ticket = opened.body.clone();
    assert_eq!(ticket["customer"], customer["name"]);
    assert_eq!(ticket["status"], "STATUS_NEW");
    let ticket_path = path(&ticket["name"]);

    // Act 2: the agent takes the ticket, replies to the customer and resolves it.
    let assigned = suite.post(&agent, &format!("{ticket_path}:assign"), &json!({"assignee": "alice"})).await;
    let replied =
        suite.post(&agent, &format!("{ticket_path}/comments"), &json!({"body": "Refunded the second charge.", "public": true})).await;
    let resolved =
        suite.post(&agent, &format!("{ticket_path}:transition"), &json!({"status": "STATUS_RESOLVED", "reason": "refund issued"})).await;

    assert_ok(&assigned);
    assert_eq!(assigned.body["ticket"]["assignee"], "alice");
    assert_ok(&replied);
    assert_eq!(replied.body["author"], "alice");
    assert_ok(&resolved);
    assert_eq!(resolved.body["ticket"]["status"], "STATUS_RESOLVED");

    // The customer app sees its ticket resolved, with the agent's reply.
    let seen = suite.get(&customer_app, &ticket_path).await;
    assert_ok(&seen);
    assert_eq!(seen.body["status"], "STATUS_RESOLVED");
    assert!(seen.body["resolveTime"].is_string(), "{:#}", seen.body);
    let thread = suite.get(&customer_app, &format!("{ticket_path}/comments")).await;
    assert_ok(&thread);
    let replies: Vec<(&Value, &Value)> = thread.body["comments"].as_array().unwrap().iter().map(|c| (&c["author"], &c["body"])).collect();
    // Which agent replied is staff-only: the customer sees the reply, not the name.
    assert_eq!(replies, [(&Value::Null, &json!("Refunded the second charge."))]);

    // Act 3: resolving sent a survey; the agent reads its one-time link token
    // (what a mailer would put in the link), the customer answers with that
    // token alone, and a second answer with the same link is refused.
    let sent = suite.get(&agent, &format!("{ticket_path}/survey")).await;
    assert_ok(&sent);
    let survey = sent.body.clone();
    assert_eq!((&survey["ticket"], &survey["agent"]), (&ticket["name"], &json!("alice")));
    assert!(survey["answerTime"].is_null(), "not answered yet: {survey:#}");
    let link_token = survey["answerToken"].as_str().expect("a one-time token").to_owned();
    let answer = json!({"token": link_token, "csat": 5, "nps": 9, "comment": "Quick and friendly"});

    let answered = suite.call(None, Method::POST, "/v1/surveys:answer", Some(&answer)).await;
    let again = suite.call(None, Method::POST, "/v1/surveys:answer", Some(&json!({"token": link_token, "csat": 1}))).await;

    assert_ok(&answered);
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{:#}", again.body);
    assert_eq!(again.body["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(again.reason(), "SURVEY_ALREADY_ANSWERED");
    // Staff see the first answer, not the refused one, in the survey and on the timeline.
    let rated = suite.get(&agent, &format!("{ticket_path}/survey")).await;
    assert_ok(&rated);
    let rated = &rated.body;
    assert_eq!((&rated["csat"], &rated["nps"], &rated["comment"]), (&json!(5), &json!(9), &json!("Quick and friendly")));
    assert!(rated["answerTime"].is_string(), "{rated:#}");
    let timeline = suite.get(&agent, &format!("{ticket_path}/events")).await;
    assert_ok(&timeline);
    let survey_events: Vec<(&Value, &Value)> = timeline.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "SURVEY_ANSWERED")
        .map(|e| (&e["actor"], &e["detail"]))
        .collect();
    assert_eq!(survey_events, [(&json!("customer"), &json!("CSAT 5, NPS 9"))]);

    // Act 4: the agent opens the customer 360.
    let overview = suite.get(&agent, &format!("{}:overview", path(&customer["name"]))).await;

    // Assert: the customer with their contact details, nothing left open,
    // the ticket among the recent ones as resolved by alice, every part there.
    // (The overview has no survey field: the rating is asserted above.)
    assert_ok(&overview);
    let overview = &overview.body;
    assert_eq!(overview["customer"]["name"], customer["name"]);
    assert_eq!(overview["customer"]["displayName"], "Ada Lovelace");
    assert_eq!(overview["customer"]["emails"][0]["address"], "ada@example.com");
    assert!(names(&overview["openTickets"]).is_empty(), "{overview:#}");
    assert_eq!(names(&overview["recentTickets"]), [ticket["name"].as_str().unwrap()]);
    let recent = &overview["recentTickets"][0];
    assert_eq!(
        (&recent["status"], &recent["assignee"], &recent["subject"]),
        (&json!("STATUS_RESOLVED"), &json!("alice"), &json!("Charged twice"))
    );
    assert!(overview.get("unavailable").is_none(), "{overview:#}");
    let timeline = overview["timeline"].as_array().expect("the customer's timeline beside the tickets");
    assert!(timeline.iter().any(|item| item["kind"] == "TIMELINE_KIND_FIELD_CHANGE" && item["record"] == customer["name"]), "{overview:#}");
}
