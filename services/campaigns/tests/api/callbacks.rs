//! Provider callbacks: delivery receipts and inbound messages in Twilio's,
//! Aliyun's and the webhook's wire formats — verified before anything is
//! applied, applied once however often they are replayed, counted on the
//! campaign — and opt-out keywords (STOP, 退订) that unsubscribe the sender
//! from SMS marketing in profiles.

use std::collections::BTreeMap;

use crm_proto::{
    crm::{
        campaigns::v1::{self as pb, provider_callback_service_client::ProviderCallbackServiceClient},
        profiles::v1 as profiles,
    },
    google::api::HttpBody,
};
use crm_testkit::providers::{PeerConfig, ProviderPeer, twilio_signature};
use tonic::{Code, Request, Status};

use crate::{
    helpers::{Clients, Person, TestApp, assert_error, spawn_app_with},
    sms::{aliyun, sms_provider, twilio},
};

pub(crate) const PUBLIC_URL: &str = "https://crm.example.test";

async fn spawn() -> TestApp {
    spawn_app_with(|c| c.public_url = Some(PUBLIC_URL.into())).await
}

/// The callback's resource name from a provider's `callback_url`.
fn callback_name(provider: &pb::Provider) -> String {
    let url = &provider.callback_url;
    let name = url.strip_prefix(&format!("{PUBLIC_URL}/v1/")).unwrap_or_else(|| panic!("a URL into the gateway: {url:?}"));
    name.strip_suffix(":receive").expect("the receive method").to_owned()
}

/// Posts `body` to `name` as a provider would, with `headers`.
async fn post(
    app: &Clients,
    name: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&'static str, String)],
) -> Result<pb::ReceiveProviderCallbackResponse, Status> {
    let payload = HttpBody { content_type: content_type.into(), data: body, extensions: Vec::new() };
    let mut request = Request::new(pb::ReceiveProviderCallbackRequest { name: name.into(), payload: Some(payload) });
    for (key, value) in headers {
        request.metadata_mut().insert(*key, value.parse().unwrap());
    }
    Ok(ProviderCallbackServiceClient::new(app.channel.clone()).receive_provider_callback(request).await?.into_inner())
}

/// Posts a Twilio form, signed as Twilio signs it with `token`.
pub(crate) async fn twilio_post(
    app: &Clients,
    provider: &pb::Provider,
    token: &str,
    params: &[(&str, &str)],
) -> Result<pb::ReceiveProviderCallbackResponse, Status> {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params.iter().copied()).finish().into_bytes();
    let signature = twilio_signature(token, &provider.callback_url, params);
    post(app, &callback_name(provider), "application/x-www-form-urlencoded", body, &[("x-twilio-signature", signature)]).await
}

fn sms_offer() -> pb::Template {
    pb::Template {
        display_name: "SMS offer".into(),
        channel: pb::Channel::Sms as i32,
        purpose: pb::Purpose::Marketing as i32,
        contents: vec![pb::TemplateContent {
            locale: "en".into(),
            body: "20% off this week. Reply STOP to opt out.".into(),
            ..Default::default()
        }],
        default_locale: "en".into(),
        ..Default::default()
    }
}

/// Runs an SMS marketing campaign to everyone tagged `tag` until it completes.
async fn sms_campaign(app: &Clients, template: &str, tag: &str) -> pb::Campaign {
    let campaign = app.create_campaign(template, &format!("tags:\"{tag}\""), &[]).await.unwrap();
    let start = pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() };
    app.campaigns().start_campaign(app.as_roles(start, &["marketer"])).await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Completed).await
}

async fn sms_consent(app: &Clients, customer: &str) -> profiles::ConsentState {
    let c = app.customers.clone().get_customer(app.admin(profiles::GetCustomerRequest { name: customer.to_owned() })).await.unwrap();
    profiles::ConsentState::try_from(c.into_inner().customer.unwrap().consent.unwrap().sms.unwrap().state).unwrap()
}

pub(crate) async fn texter(app: &Clients, name: &str, phone: &str) -> String {
    app.customer(Person { name, phone, sms_opt_in: true, tags: &["sms"], ..Person::default() }).await
}

/// The deliveries of `campaign` by recipient.
async fn by_recipient(app: &Clients, campaign: &str) -> BTreeMap<String, pb::Delivery> {
    let list = app.list_deliveries(&format!("campaign = \"{campaign}\""), &["admin"]).await.unwrap();
    list.into_iter().map(|d| (d.recipient.clone(), d)).collect()
}

