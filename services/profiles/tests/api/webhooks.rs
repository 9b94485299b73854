//! Webhooks (a kit capability, exercised through profiles): a real HTTP
//! receiver gets the service's events signed, in order, at least once; it is
//! down for a while, slow, failing or gone; replays, secret rotation,
//! validation, permissions and etags; outbox retention.

use std::{collections::HashSet, time::Duration};

use crm_kit::webhooks::signing::{secret_key, verify};
use crm_proto::crm::{
    events::v1::SubscribeRequest,
    webhooks::v1::{self as pb, webhook::State, webhook_delivery::Outcome, webhook_service_client::WebhookServiceClient},
};
use crm_testkit::webhooks::{Received, WebhookReceiver};
use sqlx::Connection;
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app, spawn_app_with, violations};

fn client(app: &TestApp) -> WebhookServiceClient<Channel> {
    WebhookServiceClient::new(app.channel.clone())
}

/// Subscribes `url` to `types` as admin: the webhook and its secret.
async fn subscribe(app: &TestApp, url: &str, types: &[&str]) -> (pb::Webhook, String) {
    let created = client(app)
        .create_webhook(app.admin(pb::CreateWebhookRequest {
            webhook: Some(pb::Webhook {
                target_uri: url.into(),
                event_types: types.iter().map(|t| (*t).to_owned()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("webhook created")
        .into_inner();
    (created.webhook.unwrap(), created.secret)
}

async fn get(app: &TestApp, name: &str) -> pb::Webhook {
    client(app).get_webhook(app.admin(pb::GetWebhookRequest { name: name.into() })).await.unwrap().into_inner().webhook.unwrap()
}

async fn deliveries(app: &TestApp, name: &str) -> Vec<pb::WebhookDelivery> {
    client(app)
        .list_webhook_deliveries(app.admin(pb::ListWebhookDeliveriesRequest { parent: name.into(), page_size: 1000, ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .deliveries
}

/// Waits (≤ 15 s) until `check` holds for the webhook.
async fn wait_for_webhook(app: &TestApp, name: &str, check: impl Fn(&pb::Webhook) -> bool) -> pb::Webhook {
    for _ in 0..300 {
        let webhook = get(app, name).await;
        if check(&webhook) {
            return webhook;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("webhook {name} never reached the expected state: {:?}", get(app, name).await);
}

async fn create_customers(app: &TestApp, n: usize, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        names.push(app.create(customer(&format!("{prefix} {i}"), &format!("{prefix}{i}@example.com"))).await.name);
    }
    names
}

fn subjects(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.json["subject"].as_str().unwrap_or_default().to_owned()).collect()
}

fn assert_signed(received: &Received, secret: &str) {
    let key = secret_key(secret).expect("a whsec_ secret");
    assert!(verify(&key, &received.id, received.timestamp, &received.body, &received.signature), "signature of {}", received.id);
}

#[tokio::test]
async fn events_arrive_signed_in_order_and_every_attempt_is_logged() {
    let app = spawn_app().await;
    let receiver = WebhookReceiver::start().await;
    let before = app.create(customer("Before", "before@example.com")).await;
    let (webhook, secret) = subscribe(&app, &receiver.url(), &["crm.profiles.v1.CustomerCreated"]).await;
    assert!(secret.starts_with("whsec_") && secret_key(&secret).unwrap().len() == 32);
    assert_eq!(webhook.state, State::Active as i32);

    let names = create_customers(&app, 5, "Hook").await;
    // An event of another type is not delivered.
    app.customers
        .clone()
        .delete_customer(app.admin(crm_proto::crm::profiles::v1::DeleteCustomerRequest { name: names[0].clone(), etag: String::new() }))
        .await
        .unwrap();
    let received = receiver.wait_for_accepted(5, Duration::from_secs(10)).await;
    assert_eq!(subjects(&received), names, "only events committed after the webhook was created, in order");
    assert!(!subjects(&received).contains(&before.name));
    assert!(received.windows(2).all(|w| w[0].position() < w[1].position()));
    for r in &received {
        assert_signed(r, &secret);
        assert_eq!(r.json["type"], "crm.profiles.v1.CustomerCreated");
        assert_eq!(r.json["id"], r.id.as_str(), "webhook-id is the event id");
        assert_eq!(r.json["data"]["@type"], "type.googleapis.com/crm.profiles.v1.CustomerCreated");
        assert_eq!(r.json["source"], "profiles");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!((r.timestamp - chrono::Utc::now().timestamp()).abs() < 60);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 5, "the deletion is filtered out, nothing is sent twice");

    let webhook = wait_for_webhook(&app, &webhook.name, |w| w.delivered_position >= received[4].position()).await;
    assert!(webhook.failing_since.is_none());
    let log = deliveries(&app, &webhook.name).await;
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|d| d.outcome == Outcome::Succeeded as i32 && d.attempt == 1 && d.response_code == 204));
    assert_eq!(log[0].event_id, received[4].id, "newest first");
    assert!(log[0].name.starts_with(&format!("{}/deliveries/", webhook.name)));

    // The Python verifier of docs/webhooks.md accepts the real request, and refuses it altered.
    let dir = std::env::temp_dir().join(format!("crm-webhook-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let headers: serde_json::Map<String, serde_json::Value> =
        received[0].headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().into())).collect();
    std::fs::write(dir.join("headers.json"), serde_json::to_vec(&headers).unwrap()).unwrap();
    std::fs::write(dir.join("body"), &received[0].body).unwrap();
    std::fs::write(dir.join("altered"), [&received[0].body[..], b" "].concat()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples/verify_webhook.py");
    let python = std::env::var("CRM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let run = |body: &str| {
        std::process::Command::new(&python)
            .arg(script)
            .arg(&secret)
            .arg(dir.join("headers.json"))
            .arg(dir.join(body))
            .status()
            .unwrap()
            .success()
    };
    assert!(run("body"), "the documented verifier accepts a real delivery");
    assert!(!run("altered"), "and refuses an altered body");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_in_order_once_it_is_up() {
    let app = spawn_app().await;
    let mut receiver = WebhookReceiver::start().await;
    let (webhook, secret) = subscribe(&app, &receiver.url(), &[]).await;
    receiver.go_down().await;
    let names = create_customers(&app, 10, "Down").await;

    // Refused connections are failed attempts, retried with backoff.
    let failing = wait_for_webhook(&app, &webhook.name, |w| w.failing_since.is_some()).await;
    assert_eq!(failing.delivered_position, webhook.delivered_position, "nothing delivered while down");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let log = deliveries(&app, &webhook.name).await;
    assert!(log.len() >= 2, "retried: {log:?}");
    assert!(log.iter().all(|d| d.outcome == Outcome::Failed as i32 && d.response_code == 0));
    assert!(log.windows(2).all(|w| w[0].attempt > w[1].attempt), "the same head event, attempt after attempt");
    assert!(log[0].next_attempt_time.is_some() && !log[0].error.is_empty());

    receiver.come_up().await;
    let received = receiver.wait_for_accepted(10, Duration::from_secs(15)).await;
    assert_eq!(subjects(&received), names, "every event, in order");
    let ids: HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 10, "none twice");
    received.iter().for_each(|r| assert_signed(r, &secret));
    let healthy =
        wait_for_webhook(&app, &webhook.name, |w| w.failing_since.is_none() && w.delivered_position == received[9].position()).await;
    assert_eq!(healthy.state, State::Active as i32);
}

#[tokio::test]
async fn a_slow_or_failing_endpoint_does_not_delay_another_webhook() {
    let app = spawn_app().await;
    let slow = WebhookReceiver::start().await;
    slow.delay(Duration::from_millis(1500));
    let failing = WebhookReceiver::start().await;
    failing.answer(500);
    let healthy = WebhookReceiver::start().await;
    subscribe(&app, &slow.url(), &[]).await;
    let (failing_hook, _) = subscribe(&app, &failing.url(), &[]).await;
    subscribe(&app, &healthy.url(), &[]).await;

    let started = std::time::Instant::now();
    let names = create_customers(&app, 20, "Busy").await;
    let received = healthy.wait_for_accepted(20, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert_eq!(subjects(&received), names);
    assert!(slow.received().len() < 5, "the slow endpoint took one at a time: {}", slow.received().len());
    assert!(took < Duration::from_secs(5), "the healthy webhook was not held up: {took:?}");
    let failing_hook = get(&app, &failing_hook.name).await;
    assert!(failing_hook.failing_since.is_some());
    assert!(failing.received().iter().all(|r| r.json["subject"] == names[0].as_str()), "a failing head event blocks only its own webhook");
}

#[tokio::test]
async fn a_410_disables_at_once_and_the_tenant_is_told() {
    let app = spawn_app().await;
    let gone = WebhookReceiver::start().await;
    gone.answer(410);
    let watcher = WebhookReceiver::start().await;
    let (webhook, _) = subscribe(&app, &gone.url(), &["crm.profiles.v1.*"]).await;
    subscribe(&app, &watcher.url(), &["crm.webhooks.v1.WebhookDisabled"]).await;

    app.create(customer("Gone", "gone@example.com")).await;
    let disabled = wait_for_webhook(&app, &webhook.name, |w| w.state == State::Disabled as i32).await;
    assert!(disabled.disabled_reason.contains("410"), "{}", disabled.disabled_reason);
    assert_eq!(gone.received().len(), 1, "no retry after 410");
    let told = watcher.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(told[0].json["type"], "crm.webhooks.v1.WebhookDisabled");
    assert_eq!(told[0].json["data"]["webhook"], webhook.name.as_str());
    assert_eq!(told[0].json["subject"], webhook.name.as_str());

    // Set ACTIVE again (the endpoint is back): delivery resumes from where it stopped.
    gone.answer(200);
    let resumed = client(&app)
        .update_webhook(app.admin(pb::UpdateWebhookRequest {
            webhook: Some(pb::Webhook {
                name: webhook.name.clone(),
                state: State::Active as i32,
                etag: disabled.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["state".into()] }),
        }))
        .await
        .unwrap()
        .into_inner()
        .webhook
        .unwrap();
    assert!(resumed.disabled_reason.is_empty());
    let received = gone.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(received[0].json["type"], "crm.profiles.v1.CustomerCreated", "the event that was refused, again");
}

#[tokio::test]
async fn a_webhook_failing_longer_than_allowed_is_disabled() {
    let app = spawn_app_with(|c| c.kit.webhooks.webhook_disable_after_secs = 1).await;
    let down = WebhookReceiver::start().await;
    down.answer(503);
    let (webhook, _) = subscribe(&app, &down.url(), &[]).await;
    app.create(customer("Never", "never@example.com")).await;
    let disabled = wait_for_webhook(&app, &webhook.name, |w| w.state == State::Disabled as i32).await;
    assert!(disabled.disabled_reason.contains("failed since"), "{}", disabled.disabled_reason);
    assert!(down.received().len() >= 2, "retried before giving up");
    assert!(deliveries(&app, &webhook.name).await.iter().all(|d| d.response_code == 503));
}

#[tokio::test]
async fn a_secret_the_service_cannot_open_fails_each_attempt_without_sending_anything() {
    // Arrange: the stored secret no longer opens (sealed under another key, say).
    let app = spawn_app_with(|c| c.kit.webhooks.webhook_disable_after_secs = 1).await;
    let receiver = WebhookReceiver::start().await;
    let (webhook, _) = subscribe(&app, &receiver.url(), &[]).await;
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    let garbled =
        sqlx::query("UPDATE webhooks SET secret = '\\x00112233445566778899aabbccddeeff00112233'::bytea").execute(&mut conn).await.unwrap();
    assert_eq!(garbled.rows_affected(), 1);

    // Act
    app.create(customer("Unsigned", "unsigned@example.com")).await;

    // Assert: each attempt is logged as failed with the reason, retried, and the webhook disabled in the end.
    let disabled = wait_for_webhook(&app, &webhook.name, |w| w.state == State::Disabled as i32).await;
    assert!(disabled.disabled_reason.contains("failed since"), "{}", disabled.disabled_reason);
    let attempts = deliveries(&app, &webhook.name).await;
    assert!(!attempts.is_empty() && attempts.iter().all(|d| d.error.contains("signing secret cannot be opened")), "{attempts:?}");
    assert!(receiver.received().is_empty(), "nothing goes out unsigned");
}

#[tokio::test]
async fn replay_delivers_again_from_a_position_or_a_time() {
    let app = spawn_app().await;
    let receiver = WebhookReceiver::start().await;
    let (webhook, _) = subscribe(&app, &receiver.url(), &[]).await;
    let names = create_customers(&app, 5, "Replay").await;
    let first = receiver.wait_for_accepted(5, Duration::from_secs(10)).await;

    let replayed = client(&app)
        .replay_webhook(app.admin(pb::ReplayWebhookRequest {
            name: webhook.name.clone(),
            start: Some(pb::replay_webhook_request::Start::AfterPosition(first[1].position())),
        }))
        .await
        .unwrap()
        .into_inner()
        .webhook
        .unwrap();
    assert_eq!(replayed.delivered_position, first[1].position());
    let all = receiver.wait_for_accepted(8, Duration::from_secs(10)).await;
    assert_eq!(subjects(&all[5..]), names[2..], "the range again, in order");
    assert_eq!(all[5].id, first[2].id, "the same webhook-id: receivers dedupe on it");

    let from_start = chrono::Utc::now() - chrono::Duration::minutes(5);
    client(&app)
        .replay_webhook(app.admin(pb::ReplayWebhookRequest {
            name: webhook.name.clone(),
            start: Some(pb::replay_webhook_request::Start::FromTime(crm_kit::time::to_timestamp(from_start))),
        }))
        .await
        .unwrap();
    let all = receiver.wait_for_accepted(13, Duration::from_secs(10)).await;
    assert_eq!(subjects(&all[8..]), names);

    let beyond = client(&app)
        .replay_webhook(app.admin(pb::ReplayWebhookRequest {
            name: webhook.name.clone(),
            start: Some(pb::replay_webhook_request::Start::AfterPosition(first[4].position() + 1_000_000)),
        }))
        .await;
    assert_error(beyond, Code::InvalidArgument, "INVALID_POSITION");
    let unset = client(&app).replay_webhook(app.admin(pb::ReplayWebhookRequest { name: webhook.name.clone(), start: None })).await;
    assert_error(unset, Code::InvalidArgument, "REQUIRED");
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_during_the_overlap() {
    let app = spawn_app().await;
    let receiver = WebhookReceiver::start().await;
    let request = pb::CreateWebhookRequest {
        webhook: Some(pb::Webhook { target_uri: receiver.url(), ..Default::default() }),
        request_id: "create-hook-1".into(),
        ..Default::default()
    };
    let created = client(&app).create_webhook(app.admin(request.clone())).await.unwrap().into_inner();
    let retried = client(&app).create_webhook(app.admin(request)).await.unwrap().into_inner();
    assert_eq!(retried.webhook, created.webhook, "a retry gets the same webhook");
    assert_eq!(retried.secret, created.secret, "and its secret");
    let webhook = created.webhook.unwrap();
    let fetched = get(&app, &webhook.name).await;
    assert!(!format!("{fetched:?}").contains(&created.secret), "Get never shows the secret");

    let rotated = client(&app)
        .rotate_webhook_secret(app.admin(pb::RotateWebhookSecretRequest {
            name: webhook.name.clone(),
            overlap_seconds: 3600,
            etag: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.secret, created.secret);
    assert!(rotated.webhook.unwrap().previous_secret_expire_time.is_some());

    app.create(customer("Rotated", "rotated@example.com")).await;
    let received = receiver.wait_for_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(received[0].signature.split(' ').count(), 2, "two signatures while rotating");
    assert_signed(&received[0], &created.secret);
    assert_signed(&received[0], &rotated.secret);

    let too_long = client(&app)
        .rotate_webhook_secret(app.admin(pb::RotateWebhookSecretRequest {
            name: webhook.name.clone(),
            overlap_seconds: 8 * 86_400,
            etag: String::new(),
        }))
        .await;
    assert_error(too_long, Code::InvalidArgument, "OUT_OF_RANGE");
}

#[tokio::test]
async fn webhooks_are_validated_admin_only_tenant_scoped_and_versioned() {
    let app = spawn_app_with(|c| c.kit.outbound_allow_private = false).await;
    let mut hooks = client(&app);
    let create = |uri: &str, types: &[&str]| pb::CreateWebhookRequest {
        webhook: Some(pb::Webhook {
            target_uri: uri.into(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let denied = hooks.create_webhook(app.as_roles(create("https://example.com/h", &[]), &["agent", "marketer"])).await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
    let denied = hooks.get_webhook(app.as_roles(pb::GetWebhookRequest { name: "webhooks/0190".into() }, &["service"])).await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");

    let status = hooks.create_webhook(app.admin(create("http://example.com/h", &[]))).await.unwrap_err();
    assert_eq!(violations(&status), [("webhook.target_uri".to_owned(), "URL_NOT_ALLOWED".to_owned())], "plain http");
    let status = hooks.create_webhook(app.admin(create("https://127.0.0.1:9/h", &[]))).await.unwrap_err();
    assert_eq!(violations(&status), [("webhook.target_uri".to_owned(), "HOST_NOT_ALLOWED".to_owned())], "loopback (SSRF)");
    let status =
        hooks.create_webhook(app.admin(create("https://169.254.169.254/latest", &["crm.profiles.v1.*", "crm..x"]))).await.unwrap_err();
    assert_eq!(
        violations(&status),
        [
            ("webhook.target_uri".to_owned(), "HOST_NOT_ALLOWED".to_owned()),
            ("webhook.event_types[1]".to_owned(), "INVALID_EVENT_TYPE".to_owned())
        ]
    );

    // Stored through the database directly (no public host resolves here), then versioned like any resource.
    let app2 = spawn_app().await;
    let mut hooks = client(&app2);
    let receiver = WebhookReceiver::start().await;
    let beyond = pb::CreateWebhookRequest { start_after_position: 1 << 40, ..create(&receiver.url(), &[]) };
    let status = hooks.create_webhook(app2.admin(beyond)).await.unwrap_err();
    assert_eq!(violations(&status), [("start_after_position".to_owned(), "INVALID_POSITION".to_owned())], "beyond the newest event");
    let (webhook, _) = subscribe(&app2, &receiver.url(), &["crm.profiles.v1.Customer*"]).await;
    let stale = hooks
        .update_webhook(app2.admin(pb::UpdateWebhookRequest {
            webhook: Some(pb::Webhook {
                name: webhook.name.clone(),
                description: "x".into(),
                etag: crm_kit::etag::of_revision(999),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
        }))
        .await;
    assert_error(stale, Code::Aborted, "ETAG_MISMATCH");
    let updated = hooks
        .update_webhook(app2.admin(pb::UpdateWebhookRequest {
            webhook: Some(pb::Webhook {
                name: webhook.name.clone(),
                description: "CRM sync".into(),
                etag: webhook.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["description".into()] }),
        }))
        .await
        .unwrap()
        .into_inner()
        .webhook
        .unwrap();
    assert_eq!(updated.description, "CRM sync");
    assert_eq!(updated.event_types, webhook.event_types, "fields outside the mask kept");
    assert_ne!(updated.etag, webhook.etag);

    let other_tenant = crm_testkit::auth::token(uuid::Uuid::now_v7(), &["admin"]);
    let hidden =
        hooks.get_webhook(crm_testkit::auth::with_token(pb::GetWebhookRequest { name: webhook.name.clone() }, &other_tenant)).await;
    assert_error(hidden, Code::NotFound, "NOT_FOUND");
    let listed =
        hooks.list_webhooks(crm_testkit::auth::with_token(pb::ListWebhooksRequest::default(), &other_tenant)).await.unwrap().into_inner();
    assert!(listed.webhooks.is_empty());
    assert_eq!(hooks.list_webhooks(app2.admin(pb::ListWebhooksRequest::default())).await.unwrap().into_inner().webhooks.len(), 1);

    hooks.delete_webhook(app2.admin(pb::DeleteWebhookRequest { name: webhook.name.clone(), etag: updated.etag.clone() })).await.unwrap();
    assert_error(hooks.get_webhook(app2.admin(pb::GetWebhookRequest { name: webhook.name.clone() })).await, Code::NotFound, "NOT_FOUND");
    app2.create(customer("After delete", "after@example.com")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.received().is_empty(), "a deleted webhook gets nothing");
}

#[tokio::test]
async fn events_past_retention_are_pruned_and_resuming_below_them_is_out_of_range() {
    let app = spawn_app_with(|c| {
        c.kit.webhooks.outbox_retention_days = 30;
        c.kit.webhooks.outbox_prune_poll_ms = 100;
    })
    .await;
    let receiver = WebhookReceiver::start().await;
    let (webhook, _) = subscribe(&app, &receiver.url(), &[]).await;
    // A second webhook, disabled all the while the events age and are pruned.
    let paused_receiver = WebhookReceiver::start().await;
    let paused = client(&app)
        .create_webhook(app.admin(pb::CreateWebhookRequest {
            webhook: Some(pb::Webhook { target_uri: paused_receiver.url(), state: State::Disabled as i32, ..Default::default() }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .webhook
        .unwrap();
    create_customers(&app, 4, "Old").await;
    let delivered = receiver.wait_for_accepted(4, Duration::from_secs(10)).await;
    let (oldest, kept) = (delivered[0].position(), delivered[2].position());
    // Attempts are recorded with the progress, shortly after the deliveries: wait for them.
    wait_for_webhook(&app, &webhook.name, |w| w.delivered_position >= delivered[3].position()).await;

    // The first two events (and their delivery attempts) age past retention.
    let mut db = app.app_connection().await;
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(app.tenant.to_string()).execute(&mut *tx).await.unwrap();
    sqlx::query(
        "WITH aged AS (UPDATE outbox_positions SET time = now() - interval '31 days' WHERE position < $1 RETURNING seq)
         UPDATE outbox SET time = now() - interval '31 days' WHERE seq IN (SELECT seq FROM aged)",
    )
    .bind(kept)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE webhook_attempts SET attempt_time = now() - interval '31 days' WHERE position < $1")
        .bind(kept)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut pruned = false;
    for _ in 0..100 {
        let count: i64 = {
            let mut tx = db.begin().await.unwrap();
            sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(app.tenant.to_string()).execute(&mut *tx).await.unwrap();
            sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM outbox_positions WHERE position < $1)
                      + (SELECT count(*) FROM outbox WHERE time < now() - interval '30 days')",
            )
            .bind(kept)
            .fetch_one(&mut *tx)
            .await
            .unwrap()
        };
        if count == 0 {
            pruned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pruned, "the two old events were deleted");
    let log = deliveries(&app, &webhook.name).await;
    assert!(log.len() >= 2 && log.iter().all(|d| d.position >= kept), "their attempts too, the rest kept: {log:?}");

    let mut events = app.events.clone();
    let status = match events.subscribe(app.admin(SubscribeRequest { after_position: oldest, types: vec![] })).await {
        Err(status) => status,
        Ok(_) => panic!("resuming below the pruned events must fail"),
    };
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(crate::helpers::error_info(&status).0, "EVENTS_PRUNED");
    let rest = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 2).await;
    assert_eq!(rest[0].position, kept, "0 starts at the oldest event kept");
    let replay = client(&app)
        .replay_webhook(app.admin(pb::ReplayWebhookRequest {
            name: webhook.name.clone(),
            start: Some(pb::replay_webhook_request::Start::AfterPosition(oldest)),
        }))
        .await;
    assert_error(replay, Code::OutOfRange, "EVENTS_PRUNED");
    // A replay from 0 starts at the oldest event kept: no gap to report.
    let before = receiver.accepted().len();
    client(&app)
        .replay_webhook(app.admin(pb::ReplayWebhookRequest {
            name: webhook.name.clone(),
            start: Some(pb::replay_webhook_request::Start::AfterPosition(0)),
        }))
        .await
        .unwrap();
    let again = receiver.wait_for_accepted(before + 2, Duration::from_secs(10)).await;
    assert_eq!(again[before..].iter().map(Received::position).collect::<Vec<_>>(), [kept, delivered[3].position()]);

    // Set ACTIVE again, the paused webhook resumes after the pruned events,
    // and the tenant is told of the gap (here, through that webhook itself).
    client(&app)
        .update_webhook(app.admin(pb::UpdateWebhookRequest {
            webhook: Some(pb::Webhook { name: paused.name.clone(), state: State::Active as i32, ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["state".into()] }),
        }))
        .await
        .unwrap();
    let got = paused_receiver.wait_for_accepted(3, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter().map(Received::position).collect::<Vec<_>>()[..2],
        [kept, delivered[3].position()],
        "the kept events, none of the pruned: {:?}",
        subjects(&got)
    );
    let told = &got[2].json;
    assert_eq!(told["type"], "crm.events.v1.EventsPruned");
    assert_eq!(told["subject"], paused.name.as_str());
    assert_eq!(told["data"]["deliverer"], paused.name.as_str());
    // (proto3 JSON leaves a 0 out)
    assert_eq!(told["data"]["afterPosition"].as_str().unwrap_or("0"), paused.delivered_position.to_string());
    assert_eq!(told["data"]["throughPosition"], delivered[1].position().to_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(paused_receiver.received().len(), 3, "told once");
    let gaps: Vec<_> = receiver
        .received()
        .iter()
        .filter(|r| r.json["type"] == "crm.events.v1.EventsPruned")
        .map(|r| r.json["data"]["deliverer"].clone())
        .collect();
    assert_eq!(gaps, [serde_json::json!(paused.name)], "the paused webhook's gap only, not the replay's");
    let resumed = get(&app, &paused.name).await;
    assert!(resumed.delivered_position > delivered[3].position());
}

#[tokio::test]
async fn the_due_scan_serves_the_least_recently_served_webhook_first() {
    let app = spawn_app().await;
    let receiver = WebhookReceiver::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (webhook, _) = subscribe(&app, &receiver.url(), &[]).await;
        ids.push(webhook.name.trim_start_matches("webhooks/").parse::<uuid::Uuid>().unwrap());
    }
    // Each with a retry due in an hour (so that this replica's dispatcher,
    // scanning at the real time, leaves them alone), released a minute ago,
    // never served, and released two minutes ago.
    let pool = sqlx::PgPool::connect(&app.db.app_url).await.unwrap();
    let mut tx = crate::helpers::inside(&pool, app.tenant).await;
    for (id, released) in ids.iter().zip([Some(60.0), None, Some(120.0)]) {
        sqlx::query(
            "UPDATE webhook_cursors SET due_time = now() + interval '1 hour', lease_until = now() - make_interval(secs => $2)
             WHERE webhook_id = $1",
        )
        .bind(id)
        .bind(released)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let due = |limit| {
        let pool = pool.clone();
        async move {
            let due: Vec<(uuid::Uuid, uuid::Uuid)> =
                crm_kit::db::scan_due(&pool, "webhook-scan", "webhook_cursors", crm_kit::webhooks::store::DUE_SQL, later, limit)
                    .await
                    .unwrap();
            due.into_iter().map(|(_, webhook)| webhook).collect::<Vec<_>>()
        }
    };
    assert_eq!(due(2).await, [ids[1], ids[2]], "never, then longest ago");
    assert_eq!(due(10).await, [ids[1], ids[2], ids[0]]);
}
