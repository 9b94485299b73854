//! Webhooks over REST: every service serves its own, under `/v1/{service}/webhooks`.

use std::time::Duration;

use crm_kit::webhooks::signing::{secret_key, verify};
use crm_testkit::webhooks::WebhookReceiver;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_gateway_with_profiles_env;

#[tokio::test]
async fn profiles_and_tickets_each_deliver_their_own_events_to_webhooks_made_over_rest() {
    let gw = spawn_gateway_with_profiles_env(&[("CRM_OUTBOUND_ALLOW_PRIVATE", "true".to_owned())], |_| {}).await;
    let (customers_hook, tickets_hook) = (WebhookReceiver::start().await, WebhookReceiver::start().await);

    let created = gw
        .call(
            Method::POST,
            "/v1/profiles/webhooks?requestId=hook-1",
            Some(json!({"targetUri": customers_hook.url(), "eventTypes": ["crm.profiles.v1.CustomerCreated"], "description": "sync"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:#}", created.body);
    let profiles_secret = created.body["secret"].as_str().unwrap().to_owned();
    let profiles_webhook = created.body["webhook"].clone();
    assert_eq!(profiles_webhook["state"], "STATE_ACTIVE");
    let created = gw.call(Method::POST, "/v1/tickets/webhooks", Some(json!({"targetUri": tickets_hook.url()}))).await;
    assert_eq!(created.status, StatusCode::OK, "{:#}", created.body);
    let tickets_secret = created.body["secret"].as_str().unwrap().to_owned();

    let customer = gw.create_customer("Webhook Wendy", "wendy@example.com").await;
    let ticket = gw.call(Method::POST, "/v1/tickets", Some(json!({"customer": customer["name"], "subject": "Hello"}))).await;
    assert_eq!(ticket.status, StatusCode::OK, "{:#}", ticket.body);

    let from_profiles = customers_hook.wait_for_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(from_profiles[0].json["type"], "crm.profiles.v1.CustomerCreated");
    assert_eq!(from_profiles[0].json["subject"], customer["name"]);
    let r = &from_profiles[0];
    assert!(verify(&secret_key(&profiles_secret).unwrap(), &r.id, r.timestamp, &r.body, &r.signature));
    let from_tickets = tickets_hook.wait_for_accepted(1, Duration::from_secs(15)).await;
    let ticket_created = from_tickets.iter().find(|r| r.json["type"] == "crm.tickets.v1.TicketCreated").expect("the ticket's event");
    assert_eq!(ticket_created.json["source"], "tickets");
    assert_eq!(ticket_created.json["subject"], ticket.body["name"]);
    assert!(verify(
        &secret_key(&tickets_secret).unwrap(),
        &ticket_created.id,
        ticket_created.timestamp,
        &ticket_created.body,
        &ticket_created.signature
    ));

    let name = profiles_webhook["name"].as_str().unwrap();
    let log = gw.call(Method::GET, &format!("/v1/profiles/{name}/deliveries"), None).await;
    assert_eq!(log.status, StatusCode::OK, "{:#}", log.body);
    assert_eq!(log.body["deliveries"][0]["outcome"], "OUTCOME_SUCCEEDED");
    assert_eq!(log.body["deliveries"][0]["eventId"], from_profiles[0].id.as_str());

    let listed = gw.call(Method::GET, "/v1/tickets/webhooks", None).await;
    assert_eq!(listed.body["webhooks"].as_array().unwrap().len(), 1, "each service lists its own");
    let missing = gw.call(Method::GET, &format!("/v1/tickets/{name}"), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "a profiles webhook is not one of tickets'");

    let paused = gw
        .call(
            Method::PATCH,
            &format!("/v1/profiles/{name}?updateMask=state"),
            Some(json!({"state": "STATE_DISABLED", "etag": profiles_webhook["etag"]})),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{:#}", paused.body);
    assert_eq!(paused.body["state"], "STATE_DISABLED");
    let denied =
        gw.call_with(Method::GET, "/v1/profiles/webhooks", None, &[("authorization", format!("Bearer {}", gw.token(&["agent"])))]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}