#[tokio::test]
async fn twilio_receipts_and_a_stop_reply_are_applied_once_and_honoured() {
    let app = spawn().await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let provider = sms_provider(&app, twilio(&peer)).await.unwrap();
    assert!(provider.callback_url.starts_with(PUBLIC_URL), "{provider:?}");
    let ann = texter(&app, "Ann", "+15551230001").await;
    texter(&app, "Bob", "+15551230002").await;
    let template = app.create_template(sms_offer()).await.unwrap();
    let first = sms_campaign(&app, &template.name, "sms").await;

    let sent = peer.messages();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|m| m.callback == provider.callback_url), "Twilio is told where to report: {sent:?}");
    let sid = |to: &str| sent.iter().find(|m| m.to == to).unwrap().id.clone();
    let token = peer.config.twilio.1.clone();

    // Receipts: one delivered, one undelivered; "sent" is not final and changes nothing.
    let (ann_sid, bob_sid) = (sid("+15551230001"), sid("+15551230002"));
    let interim = twilio_post(&app, &provider, &token, &[("MessageSid", &ann_sid), ("MessageStatus", "sent")]).await.unwrap();
    assert_eq!((interim.code, interim.receipts), (Some(0), 0));
    let delivered = [("MessageSid", ann_sid.as_str()), ("MessageStatus", "delivered"), ("To", "+15551230001")];
    assert_eq!(twilio_post(&app, &provider, &token, &delivered).await.unwrap().receipts, 1);
    let undelivered = [("MessageSid", bob_sid.as_str()), ("MessageStatus", "undelivered"), ("ErrorCode", "30005")];
    assert_eq!(twilio_post(&app, &provider, &token, &undelivered).await.unwrap().receipts, 1);
    assert_eq!(twilio_post(&app, &provider, &token, &delivered).await.unwrap().receipts, 0, "a replay changes nothing");
    let late = [("MessageSid", ann_sid.as_str()), ("MessageStatus", "failed")];
    assert_eq!(twilio_post(&app, &provider, &token, &late).await.unwrap().receipts, 0, "the first final receipt stands");

    let rows = by_recipient(&app, &first.name).await;
    let (a, b) = (&rows["+15551230001"], &rows["+15551230002"]);
    assert_eq!((a.receipt_status, a.status), (pb::ReceiptStatus::Delivered as i32, pb::DeliveryStatus::Sent as i32), "{a:?}");
    assert_eq!(b.receipt_status, pb::ReceiptStatus::Undelivered as i32);
    assert_eq!(b.receipt_error, "undelivered (error 30005)");
    let counts = app.campaign(&first.name).await.counts.unwrap();
    assert_eq!((counts.sent, counts.delivered, counts.undelivered), (2, 1, 1), "{counts:?}");
    let undelivered_log = app.list_deliveries("receipt_status = UNDELIVERED", &["analyst"]).await.unwrap();
    assert_eq!(undelivered_log.len(), 1, "the sent log answers \"did it arrive\"");

    // A forged request changes nothing.
    let forged = post(
        &app,
        &callback_name(&provider),
        "application/x-www-form-urlencoded",
        b"MessageSid=x&MessageStatus=delivered".to_vec(),
        &[("x-twilio-signature", "bm90IGEgc2lnbmF0dXJl".to_owned())],
    )
    .await;
    assert_error(forged, Code::Unauthenticated, "INVALID_CALLBACK_SIGNATURE");
    let wrong_token =
        twilio_post(&app, &provider, "not the auth token", &[("MessageSid", "SM9"), ("From", "+15551230001"), ("Body", "STOP")]).await;
    assert_error(wrong_token, Code::Unauthenticated, "INVALID_CALLBACK_SIGNATURE");
    assert_eq!(sms_consent(&app, &ann).await, profiles::ConsentState::OptedIn);

    // Ann replies STOP: one inbound message, SMS consent withdrawn, once.
    let stop = [("MessageSid", "SMin1"), ("From", "+15551230001"), ("To", "+15005550006"), ("Body", "Stop"), ("SmsStatus", "received")];
    assert_eq!(twilio_post(&app, &provider, &token, &stop).await.unwrap().inbound_messages, 1);
    assert_eq!(twilio_post(&app, &provider, &token, &stop).await.unwrap().inbound_messages, 0, "a replay is dropped");
    assert_eq!(sms_consent(&app, &ann).await, profiles::ConsentState::OptedOut);
    assert_eq!(app.campaign(&first.name).await.counts.unwrap().unsubscribed, 1);
    // A reply that is not a keyword is kept, and opts nobody out.
    let chat = [("MessageSid", "SMin2"), ("From", "+15551230002"), ("To", "+15005550006"), ("Body", "please don't stop")];
    assert_eq!(twilio_post(&app, &provider, &token, &chat).await.unwrap().inbound_messages, 1);
    // What customers sent: newest first, filterable, masked for readers without `pii`.
    let list = |filter: &str, roles: &[&str]| {
        let request =
            app.as_roles(pb::ListInboundMessagesRequest { page_size: 0, page_token: String::new(), filter: filter.into() }, roles);
        let mut client = ProviderCallbackServiceClient::new(app.channel.clone());
        async move { client.list_inbound_messages(request).await }
    };
    let all = list("", &["admin"]).await.unwrap().into_inner().inbound_messages;
    assert_eq!(all.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), vec!["please don't stop", "Stop"]);
    assert_eq!((all[1].sender.as_str(), all[1].customer.as_str(), all[1].opt_out), ("+15551230001", ann.as_str(), true));
    let opted_out = list("opt_out = true", &["analyst"]).await.unwrap().into_inner().inbound_messages;
    assert_eq!(opted_out.len(), 1);
    assert!(opted_out[0].sender.contains('*') && !opted_out[0].sender.contains("1230001"), "masked: {}", opted_out[0].sender);
    // Another tenant sees none of them.
    let other = crm_testkit::auth::with_token(
        pb::ListInboundMessagesRequest::default(),
        &crm_testkit::auth::token(uuid::Uuid::now_v7(), &["admin"]),
    );
    let theirs = ProviderCallbackServiceClient::new(app.channel.clone()).list_inbound_messages(other).await.unwrap().into_inner();
    assert!(theirs.inbound_messages.is_empty(), "{theirs:?}");
    // Unlike the callback itself, reading them needs a login.
    let anonymous = ProviderCallbackServiceClient::new(app.channel.clone())
        .list_inbound_messages(Request::new(pb::ListInboundMessagesRequest::default()))
        .await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);

    let second = sms_campaign(&app, &template.name, "sms").await;
    let counts = second.counts.unwrap();
    assert_eq!((counts.sent, counts.skipped), (1, 1), "Ann is not texted again: {counts:?}");
    assert_eq!(peer.messages().iter().filter(|m| m.to == "+15551230001").count(), 1);
}

