//! SMS through real HTTP peers speaking Twilio's and Aliyun's wire formats
//! and a signed webhook: what each provider received, throttling, refusals,
//! and SSRF-safe provider URLs.

use std::time::Duration;

use crm_proto::crm::campaigns::v1 as pb;
use crm_testkit::providers::{PeerConfig, ProviderPeer};
use tonic::Code;

use crate::helpers::{Clients, Person, assert_error, spawn_app, spawn_app_with, violations};

fn arrears_sms() -> pb::Template {
    pb::Template {
        display_name: "Arrears".into(),
        channel: pb::Channel::Sms as i32,
        purpose: pb::Purpose::Transactional as i32,
        contents: vec![pb::TemplateContent {
            locale: "zh-CN".into(),
            body: "{{ customer.display_name }}您好，您的物业费欠费{{ vars.amount }}元，请尽快缴纳。".into(),
            ..Default::default()
        }],
        default_locale: "zh-CN".into(),
        locked_variables: vec!["amount".into()],
        ..Default::default()
    }
}

pub fn twilio(peer: &ProviderPeer) -> pb::provider::Settings {
    pb::provider::Settings::Twilio(pb::TwilioSettings {
        account_sid: peer.config.twilio.0.clone(),
        auth_token: peer.config.twilio.1.clone(),
        from: "+15005550006".into(),
        base_url: peer.url.clone(),
        ..Default::default()
    })
}

pub fn aliyun(peer: &ProviderPeer) -> pb::provider::Settings {
    pb::provider::Settings::AliyunSms(pb::AliyunSmsSettings {
        access_key_id: peer.config.aliyun.0.clone(),
        access_key_secret: peer.config.aliyun.1.clone(),
        sign_name: "物业服务中心".into(),
        template_code: "SMS_154950909".into(),
        endpoint: peer.url.clone(),
        ..Default::default()
    })
}

/// Configures the tenant's SMS provider.
pub async fn sms_provider(app: &Clients, settings: pb::provider::Settings) -> Result<pb::Provider, tonic::Status> {
    let provider =
        pb::Provider { display_name: "SMS".into(), channel: pb::Channel::Sms as i32, settings: Some(settings), ..Default::default() };
    let request = app.admin(pb::CreateProviderRequest { provider: Some(provider), request_id: String::new() });
    Ok(app.providers.clone().create_provider(request).await?.into_inner().provider.unwrap())
}

async fn li_lei(app: &Clients, phone: &str) -> String {
    app.customer(Person { name: "李雷", phone, ..Person::default() }).await
}

#[tokio::test]
async fn an_arrears_notice_goes_out_through_twilio() {
    let app = spawn_app().await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    sms_provider(&app, twilio(&peer)).await.unwrap();
    let template = app.create_template(arrears_sms()).await.unwrap();
    let customer = li_lei(&app, "+8613800138000").await;

    let accepted = app.send_notice(&template.name, &customer, &[("amount", "328.00")], "arrears-1").await.unwrap();
    let sent = app.settled(&accepted.name).await;
    assert_eq!(sent.status, pb::DeliveryStatus::Sent as i32, "{sent:?}");
    let received = peer.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, "+8613800138000");
    assert_eq!(received[0].body, "李雷您好，您的物业费欠费328.00元，请尽快缴纳。");
    assert_eq!(sent.provider_message_id, received[0].id, "the ledger keeps Twilio's sid");
}

#[tokio::test]
async fn aliyun_gets_the_approved_template_with_the_slots_and_our_id() {
    let app = spawn_app().await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    sms_provider(&app, aliyun(&peer)).await.unwrap();
    let template = app.create_template(arrears_sms()).await.unwrap();
    let customer = li_lei(&app, "+8613800138000").await;

    let accepted = app.send_notice(&template.name, &customer, &[("amount", "328.00")], "arrears-1").await.unwrap();
    let sent = app.settled(&accepted.name).await;
    assert_eq!(sent.status, pb::DeliveryStatus::Sent as i32, "{sent:?}");
    let received = peer.messages();
    assert_eq!(received.len(), 1, "the peer verified the signature and took it");
    assert_eq!(received[0].to, "13800138000", "mainland numbers without +86");
    assert_eq!(received[0].params, serde_json::json!({"amount": "328.00", "name": "李雷"}));
    assert_eq!(received[0].key, accepted.name.trim_start_matches("deliveries/"), "OutId is the delivery id");
    assert_eq!(sent.provider_message_id, received[0].id, "the ledger keeps Aliyun's BizId");
    assert_eq!(sent.body, "李雷您好，您的物业费欠费328.00元，请尽快缴纳。", "the sent log shows the text");
}

