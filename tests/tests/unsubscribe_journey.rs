//! A marketing email from campaign to unsubscribe, through the gateway's REST
//! API as real processes (profiles, campaigns, gateway, an SMTP server): a
//! marketer sends a campaign, the recipient's mail client presses its
//! "unsubscribe" button — an RFC 8058 one-click POST of a form, without a
//! login, to the URL in the message's `List-Unsubscribe` header — and the
//! customer's consent in profiles is withdrawn and counted on the campaign.

use std::time::Duration;

use crm_e2e::{Reply, path};
use crm_testkit::{
    auth::{claims, token_with},
    database::fresh_database,
    process::{binary, spawn_gateway, spawn_service},
    smtp::SmtpSink,
};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

/// Where campaigns says its links point; the test swaps in the gateway's address.
const PUBLIC_URL: &str = "https://links.crm.example";

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
}

async fn call(http: &reqwest::Client, base: &str, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut request = http.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    Reply::read(request.send().await.expect("the gateway answers")).await
}

#[tokio::test]
async fn a_mail_clients_one_click_unsubscribe_withdraws_consent_through_the_gateway() {
    // Arrange: the processes, a tenant, its relay and an opted-in customer.
    let smtp = SmtpSink::start().await;
    let profiles = spawn_service(binary("crm-profiles"), &fresh_database("profiles").await.unwrap(), &[]).await;
    let campaigns_env = [
        ("CRM_PROFILES_URL", profiles.url.clone()),
        ("CRM_TICKETS_URL", "http://127.0.0.1:9".to_owned()),
        ("CRM_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("CRM_OUTBOUND_ALLOW_PRIVATE", "true".to_owned()),
        ("CRM_DELIVERY_POLL_MS", "200".to_owned()),
    ];
    let campaigns = spawn_service(binary("crm-campaigns"), &fresh_database("campaigns").await.unwrap(), &campaigns_env).await;
    let backends = format!("crm.profiles.v1={},crm.campaigns.v1={}", profiles.url, campaigns.url);
    let (_gateway, base) = spawn_gateway(&backends, &[]).await;
    let http = reqwest::Client::new();
    let tenant = Uuid::now_v7();
    let admin = token_with(&claims("admin", tenant, &["admin"]));
    let marketer = token_with(&claims("mia", tenant, &["marketer"]));

    let relay = json!({"displayName": "Relay", "channel": "CHANNEL_EMAIL",
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "SMTP_SECURITY_NONE", "fromAddress": "news@crm.example"}});
    assert_ok(&call(&http, &base, &admin, Method::POST, "/v1/providers", Some(relay)).await);
    let customer = call(
        &http,
        &base,
        &admin,
        Method::POST,
        "/v1/customers",
        Some(json!({"displayName": "Ada",
        "emails": [{"address": "ada@example.com", "primary": true}], "tags": ["news"],
        "consent": {"email": {"state": "CONSENT_STATE_OPTED_IN"}}})),
    )
    .await;
    assert_ok(&customer);
    let template = call(
        &http,
        &base,
        &marketer,
        Method::POST,
        "/v1/templates",
        Some(json!({"displayName": "News",
        "channel": "CHANNEL_EMAIL", "purpose": "PURPOSE_MARKETING", "defaultLocale": "en",
        "contents": [{"locale": "en", "subject": "News", "body": "Hello {{ customer.display_name }}."}]})),
    )
    .await;
    assert_ok(&template);
    let campaign = call(
        &http,
        &base,
        &marketer,
        Method::POST,
        "/v1/campaigns",
        Some(json!({"displayName": "November news",
        "template": template.body["name"], "audience": {"filter": "tags:\"news\""}})),
    )
    .await;
    assert_ok(&campaign);
    let campaign_path = path(&campaign.body["name"]);

    // Act 1: the campaign goes out.
    assert_ok(&call(&http, &base, &marketer, Method::POST, &format!("{campaign_path}:start"), Some(json!({}))).await);
    let mail = smtp.wait_for(1, Duration::from_secs(30)).await.remove(0);
    let head = mail.data.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ");
    let value = |name: &str| head.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned));
    assert_eq!(value("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let link = value("List-Unsubscribe").expect("a List-Unsubscribe header");
    let url = link.trim_start_matches('<').trim_end_matches('>').replacen(PUBLIC_URL, &base, 1);

    // Act 2: a link scanner fetches the link; then the mail client presses "unsubscribe".
    let link_path = url.strip_prefix(&base).unwrap().strip_suffix(":unsubscribe").unwrap().to_owned();
    let scanned = Reply::read(http.get(format!("{base}{link_path}")).send().await.unwrap()).await;
    assert_ok(&scanned);
    assert_ne!(scanned.body["unsubscribed"], json!(true), "reading changes nothing: {:#}", scanned.body);
    let pressed = http
        .post(&url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    let pressed = Reply::read(pressed).await;

    // Assert: unsubscribed without a login, consent withdrawn in profiles, counted on the campaign.
    assert_ok(&pressed);
    assert_eq!(pressed.body["unsubscribed"], json!(true), "{:#}", pressed.body);
    assert!(pressed.body["recipient"].as_str().unwrap().contains('*'), "the address is masked: {:#}", pressed.body);
    let after = call(&http, &base, &admin, Method::GET, &path(&customer.body["name"]), None).await;
    assert_eq!(after.body["consent"]["email"]["state"], json!("CONSENT_STATE_OPTED_OUT"), "{:#}", after.body);
    let counted = call(&http, &base, &marketer, Method::GET, &campaign_path, None).await;
    assert_eq!(counted.body["counts"]["unsubscribed"], json!("1"), "{:#}", counted.body);

    // A forged link is refused by campaigns (not by the gateway's login check), in the JSON error format.
    let forged = url.replacen("unsubscribeLinks/", "unsubscribeLinks/A", 1);
    let refused = Reply::read(http.post(&forged).body("List-Unsubscribe=One-Click").send().await.unwrap()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{:#}", refused.body);
    assert_eq!(refused.reason(), "INVALID_UNSUBSCRIBE_LINK");
}
