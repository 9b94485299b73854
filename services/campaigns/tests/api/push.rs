//! Push through a real HTTP peer speaking FCM's HTTP v1 API and Google's
//! OAuth token endpoint: devices registered by the customer's app, one push
//! per device with the delivery id as every platform's collapse key, dead
//! tokens forgotten, customers without devices skipped, throttling, and who
//! may see and change which devices.

use std::collections::BTreeMap;

use crm_proto::crm::campaigns::v1::{self as pb, device_service_client::DeviceServiceClient};
use crm_testkit::{
    auth::{customer_token, with_token},
    fcm::FcmPeer,
};
use tonic::{Code, Request, transport::Channel};

use crate::helpers::{Clients, Person, assert_error, spawn_app, violations};

const PROJECT: &str = "crm-mobile-test";

fn fcm(peer: &FcmPeer) -> pb::provider::Settings {
    pb::provider::Settings::Fcm(pb::FcmSettings {
        project_id: PROJECT.into(),
        service_account_key: peer.service_account_key(),
        base_url: peer.url.clone(),
        ..Default::default()
    })
}

async fn push_provider(app: &Clients, settings: pb::provider::Settings) -> Result<pb::Provider, tonic::Status> {
    let provider =
        pb::Provider { display_name: "App push".into(), channel: pb::Channel::Push as i32, settings: Some(settings), ..Default::default() };
    let request = app.admin(pb::CreateProviderRequest { provider: Some(provider), request_id: String::new() });
    Ok(app.providers.clone().create_provider(request).await?.into_inner().provider.unwrap())
}

fn parcel_push() -> pb::Template {
    pb::Template {
        display_name: "Parcel".into(),
        channel: pb::Channel::Push as i32,
        purpose: pb::Purpose::Transactional as i32,
        contents: vec![pb::TemplateContent {
            locale: "en".into(),
            subject: "A parcel for you".into(),
            body: "{{ customer.display_name }}, parcel {{ vars.code }} waits at the front desk.".into(),
            data: BTreeMap::from([("screen".to_owned(), "parcels/{{ vars.code }}".to_owned())]),
            ..Default::default()
        }],
        default_locale: "en".into(),
        ..Default::default()
    }
}

fn devices(app: &Clients) -> DeviceServiceClient<Channel> {
    DeviceServiceClient::new(app.channel.clone())
}

fn as_customer<T>(app: &Clients, customer: &str, message: T) -> Request<T> {
    with_token(message, &customer_token(app.tenant, customer))
}

fn device(customer: &str, token: &str, platform: pb::DevicePlatform) -> pb::RegisterDeviceRequest {
    pb::RegisterDeviceRequest {
        device: Some(pb::Device { customer: customer.into(), token: token.into(), platform: platform as i32, ..Default::default() }),
    }
}

/// Registers `token` as `customer` itself (the app after login).
async fn register(app: &Clients, customer: &str, token: &str, platform: pb::DevicePlatform) -> pb::Device {
    let request = as_customer(app, customer, device("", token, platform));
    devices(app).register_device(request).await.unwrap().into_inner().device.unwrap()
}

async fn list_devices(app: &Clients, customer: &str, roles: &[&str]) -> Vec<pb::Device> {
    let request = app.as_roles(pb::ListDevicesRequest { customer: customer.into(), ..Default::default() }, roles);
    devices(app).list_devices(request).await.unwrap().into_inner().devices
}

