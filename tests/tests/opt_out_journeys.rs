//! Customers leaving marketing, through the gateway's REST API as real
//! processes (profiles, campaigns, gateway, an SMTP server, a Twilio peer):
//! - a mail client's "unsubscribe" button — an RFC 8058 one-click POST of a
//!   form, without a login, to the URL in the message's `List-Unsubscribe`
//!   header;
//! - a STOP reply to a text message, posted by Twilio to the provider's
//!   callback URL with its `X-Twilio-Signature`, which the gateway passes on.
//!
//! Either way the customer's consent in profiles is withdrawn and counted on
//! the campaign.

use std::time::Duration;

use crm_e2e::{Reply, assert_ok, marketing::Marketing};
use crm_testkit::{
    providers::{PeerConfig, ProviderPeer, twilio_signature},
    smtp::SmtpSink,
};
use reqwest::{Method, StatusCode, header};
use serde_json::json;

#[tokio::test]
async fn a_mail_clients_one_click_unsubscribe_withdraws_consent_through_the_gateway() {
    // Arrange: the suite, a relay to a local SMTP server, an opted-in customer.
    let smtp = SmtpSink::start().await;
    let suite = Marketing::start(&[]).await;
    let relay = json!({"displayName": "Relay", "channel": "CHANNEL_EMAIL",
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "SMTP_SECURITY_NONE", "fromAddress": "news@crm.example"}});
    assert_ok(&suite.call(&suite.admin, Method::POST, "/v1/providers", Some(relay)).await);
    let customer = suite
        .customer(json!({"emails": [{"address": "ada@example.com", "primary": true}],
            "consent": {"email": {"state": "CONSENT_STATE_OPTED_IN"}}}))
        .await;

    // Act 1: the campaign goes out.
    let campaign = suite.campaign("CHANNEL_EMAIL", "News").await;
    let mail = smtp.wait_for(1, Duration::from_secs(30)).await.remove(0);
    let head = mail.data.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ");
    let value = |name: &str| head.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned));
    assert_eq!(value("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    let link = value("List-Unsubscribe").expect("a List-Unsubscribe header");
    let url = suite.here(link.trim_start_matches('<').trim_end_matches('>'));

    // Act 2: a link scanner fetches the link; then the mail client presses "unsubscribe".
    let scanned = Reply::read(suite.http.get(url.strip_suffix(":unsubscribe").unwrap()).send().await.unwrap()).await;
    assert_ok(&scanned);
    assert_ne!(scanned.body["unsubscribed"], json!(true), "reading changes nothing: {:#}", scanned.body);
    let pressed = suite
        .http
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
    assert_eq!(suite.consent(&customer, "email").await, json!("CONSENT_STATE_OPTED_OUT"));
    assert_eq!(suite.count(&campaign, "unsubscribed", 1).await, 1);

    // A forged link is refused by campaigns (not by the gateway's login check), in the JSON error format.
    let forged = url.replacen("unsubscribeLinks/", "unsubscribeLinks/A", 1);
    let refused = Reply::read(suite.http.post(&forged).body("List-Unsubscribe=One-Click").send().await.unwrap()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{:#}", refused.body);
    assert_eq!(refused.reason(), "INVALID_UNSUBSCRIBE_LINK");
}

#[tokio::test]
async fn a_stop_reply_posted_by_twilio_through_the_gateway_withdraws_sms_consent() {
    // Arrange: the suite, Twilio (a local peer speaking its API), an opted-in customer.
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let suite = Marketing::start(&[]).await;
    let (account, auth_token) = peer.config.twilio.clone();
    let twilio = json!({"displayName": "Twilio", "channel": "CHANNEL_SMS",
        "twilio": {"accountSid": account, "authToken": auth_token, "from": "+15005550006", "baseUrl": peer.url}});
    let provider = suite.call(&suite.admin, Method::POST, "/v1/providers", Some(twilio)).await;
    assert_ok(&provider);
    let callback_url = provider.body["callbackUrl"].as_str().expect("a callback URL for the Twilio console").to_owned();
    let customer = suite
        .customer(json!({"phones": [{"number": "+15551230001", "primary": true}], "consent": {"sms": {"state": "CONSENT_STATE_OPTED_IN"}}}))
        .await;
    let campaign = suite.campaign("CHANNEL_SMS", "").await;
    for _ in 0..300 {
        if !peer.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let texted = peer.messages().pop().expect("the campaign's text reached Twilio");
    assert_eq!(texted.callback, callback_url, "Twilio is told where to report");
    // Twilio's reply (the message's SID) is recorded just after the peer has the request:
    // wait for the ledger to hold it, as a receipt names the message by that SID.
    for _ in 0..300 {
        let ledger = suite.call(&suite.admin, Method::GET, "/v1/deliveries", None).await;
        if ledger.body["deliveries"].as_array().is_some_and(|d| d.iter().any(|d| d["providerMessageId"] == json!(texted.id))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Act: Twilio posts the delivery receipt and then the customer's STOP, each signed over the callback URL.
    let post = |params: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let signature = twilio_signature(&auth_token, &callback_url, &pairs);
        suite.http.post(suite.here(&callback_url)).header("X-Twilio-Signature", signature).form(&pairs).send()
    };
    let receipt = Reply::read(post(vec![("MessageSid", texted.id.clone()), ("MessageStatus", "delivered".into())]).await.unwrap()).await;
    assert_ok(&receipt);
    assert_eq!(receipt.body["receipts"], json!(1), "{:#}", receipt.body);
    let stop = vec![
        ("MessageSid", "SMinbound1".to_owned()),
        ("From", "+15551230001".into()),
        ("To", "+15005550006".into()),
        ("Body", "STOP".into()),
    ];
    let reply = Reply::read(post(stop).await.unwrap()).await;

    // Assert: taken through the gateway without a login, consent withdrawn, both counted.
    assert_ok(&reply);
    assert_eq!(reply.body["inboundMessages"], json!(1), "{:#}", reply.body);
    assert_eq!(suite.consent(&customer, "sms").await, json!("CONSENT_STATE_OPTED_OUT"));
    assert_eq!((suite.count(&campaign, "delivered", 1).await, suite.count(&campaign, "unsubscribed", 1).await), (1, 1));
    // Without Twilio's signature nothing is believed.
    let unsigned = suite.http.post(suite.here(&callback_url)).form(&[("MessageSid", "SMx"), ("From", "+1"), ("Body", "STOP")]).send();
    let unsigned = Reply::read(unsigned.await.unwrap()).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED, "{:#}", unsigned.body);
    assert_eq!(unsigned.reason(), "INVALID_CALLBACK_SIGNATURE");
}