#[tokio::test]
async fn aliyun_pushes_are_acknowledged_with_code_0_and_matched_without_the_country_code() {
    let app = spawn().await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let provider = sms_provider(&app, aliyun(&peer)).await.unwrap();
    let li = texter(&app, "李雷", "+8613800138000").await;
    let template = app.create_template(pb::Template { purpose: pb::Purpose::Marketing as i32, ..sms_offer() }).await.unwrap();
    let campaign = sms_campaign(&app, &template.name, "sms").await;
    let message = peer.messages().pop().unwrap();

    let report = serde_json::json!([{
        "phone_number": "13800138000", "send_time": "2026-11-26 10:00:00", "report_time": "2026-11-26 10:00:03",
        "success": true, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": message.id, "out_id": message.key
    }]);
    let name = callback_name(&provider);
    let answer = post(&app, &name, "application/json", report.to_string().into_bytes(), &[]).await.unwrap();
    assert_eq!((answer.code, answer.msg.as_str(), answer.receipts), (Some(0), "accepted", 1));
    let reply = serde_json::json!([{"phone_number": "13800138000", "send_time": "2026-11-26 10:05:00", "content": "退订",
        "sign_name": "物业服务中心", "dest_code": "1234", "sequence_id": 1_234_567}]);
    assert_eq!(post(&app, &name, "application/json", reply.to_string().into_bytes(), &[]).await.unwrap().inbound_messages, 1);
    assert_eq!(sms_consent(&app, &li).await, profiles::ConsentState::OptedOut, "退订 from 13800138000 is +8613800138000's");
    let counts = app.campaign(&campaign.name).await.counts.unwrap();
    assert_eq!((counts.delivered, counts.unsubscribed), (1, 1), "{counts:?}");

    let garbage = post(&app, &name, "application/json", b"{\"not\": \"an array\"}".to_vec(), &[]).await;
    assert_error(garbage, Code::InvalidArgument, "MALFORMED_CALLBACK");
}