#[tokio::test]
async fn a_push_notice_reaches_every_registered_device_through_fcm() {
    let app = spawn_app().await;
    let peer = FcmPeer::start(PROJECT, None).await;
    let provider = push_provider(&app, fcm(&peer)).await.unwrap();
    let Some(pb::provider::Settings::Fcm(shown)) = &provider.settings else { panic!("{provider:?}") };
    assert!(shown.service_account_key.is_empty() && shown.service_account_key_set, "the key is write-only: {shown:?}");
    assert_eq!(shown.client_email, peer.client_email());
    assert!(provider.callback_url.is_empty(), "FCM calls nothing back");

    let customer = app.customer(Person { name: "Han Meimei", ..Person::default() }).await;
    let phone = register(&app, &customer, "fcm-token-android-0001", pb::DevicePlatform::Android).await;
    register(&app, &customer, "fcm-token-ios-0002", pb::DevicePlatform::Ios).await;
    let again = register(&app, &customer, "fcm-token-android-0001", pb::DevicePlatform::Android).await;
    assert_eq!(again.name, phone.name, "registering a token again refreshes its device");
    assert_eq!(list_devices(&app, &customer, &["agent"]).await.len(), 2);

    let template = app.create_template(parcel_push()).await.unwrap();
    let accepted = app.send_notice(&template.name, &customer, &[("code", "B-17")], "parcel-1").await.unwrap();
    let sent = app.settled(&accepted.name).await;
    assert_eq!(sent.status, pb::DeliveryStatus::Sent as i32, "{sent:?}");

    let mut received = peer.messages();
    received.sort_by(|a, b| a.token.cmp(&b.token));
    let tokens: Vec<&str> = received.iter().map(|m| m.token.as_str()).collect();
    assert_eq!(tokens, ["fcm-token-android-0001", "fcm-token-ios-0002"], "one push per device");
    let id = accepted.name.trim_start_matches("deliveries/");
    for m in &received {
        assert_eq!((m.title.as_str(), m.body.as_str()), ("A parcel for you", "Han Meimei, parcel B-17 waits at the front desk."));
        assert_eq!(m.data, serde_json::json!({"screen": "parcels/B-17", "crm_delivery": accepted.name}));
        let simple = id.replace('-', "");
        assert_eq!(m.collapse_ids, [id, id, id, simple.as_str()].map(str::to_owned), "a re-send replaces, never doubles, on the device");
    }
    assert!(received.iter().any(|m| m.name == sent.provider_message_id), "the ledger keeps an FCM message name");

    let second = app.send_notice(&template.name, &customer, &[("code", "B-18")], "parcel-2").await.unwrap();
    assert_eq!(app.settled(&second.name).await.status, pb::DeliveryStatus::Sent as i32);
    assert_eq!(peer.tokens_issued(), 1, "the access token is minted once and reused");
}

#[tokio::test]
async fn an_unregistered_token_is_forgotten_and_a_customer_without_devices_is_skipped() {
    let app = spawn_app().await;
    let peer = FcmPeer::start(PROJECT, None).await;
    push_provider(&app, fcm(&peer)).await.unwrap();
    let template = app.create_template(parcel_push()).await.unwrap();
    let customer = app.customer(Person { name: "Li Lei", ..Person::default() }).await;
    register(&app, &customer, "fcm-token-uninstalled", pb::DevicePlatform::Android).await;
    peer.unregister("fcm-token-uninstalled");

    let first = app.send_notice(&template.name, &customer, &[("code", "C-1")], "c-1").await.unwrap();
    let failed = app.settled(&first.name).await;
    assert_eq!(failed.status, pb::DeliveryStatus::Failed as i32, "{failed:?}");
    assert!(failed.error.contains("unregistered"), "{}", failed.error);
    assert!(list_devices(&app, &customer, &["agent"]).await.is_empty(), "FCM called the token dead: forgotten");

    let second = app.send_notice(&template.name, &customer, &[("code", "C-2")], "c-2").await.unwrap();
    let skipped = app.settled(&second.name).await;
    assert_eq!((skipped.status, skipped.skip_reason), (pb::DeliveryStatus::Skipped as i32, pb::SkipReason::NoAddress as i32));
    assert!(peer.messages().is_empty());
}

#[tokio::test]
async fn throttled_pushes_wait_and_all_arrive_once() {
    let app = spawn_app().await;
    let peer = FcmPeer::start(PROJECT, Some(10)).await;
    push_provider(&app, fcm(&peer)).await.unwrap();
    let template = app.create_template(parcel_push()).await.unwrap();
    let mut names = Vec::new();
    for i in 0..30 {
        let customer = app.customer(Person { name: "Resident", ..Person::default() }).await;
        register(&app, &customer, &format!("fcm-token-{i:04}"), pb::DevicePlatform::Android).await;
        names.push(app.send_notice(&template.name, &customer, &[("code", "D")], &format!("d-{i}")).await.unwrap().name);
    }
    for name in &names {
        assert_eq!(app.settled(name).await.status, pb::DeliveryStatus::Sent as i32, "{name}");
    }
    assert!(peer.throttled() > 0, "the peer throttled some sends");
    let mut tokens: Vec<String> = peer.messages().into_iter().map(|m| m.token).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!((peer.messages().len(), tokens.len()), (30, 30), "each device got exactly one push");
}

