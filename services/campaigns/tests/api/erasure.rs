//! When profiles erases a customer (CustomerErased on its event stream),
//! campaigns erases what it holds of them: the addresses and texts in their
//! deliveries (the ledger rows stay, for the counts), their devices and the
//! reasons on their points bookings.

use std::time::{Duration, Instant};

use crm_proto::crm::{
    campaigns::v1::{
        self as pb, coupon_service_client::CouponServiceClient, device_service_client::DeviceServiceClient,
        loyalty_service_client::LoyaltyServiceClient,
    },
    profiles::v1 as profiles,
};

use crate::helpers::{Person, email_template, spawn_app, spawn_app_with_profiles_env};

#[tokio::test]
async fn an_erased_customers_messages_and_devices_are_erased_too() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app
        .create_template(email_template(
            pb::Purpose::Transactional,
            "Your fee notice",
            "Dear {{ customer.display_name }}, pay {{ vars.amount }}.",
            &["amount"],
        ))
        .await
        .unwrap();
    let li = app.customer(Person { name: "Li Lei", email: "li.lei@example.com", ..Person::default() }).await;
    let han = app.customer(Person { name: "Han Meimei", email: "han@example.com", ..Person::default() }).await;
    let lis = app.send_notice(&template.name, &li, &[("amount", "¥328.00")], "fee-li").await.unwrap();
    let hans = app.send_notice(&template.name, &han, &[("amount", "¥12.00")], "fee-han").await.unwrap();
    assert_eq!(app.settled(&lis.name).await.status, pb::DeliveryStatus::Sent as i32);
    app.settled(&hans.name).await;
    let device = pb::Device {
        customer: li.clone(),
        token: "fcm-token-of-li".into(),
        platform: pb::DevicePlatform::Android as i32,
        ..Default::default()
    };
    DeviceServiceClient::new(app.channel.clone())
        .register_device(app.admin(pb::RegisterDeviceRequest { device: Some(device) }))
        .await
        .unwrap();

    let mut loyalty = LoyaltyServiceClient::new(app.channel.clone());
    let account = format!("{li}/pointsAccount");
    let gift = pb::GrantPointsRequest {
        account: account.clone(),
        points: 88,
        reason: "birthday gift for Li Lei".into(),
        expire_time: None,
        request_id: "gift-li".into(),
    };
    loyalty.grant_points(app.admin(gift)).await.unwrap();

    let erase = profiles::EraseCustomerRequest { name: li.clone(), reason: "GDPR Art. 17".into(), etag: String::new() };
    app.customers.clone().erase_customer(app.admin(erase)).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let erased = loop {
        let delivery = app.delivery(&lis.name).await;
        if delivery.recipient.is_empty() {
            break delivery;
        }
        assert!(Instant::now() < deadline, "the erasure reached campaigns in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((erased.subject.as_str(), erased.body.as_str()), ("", ""));
    assert_eq!(erased.status, pb::DeliveryStatus::Sent as i32, "the ledger row stays, for the counts");
    assert_eq!(app.delivery(&hans.name).await.recipient, "han@example.com", "other customers' messages stay");
    let devices = DeviceServiceClient::new(app.channel.clone())
        .list_devices(app.admin(pb::ListDevicesRequest { customer: li.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert!(devices.is_empty(), "the customer's devices are gone: {devices:?}");
    // The points ledger keeps its numbers; the reasons written on it go.
    let entries = loyalty
        .list_points_entries(app.admin(pb::ListPointsEntriesRequest { parent: account.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.iter().map(|e| (e.points, e.reason.as_str())).collect::<Vec<_>>(), [(88, "")]);
}

#[tokio::test]
async fn a_merged_customers_devices_follow_the_survivor_and_come_back_on_unmerge() {
    let app = spawn_app().await;
    app.email_provider().await;
    let li = app.customer(Person { name: "Li Lei", email: "li.lei@example.com", ..Person::default() }).await;
    let again = app.customer(Person { name: "Li L.", email: "lilei@home.example", ..Person::default() }).await;
    // A notice to each makes the tenant a sender, which follows profiles' stream.
    let template =
        app.create_template(email_template(pb::Purpose::Transactional, "Hello", "Dear {{ customer.display_name }}.", &[])).await.unwrap();
    let sent = app.send_notice(&template.name, &again, &[], "hello-again").await.unwrap();
    app.settled(&sent.name).await;
    let device = pb::Device {
        customer: again.clone(),
        token: "fcm-token-of-li-again".into(),
        platform: pb::DevicePlatform::Ios as i32,
        ..Default::default()
    };
    DeviceServiceClient::new(app.channel.clone())
        .register_device(app.admin(pb::RegisterDeviceRequest { device: Some(device) }))
        .await
        .unwrap();
    let devices_of = |customer: &str| {
        let (client, request) = (
            DeviceServiceClient::new(app.channel.clone()),
            app.admin(pb::ListDevicesRequest { customer: customer.to_owned(), ..Default::default() }),
        );
        async move { client.clone().list_devices(request).await.unwrap().into_inner().devices.len() }
    };
    let wait = |customer: String, expected: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while devices_of(&customer).await != expected {
            assert!(Instant::now() < deadline, "{customer} holds {expected} devices in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // A coupon of the duplicate's: it follows the person too.
    let mut coupons = CouponServiceClient::new(app.channel.clone());
    let coupon = pb::Coupon {
        customer: again.clone(),
        value: Some(crm_proto::google::r#type::Money { currency_code: "CNY".into(), units: 10, nanos: 0 }),
        expire_time: Some(crm_kit::time::to_timestamp(chrono::Utc::now() + chrono::Duration::days(30))),
        ..Default::default()
    };
    let coupon = coupons
        .issue_coupon(app.admin(pb::IssueCouponRequest { coupon: Some(coupon), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .coupon
        .unwrap();
    let holder = |name: String| {
        let mut client = coupons.clone();
        let request = app.admin(pb::GetCouponRequest { name });
        async move { client.get_coupon(request).await.unwrap().into_inner().coupon.unwrap().customer }
    };

    let profiles_channel = app.profiles.as_ref().expect("profiles runs").channel.clone();
    let mut merges = profiles::merge_service_client::MergeServiceClient::new(profiles_channel);
    let request = profiles::MergeCustomersRequest { survivor: li.clone(), duplicates: vec![again.clone()], ..Default::default() };
    let merge = merges.merge_customers(app.admin(request)).await.unwrap().into_inner().customer_merge.unwrap();
    wait(li.clone(), 1).await;
    assert_eq!(devices_of(&again).await, 0);
    assert_eq!(holder(coupon.name.clone()).await, li, "the coupon moved with the merge");

    merges.unmerge_customers(app.admin(profiles::UnmergeCustomersRequest { name: merge.name })).await.unwrap();
    wait(again.clone(), 1).await;
    assert_eq!(devices_of(&li).await, 0);
    assert_eq!(holder(coupon.name.clone()).await, again, "and came back with the unmerge");
}

#[tokio::test]
async fn a_tenant_that_only_grants_points_still_follows_erasures() {
    // No provider: the tenant's first grant is what makes campaigns follow its profiles stream.
    let app = spawn_app().await;
    let li = app.customer(Person { name: "Li Lei", email: "li.lei@example.com", ..Person::default() }).await;
    let account = format!("{li}/pointsAccount");
    let mut loyalty = LoyaltyServiceClient::new(app.channel.clone());
    let gift = pb::GrantPointsRequest {
        account: account.clone(),
        points: 10,
        reason: "welcome, Li Lei".into(),
        expire_time: None,
        request_id: "welcome-li".into(),
    };
    loyalty.grant_points(app.admin(gift)).await.unwrap();

    let erase = profiles::EraseCustomerRequest { name: li.clone(), reason: "PIPL".into(), etag: String::new() };
    app.customers.clone().erase_customer(app.admin(erase)).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = app.admin(pb::ListPointsEntriesRequest { parent: account.clone(), ..Default::default() });
        let entries = loyalty.list_points_entries(request).await.unwrap().into_inner().entries;
        if entries.iter().all(|e| e.reason.is_empty()) {
            assert_eq!(entries.iter().map(|e| e.points).collect::<Vec<_>>(), [10], "the numbers stay");
            break;
        }
        assert!(Instant::now() < deadline, "the erasure reached the points ledger in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn points_follow_a_merge_and_what_is_left_of_them_comes_back_on_unmerge() {
    let app = spawn_app().await;
    let li = app.customer(Person { name: "Li Lei", email: "li.lei@example.com", ..Person::default() }).await;
    let again = app.customer(Person { name: "Li L.", email: "lilei@home.example", ..Person::default() }).await;
    let mut loyalty = LoyaltyServiceClient::new(app.channel.clone());
    let in_ten_days = crm_kit::time::to_timestamp(chrono::Utc::now() + chrono::Duration::days(10));
    let grant = |customer: &str, points: i64, expire_time: Option<prost_types::Timestamp>, id: &str| pb::GrantPointsRequest {
        account: format!("{customer}/pointsAccount"),
        points,
        reason: "welcome".into(),
        expire_time,
        request_id: id.into(),
    };
    loyalty.grant_points(app.admin(grant(&li, 10, None, "li-1"))).await.unwrap();
    loyalty.grant_points(app.admin(grant(&again, 50, Some(in_ten_days), "again-1"))).await.unwrap();
    let reader = loyalty.clone();
    let balance_of = |customer: String| {
        let (mut client, request) = (reader.clone(), app.admin(pb::GetPointsAccountRequest { name: format!("{customer}/pointsAccount") }));
        async move { client.get_points_account(request).await.unwrap().into_inner().points_account.unwrap() }
    };
    let wait_for = |customer: String, expected: i64| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while balance_of(customer.clone()).await.balance != expected {
            assert!(Instant::now() < deadline, "{customer} holds {expected} points in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // Merged: the duplicate's 50 points (with their expiry) join the survivor's 10.
    let profiles_channel = app.profiles.as_ref().expect("profiles runs").channel.clone();
    let mut merges = profiles::merge_service_client::MergeServiceClient::new(profiles_channel);
    let request = profiles::MergeCustomersRequest { survivor: li.clone(), duplicates: vec![again.clone()], ..Default::default() };
    let merge = merges.merge_customers(app.admin(request)).await.unwrap().into_inner().customer_merge.unwrap();
    wait_for(li.clone(), 60).await;
    let survivor = balance_of(li.clone()).await;
    assert_eq!((survivor.expiring_points, balance_of(again.clone()).await.balance), (50, 0));
    assert_eq!(survivor.lifetime_earned, 10, "a move is not an earning");

    // The survivor spends 20 (from the soonest-expiring lot: the moved one), then the merge is undone.
    loyalty
        .redeem_points(app.admin(pb::RedeemPointsRequest {
            account: format!("{li}/pointsAccount"),
            points: 20,
            reason: "coffee".into(),
            request_id: "li-coffee".into(),
        }))
        .await
        .unwrap();
    merges.unmerge_customers(app.admin(profiles::UnmergeCustomersRequest { name: merge.name })).await.unwrap();
    wait_for(again.clone(), 30).await;
    assert_eq!(balance_of(li.clone()).await.balance, 10, "what was spent stays spent; the rest went back");
    let kinds: Vec<(i32, i64)> = loyalty
        .list_points_entries(app.admin(pb::ListPointsEntriesRequest { parent: format!("{again}/pointsAccount"), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .entries
        .iter()
        .map(|e| (e.kind, e.points))
        .collect();
    let (moved_in, moved_out, granted) =
        (pb::PointsEntryKind::MoveIn as i32, pb::PointsEntryKind::MoveOut as i32, pb::PointsEntryKind::Grant as i32);
    assert_eq!(kinds, [(moved_in, 30), (moved_out, -50), (granted, 50)]);
}

/// With CRM_FOLLOW_JETSTREAM, campaigns reads profiles' events from the
/// JetStream stream profiles' relay fills (a real nats-server), with the same
/// effect as from Subscribe, through a durable consumer per tenant.
#[tokio::test]
async fn an_erasure_read_from_jetstream_has_the_same_effect() {
    let nats = crm_testkit::nats::NatsServer::start().await;
    let url = nats.url.clone();
    let app = spawn_app_with_profiles_env(&[("CRM_NATS_URL", nats.url.clone())], |c| {
        c.kit.relay.nats_url = Some(url);
        c.kit.relay.follow_jetstream = true;
    })
    .await;
    app.email_provider().await;
    let template =
        app.create_template(email_template(pb::Purpose::Transactional, "Notice", "Dear {{ customer.display_name }}.", &[])).await.unwrap();
    let li = app.customer(Person { name: "Li Lei", email: "li.lei@example.com", ..Person::default() }).await;
    let sent = app.send_notice(&template.name, &li, &[], "notice-li").await.unwrap();
    app.settled(&sent.name).await;

    let erase = profiles::EraseCustomerRequest { name: li.clone(), reason: "GDPR Art. 17".into(), etag: String::new() };
    app.customers.clone().erase_customer(app.admin(erase)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !app.delivery(&sent.name).await.recipient.is_empty() {
        assert!(Instant::now() < deadline, "the erasure reached campaigns through JetStream in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let js = async_nats::jetstream::new(nats.client().await);
    let stream = js.get_stream("CRM_PROFILES").await.expect("profiles relayed its events");
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(&format!("campaigns-{}", app.tenant)).await.expect("campaigns' durable consumer of the tenant");
    let info = consumer.cached_info();
    assert!(info.ack_floor.stream_sequence > 0, "it acknowledged what it applied: {info:?}");
}