#[tokio::test]
async fn webhook_callbacks_need_a_fresh_signature_and_forged_urls_are_refused() {
    let app = spawn().await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let settings = pb::provider::Settings::Webhook(pb::WebhookSettings {
        url: peer.webhook_url(),
        secret: peer.config.webhook_secret.clone(),
        ..Default::default()
    });
    let provider = sms_provider(&app, settings).await.unwrap();
    let customer = texter(&app, "Cai", "+8613900139000").await;
    let notice = pb::Template { purpose: pb::Purpose::Transactional as i32, ..sms_offer() };
    let template = app.create_template(notice).await.unwrap();
    let sent = app.send_notice(&template.name, &customer, &[], "n-1").await.unwrap();
    app.settled(&sent.name).await;

    let body = serde_json::json!({"receipts": [{"id": sent.name, "status": "DELIVERED"}]}).to_string().into_bytes();
    let now = chrono::Utc::now().timestamp();
    let signed = |at: i64| crm_campaigns::channels::webhook::signature(&peer.config.webhook_secret, at, &body);
    let name = callback_name(&provider);
    let stale = post(&app, &name, "application/json", body.clone(), &[("x-crm-signature", signed(now - 3600))]).await;
    assert_error(stale, Code::Unauthenticated, "INVALID_CALLBACK_SIGNATURE");
    assert_error(post(&app, &name, "application/json", body.clone(), &[]).await, Code::Unauthenticated, "INVALID_CALLBACK_SIGNATURE");
    assert_eq!(app.delivery(&sent.name).await.receipt_status, pb::ReceiptStatus::Unspecified as i32, "nothing applied");
    let fresh = post(&app, &name, "application/json", body.clone(), &[("x-crm-signature", signed(now))]).await.unwrap();
    assert_eq!(fresh.receipts, 1);
    assert_eq!(app.delivery(&sent.name).await.receipt_status, pb::ReceiptStatus::Delivered as i32);

    let mut forged = name.clone().into_bytes();
    let at = forged.len() - 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let signature = signed(now);
    let forged = post(&app, &String::from_utf8(forged).unwrap(), "application/json", body.clone(), &[("x-crm-signature", signature)]).await;
    assert_error(forged, Code::Unauthenticated, "INVALID_CALLBACK_URL");
}

/// A bounce report as a receiving server mails it back, quoting `message_id`.
fn bounce_report(message_id: &str, status: &str) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.example.org\r\nMessage-ID: <B1@mx.example.org>\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\r\n\
         --R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
         Final-Recipient: rfc822; ann@example.com\r\nAction: failed\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; 550 {status} user unknown\r\n\r\n\
         --R\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\nSubject: Fee\r\n\r\n--R--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_bounce_report_forwarded_for_an_smtp_relay_marks_undelivered_and_suppresses_once() {
    let app = spawn().await;
    let relay = app.email_provider().await;
    assert!(relay.callback_url.starts_with(PUBLIC_URL), "a relay has a URL for its bounce reports: {relay:?}");
    let fee = app
        .create_template(crate::helpers::email_template(pb::Purpose::Transactional, "Fee", "{{ vars.amount }} due", &["amount"]))
        .await
        .unwrap();
    let ann = app.customer(Person { name: "Ann", email: "ann@example.com", ..Person::default() }).await;
    let first = app.send_notice(&fee.name, &ann, &[("amount", "1")], "fee-1").await.unwrap();
    assert_eq!(app.settled(&first.name).await.status, pb::DeliveryStatus::Sent as i32);
    let message_id = app.smtp.messages()[0].message_id.clone();

    // A full mailbox later: undelivered, but the address stays.
    let full = post(&app, &callback_name(&relay), "message/rfc822", bounce_report(&message_id, "5.2.2"), &[]).await.unwrap();
    assert_eq!(full.receipts, 1);
    let after = app.delivery(&first.name).await;
    assert_eq!(after.receipt_status, pb::ReceiptStatus::Undelivered as i32, "{after:?}");
    let second = app.send_notice(&fee.name, &ann, &[("amount", "2")], "fee-2").await.unwrap();
    assert_eq!(app.settled(&second.name).await.status, pb::DeliveryStatus::Sent as i32, "a full mailbox is no bounce");

    // The second message's report says the mailbox does not exist: suppressed, once.
    let second_id = app.smtp.messages()[1].message_id.clone();
    let report = bounce_report(&second_id, "5.1.1");
    let name = callback_name(&relay);
    assert_eq!(post(&app, &name, "multipart/report", report.clone(), &[]).await.unwrap().receipts, 1);
    assert_eq!(post(&app, &name, "multipart/report", report, &[]).await.unwrap().receipts, 0, "a replay changes nothing");
    let third = app.send_notice(&fee.name, &ann, &[("amount", "3")], "fee-3").await.unwrap();
    let third = app.settled(&third.name).await;
    assert_eq!((third.status, third.skip_reason), (pb::DeliveryStatus::Skipped as i32, pb::SkipReason::Suppressed as i32));
    assert_eq!(app.smtp.messages().len(), 2);

    assert_error(post(&app, &name, "text/plain", b"hello".to_vec(), &[]).await, Code::InvalidArgument, "MALFORMED_CALLBACK");
}