#[tokio::test]
async fn customers_see_and_change_only_their_own_devices() {
    let app = spawn_app().await;
    let (a, b) =
        (app.customer(Person { name: "A", ..Person::default() }).await, app.customer(Person { name: "B", ..Person::default() }).await);
    let a_phone = register(&app, &a, "fcm-token-of-a-phone-000", pb::DevicePlatform::Android).await;
    assert_eq!(a_phone.customer, a);
    assert_eq!(a_phone.token, "fcm-token-of-a-phone-000", "its customer sees the token whole");

    let get = |who: &str| as_customer(&app, who, pb::GetDeviceRequest { name: a_phone.name.clone() });
    assert_error(devices(&app).get_device(get(&b)).await, Code::NotFound, "NOT_FOUND");
    let delete = as_customer(&app, &b, pb::DeleteDeviceRequest { name: a_phone.name.clone() });
    assert_error(devices(&app).delete_device(delete).await, Code::NotFound, "NOT_FOUND");
    let for_a = as_customer(&app, &b, device(&a, "fcm-token-b-forged-0000", pb::DevicePlatform::Ios));
    assert_error(devices(&app).register_device(for_a).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let listed = devices(&app).list_devices(as_customer(&app, &b, pb::ListDevicesRequest::default())).await.unwrap().into_inner();
    assert!(listed.devices.is_empty(), "B sees none of A's devices");

    let analyst = list_devices(&app, "", &["analyst"]).await;
    assert_eq!(analyst.len(), 1);
    assert_eq!(analyst[0].token, "fcm-…-000", "masked without pii");
    let readonly = app.as_roles(device(&a, "fcm-token-readonly-000", pb::DevicePlatform::Web), &["readonly"]);
    assert_error(devices(&app).register_device(readonly).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let no_customer = app.as_roles(device("", "fcm-token-agent-0000", pb::DevicePlatform::Web), &["agent"]);
    assert_error(devices(&app).register_device(no_customer).await, Code::InvalidArgument, "INVALID_NAME");
    let bad = as_customer(&app, &a, device("", "", pb::DevicePlatform::Unspecified));
    let status = assert_error(devices(&app).register_device(bad).await, Code::InvalidArgument, "INVALID_FIELDS");
    assert_eq!(
        violations(&status),
        [("device.token".to_owned(), "INVALID_TOKEN".to_owned()), ("device.platform".to_owned(), "INVALID_PLATFORM".to_owned())]
    );

    // B logs in on A's phone: the token moves to B.
    let moved = register(&app, &b, "fcm-token-of-a-phone-000", pb::DevicePlatform::Android).await;
    assert_eq!((moved.name.as_str(), moved.customer.as_str()), (a_phone.name.as_str(), b.as_str()));
    assert!(list_devices(&app, &a, &["agent"]).await.is_empty());
    let delete = as_customer(&app, &b, pb::DeleteDeviceRequest { name: a_phone.name.clone() });
    devices(&app).delete_device(delete).await.unwrap();
    assert!(list_devices(&app, "", &["agent"]).await.is_empty());
}

#[tokio::test]
async fn an_fcm_provider_needs_a_service_account_key_and_keeps_it() {
    let app = spawn_app().await;
    let peer = FcmPeer::start(PROJECT, None).await;
    let no_key =
        pb::provider::Settings::Fcm(pb::FcmSettings { project_id: PROJECT.into(), base_url: peer.url.clone(), ..Default::default() });
    let status = assert_error(push_provider(&app, no_key).await, Code::InvalidArgument, "REQUIRED");
    assert_eq!(violations(&status), [("provider.fcm.service_account_key".to_owned(), "REQUIRED".to_owned())]);
    let wrong = pb::provider::Settings::Fcm(pb::FcmSettings {
        project_id: "Not A Project".into(),
        service_account_key: r#"{"type":"authorized_user"}"#.into(),
        base_url: peer.url.clone(),
        ..Default::default()
    });
    let status = assert_error(push_provider(&app, wrong).await, Code::InvalidArgument, "INVALID_FIELDS");
    assert_eq!(
        violations(&status),
        [
            ("provider.fcm.project_id".to_owned(), "INVALID_VALUE".to_owned()),
            ("provider.fcm.service_account_key".to_owned(), "INVALID_KEY".to_owned())
        ]
    );
    let sms = pb::Provider { display_name: "x".into(), channel: pb::Channel::Sms as i32, settings: Some(fcm(&peer)), ..Default::default() };
    let request = app.admin(pb::CreateProviderRequest { provider: Some(sms), request_id: String::new() });
    assert_error(app.providers.clone().create_provider(request).await, Code::InvalidArgument, "NOT_FOR_CHANNEL");

    let created = push_provider(&app, fcm(&peer)).await.unwrap();
    let renamed = pb::Provider {
        name: created.name.clone(),
        settings: Some(pb::provider::Settings::Fcm(pb::FcmSettings {
            project_id: PROJECT.into(),
            base_url: peer.url.clone(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mask = prost_types::FieldMask { paths: vec!["fcm".into()] };
    let request = app.admin(pb::UpdateProviderRequest { provider: Some(renamed), update_mask: Some(mask) });
    let updated = app.providers.clone().update_provider(request).await.unwrap().into_inner().provider.unwrap();
    let Some(pb::provider::Settings::Fcm(kept)) = updated.settings else { panic!() };
    assert!(kept.service_account_key_set && kept.client_email == peer.client_email(), "{kept:?}");
}

#[tokio::test]
async fn a_push_campaign_reaches_and_estimates_only_customers_with_a_device() {
    let app = spawn_app().await;
    let peer = FcmPeer::start(PROJECT, None).await;
    push_provider(&app, fcm(&peer)).await.unwrap();
    let with_app = app.customer(Person { name: "Has the app", tags: &["residents"], ..Person::default() }).await;
    app.customer(Person { name: "No app", tags: &["residents"], ..Person::default() }).await;
    register(&app, &with_app, "fcm-token-resident-0001", pb::DevicePlatform::Ios).await;
    let template = app.create_template(parcel_push()).await.unwrap();
    let campaign = app.create_campaign(&template.name, "tags:\"residents\"", &[("code", "ALL")]).await.unwrap();

    let request = app.as_roles(pb::EstimateCampaignReachRequest { name: campaign.name.clone() }, &["marketer"]);
    let estimate = app.campaigns().estimate_campaign_reach(request).await.unwrap().into_inner();
    assert_eq!((estimate.audience, estimate.reachable), (2, 1), "{estimate:?}");
    assert_eq!(estimate.skipped_by_reason.iter().map(|s| (s.reason, s.count)).collect::<Vec<_>>(), [(pb::SkipReason::NoAddress as i32, 1)]);

    let start = pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() };
    app.campaigns().start_campaign(app.as_roles(start, &["marketer"])).await.unwrap();
    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    let counts = done.counts.unwrap();
    assert_eq!((counts.sent, counts.skipped), (1, 1), "the send matches the estimate: {counts:?}");
    assert_eq!(peer.messages().len(), 1);
}

#[tokio::test]
async fn another_tenant_sees_none_of_a_tenants_devices() {
    let app = spawn_app().await;
    let customer = app.customer(Person { name: "Han Meimei", ..Person::default() }).await;
    let phone = register(&app, &customer, "fcm-token-android-0001", pb::DevicePlatform::Android).await;
    let elsewhere = crm_testkit::auth::token(uuid::Uuid::now_v7(), &["admin"]);

    let get = devices(&app).get_device(with_token(pb::GetDeviceRequest { name: phone.name.clone() }, &elsewhere)).await;
    assert_error(get, Code::NotFound, "NOT_FOUND");
    let listed = devices(&app)
        .list_devices(with_token(pb::ListDevicesRequest { customer: customer.clone(), ..Default::default() }, &elsewhere))
        .await;
    match listed {
        Ok(response) => assert!(response.into_inner().devices.is_empty(), "another tenant lists nothing"),
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
    }
    let delete = devices(&app).delete_device(with_token(pb::DeleteDeviceRequest { name: phone.name.clone() }, &elsewhere)).await;
    assert_error(delete, Code::NotFound, "NOT_FOUND");
    assert_eq!(list_devices(&app, &customer, &["agent"]).await.len(), 1, "the device is still the tenant's");
}