#[tokio::test]
async fn a_webhook_gets_signed_requests_keyed_by_delivery() {
    let app = spawn_app().await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let webhook = pb::provider::Settings::Webhook(pb::WebhookSettings {
        url: peer.webhook_url(),
        secret: peer.config.webhook_secret.clone(),
        ..Default::default()
    });
    sms_provider(&app, webhook).await.unwrap();
    let template = app.create_template(arrears_sms()).await.unwrap();
    let customer = li_lei(&app, "+8613800138000").await;
    let accepted = app.send_notice(&template.name, &customer, &[("amount", "1")], "w-1").await.unwrap();
    assert_eq!(app.settled(&accepted.name).await.status, pb::DeliveryStatus::Sent as i32);
    let received = peer.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].key, accepted.name.trim_start_matches("deliveries/"));
    assert_eq!(received[0].body, "李雷您好，您的物业费欠费1元，请尽快缴纳。");
}

#[tokio::test]
async fn throttling_by_the_provider_slows_sending_and_loses_nothing() {
    let app = spawn_app().await;
    let peer = ProviderPeer::start(PeerConfig { max_per_second: Some(15), ..PeerConfig::default() }).await;
    sms_provider(&app, twilio(&peer)).await.unwrap();
    let template = app.create_template(arrears_sms()).await.unwrap();
    let mut names = Vec::new();
    for i in 0..45 {
        let customer = li_lei(&app, &format!("+86138{i:08}")).await;
        names.push(app.send_notice(&template.name, &customer, &[("amount", "5")], &format!("t-{i}")).await.unwrap().name);
    }
    for name in &names {
        let d = app.settled(name).await;
        assert_eq!((d.status, d.attempts), (pb::DeliveryStatus::Sent as i32, 1), "throttled attempts do not count: {d:?}");
    }
    assert!(peer.throttled() > 0, "the peer did throttle");
    let mut to: Vec<String> = peer.messages().into_iter().map(|m| m.to).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 45, "each recipient exactly once");
    assert_eq!(peer.messages().len(), 45);
}

#[tokio::test]
async fn refusals_by_the_provider_fail_the_message_for_good() {
    let app = spawn_app().await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    sms_provider(&app, twilio(&peer)).await.unwrap();
    let template = app.create_template(arrears_sms()).await.unwrap();
    let customer = li_lei(&app, "+15550001234").await;
    let d = app.send_notice(&template.name, &customer, &[("amount", "5")], "bad-number").await.unwrap();
    let d = app.settled(&d.name).await;
    assert_eq!((d.status, d.attempts), (pb::DeliveryStatus::Failed as i32, 1), "{d:?}");
    assert!(d.error.contains("21211"), "{}", d.error);
    assert!(!d.error.contains("5550001234"), "no number in the error: {}", d.error);
    assert!(peer.messages().is_empty());
    // 21211 says the number itself is bad: a hard bounce, so the next message to it never reaches Twilio.
    let again = app.send_notice(&template.name, &customer, &[("amount", "6")], "bad-number-again").await.unwrap();
    let again = app.settled(&again.name).await;
    assert_eq!((again.status, again.skip_reason), (pb::DeliveryStatus::Skipped as i32, pb::SkipReason::Suppressed as i32), "{again:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(peer.messages().is_empty());
}

#[tokio::test]
async fn provider_urls_on_internal_addresses_or_plain_http_are_refused_in_production() {
    let app = spawn_app_with(|c| c.kit.outbound_allow_private = false).await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let status = assert_error(sms_provider(&app, twilio(&peer)).await, Code::InvalidArgument, "URL_NOT_ALLOWED");
    assert_eq!(violations(&status), vec![("provider.twilio.base_url".to_owned(), "URL_NOT_ALLOWED".to_owned())]);
    let mut internal = aliyun(&peer);
    if let pb::provider::Settings::AliyunSms(a) = &mut internal {
        a.endpoint = "https://169.254.169.254".into();
    }
    assert_error(sms_provider(&app, internal).await, Code::InvalidArgument, "HOST_NOT_ALLOWED");
    let wrong_channel =
        pb::Provider { display_name: "x".into(), channel: pb::Channel::Email as i32, settings: Some(twilio(&peer)), ..Default::default() };
    let request = app.admin(pb::CreateProviderRequest { provider: Some(wrong_channel), request_id: String::new() });
    assert_error(app.providers.clone().create_provider(request).await, Code::InvalidArgument, "NOT_FOR_CHANNEL");
}
