//! The NATS JetStream relay (a kit capability, exercised through profiles)
//! against a real nats-server: every committed event, in order per tenant,
//! once, with the event id as `Nats-Msg-Id`; events the retention deleted
//! before NATS came back are reported in the stream, not skipped silently.

use std::time::Duration;

use crm_kit::relay::stream_name;
use crm_proto::crm::{events::v1::EventsPruned, profiles::v1 as pb};
use crm_testkit::{
    auth::{token, with_token},
    jetstream::wait_for_messages,
    nats::NatsServer,
};
use prost::Message;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{customer, inside, spawn_app, spawn_app_with};

#[tokio::test]
async fn every_event_reaches_jetstream_in_order_once_with_its_id() {
    let nats = NatsServer::start().await;
    let url = nats.url.clone();
    let app = spawn_app_with(|c| c.kit.relay.nats_url = Some(url)).await;
    for i in 0..5 {
        app.create(customer(&format!("Relayed {i}"), &format!("relayed{i}@example.com"))).await;
    }
    let other = Uuid::now_v7();
    let other_token = token(other, &["admin"]);
    for i in 0..3 {
        app.customers
            .clone()
            .create_customer(with_token(
                pb::CreateCustomerRequest {
                    customer: Some(customer(&format!("Other {i}"), &format!("o{i}@example.com"))),
                    request_id: String::new(),
                },
                &other_token,
            ))
            .await
            .unwrap();
    }
    let mine = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 5).await;
    let theirs = crm_testkit::events::collect(&app.channel, &other_token, 0, 3).await;

    let relayed = wait_for_messages(&nats.client().await, &stream_name("profiles"), 8, Duration::from_secs(15)).await;
    assert_eq!(relayed.len(), 8, "every event once");
    for (tenant, events) in [(app.tenant, &mine), (other, &theirs)] {
        let of_tenant: Vec<_> = relayed.iter().filter(|m| m.event.tenant == tenant.to_string()).collect();
        assert_eq!(of_tenant.iter().map(|m| &m.event.id).collect::<Vec<_>>(), events.iter().map(|e| &e.id).collect::<Vec<_>>(), "in order");
        for (message, event) in of_tenant.iter().zip(events.iter()) {
            assert_eq!(message.message_id, event.id, "Nats-Msg-Id is the event id");
            assert_eq!(message.subject, format!("crm.profiles.{tenant}.{}", event.r#type));
            assert_eq!(message.event, *event, "the envelope as Subscribe streams it");
        }
    }

    // Later events follow, soon after their commit.
    app.create(customer("Late", "late@example.com")).await;
    let relayed = wait_for_messages(&nats.client().await, &stream_name("profiles"), 9, Duration::from_secs(15)).await;
    assert_eq!(relayed.len(), 9);
    assert_eq!(relayed[8].event.r#type, "crm.profiles.v1.CustomerCreated");
}

/// Runs `sql` (binding `bind`) as the app role in `tenant`.
async fn as_tenant(db: &PgPool, tenant: Uuid, sql: &str, bind: i64) -> Option<i64> {
    let mut tx = inside(db, tenant).await;
    let value = sqlx::query_scalar(sql).bind(bind).fetch_optional(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    value
}

#[tokio::test]
async fn events_pruned_while_nats_was_down_are_reported_in_the_stream_not_skipped() {
    // The relay is configured with a NATS server that is not running yet.
    let port = crm_testkit::process::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let app = spawn_app_with(|c| {
        c.kit.relay.nats_url = Some(url);
        c.kit.relay.relay_poll_ms = 100;
        c.kit.webhooks.outbox_retention_days = 30;
        c.kit.webhooks.outbox_prune_poll_ms = 100;
    })
    .await;
    for i in 0..4 {
        app.create(customer(&format!("Waiting {i}"), &format!("waiting{i}@example.com"))).await;
    }
    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 4).await;
    let db = PgPool::connect(&app.db.app_url).await.unwrap();
    let cursor = "SELECT position FROM relay_cursors WHERE $1 = $1";
    for _ in 0..100 {
        if as_tenant(&db, app.tenant, cursor, 0).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(as_tenant(&db, app.tenant, cursor, 0).await, Some(0), "the relay knows the tenant and relayed nothing");

    // The first two events age past the retention and are pruned.
    let aged = "WITH aged AS (UPDATE outbox_positions SET time = now() - interval '31 days' WHERE position < $1 RETURNING seq)
                UPDATE outbox SET time = now() - interval '31 days' WHERE seq IN (SELECT seq FROM aged) RETURNING 0::bigint";
    as_tenant(&db, app.tenant, aged, events[2].position).await;
    let watermark = "SELECT position FROM outbox_pruned WHERE $1 = $1";
    for _ in 0..100 {
        if as_tenant(&db, app.tenant, watermark, 0).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(as_tenant(&db, app.tenant, watermark, 0).await, Some(events[1].position), "pruned");

    // NATS comes up: the kept events, then the gap's report, each once.
    let nats = NatsServer::start_on(port).await;
    let relayed = wait_for_messages(&nats.client().await, &stream_name("profiles"), 3, Duration::from_secs(30)).await;
    assert_eq!(relayed.len(), 3, "{:?}", relayed.iter().map(|m| &m.event.r#type).collect::<Vec<_>>());
    assert_eq!([&relayed[0].event, &relayed[1].event], [&events[2], &events[3]], "the kept events, in order");
    let told = &relayed[2].event;
    assert_eq!(told.r#type, "crm.events.v1.EventsPruned");
    assert_eq!(told.subject, "jetstream/CRM_PROFILES");
    let gap = EventsPruned::decode(told.data.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(gap, EventsPruned { deliverer: "jetstream/CRM_PROFILES".into(), after_position: 0, through_position: events[1].position });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = wait_for_messages(&nats.client().await, &stream_name("profiles"), 4, Duration::from_millis(500)).await;
    assert_eq!(again.len(), 3, "told once");
}

#[tokio::test]
async fn the_due_scan_serves_the_least_recently_relayed_tenant_first() {
    // No NATS: nothing relays, so the cursors stay as written here.
    let app = spawn_app().await;
    let tenants: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let db = PgPool::connect(&app.db.app_url).await.unwrap();
    // Released a minute ago, never leased, released two minutes ago, and one
    // with nothing to relay.
    for (i, tenant) in tenants[..3].iter().enumerate() {
        app.customers
            .clone()
            .create_customer(with_token(
                pb::CreateCustomerRequest {
                    customer: Some(customer(&format!("Due {i}"), &format!("due{i}@example.com"))),
                    request_id: String::new(),
                },
                &token(*tenant, &["admin"]),
            ))
            .await
            .unwrap();
    }
    for (tenant, released) in tenants.iter().zip([Some(60.0), None, Some(120.0), Some(180.0)]) {
        let mut tx = inside(&db, *tenant).await;
        sqlx::query("INSERT INTO relay_cursors (tenant_id, lease_until) VALUES ($1, now() - make_interval(secs => $2))")
            .bind(tenant)
            .bind(released)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let now = chrono::Utc::now();
    assert_eq!(crm_kit::relay::due_tenants(&db, now, 2).await.unwrap(), [tenants[1], tenants[2]], "never, then longest ago");
    assert_eq!(
        crm_kit::relay::due_tenants(&db, now, 10).await.unwrap(),
        [tenants[1], tenants[2], tenants[0]],
        "not the one without events"
    );
}

#[tokio::test]
async fn an_event_jetstream_refuses_holds_its_tenant_back_without_storing_later_events_twice() {
    use async_nats::jetstream::stream;
    let nats = NatsServer::start().await;
    let js = async_nats::jetstream::new(nats.client().await);
    // The operator's stream: messages up to 2 KiB, duplicates dropped for 1 s only.
    let mut config = stream::Config {
        name: stream_name("profiles"),
        subjects: vec!["crm.profiles.>".into()],
        max_message_size: 2048,
        duplicate_window: Duration::from_secs(1),
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.create_stream(config.clone()).await.unwrap();
    let url = nats.url.clone();
    let app = spawn_app_with(|c| {
        c.kit.relay.nats_url = Some(url);
        c.kit.relay.relay_poll_ms = 100;
    })
    .await;

    // The relay knows the tenant (from the notification of an API write).
    app.create(customer("Before", "before@example.com")).await;
    let first = wait_for_messages(&nats.client().await, &config.name, 1, Duration::from_secs(15)).await;
    assert_eq!(first.len(), 1);

    // Four events in one transaction, so that they go out in one pipelined
    // batch: the second is too large for the stream.
    let db = PgPool::connect(&app.db.app_url).await.unwrap();
    let mut tx = inside(&db, app.tenant).await;
    let mut ids = Vec::new();
    for size in [10, 4000, 10, 10] {
        let id = Uuid::now_v7();
        let data = prost_types::Any { type_url: "type.googleapis.com/test.Opaque".into(), value: vec![7; size] };
        sqlx::query("INSERT INTO outbox (tenant_id, id, type, subject, data) VALUES ($1, $2, 'test.Opaque', 'tests/1', $3)")
            .bind(app.tenant)
            .bind(id)
            .bind(data.encode_to_vec())
            .execute(&mut *tx)
            .await
            .unwrap();
        ids.push(id.to_string());
    }
    tx.commit().await.unwrap();
    let stored = |relayed: &[crm_testkit::jetstream::Relayed]| relayed[1..].iter().map(|m| m.message_id.clone()).collect::<Vec<_>>();

    // The others are stored once, the large one not at all, however often the
    // relay tries it again past the duplicate window.
    let relayed = wait_for_messages(&nats.client().await, &config.name, 4, Duration::from_secs(15)).await;
    assert_eq!(stored(&relayed), [ids[0].clone(), ids[2].clone(), ids[3].clone()]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let relayed = wait_for_messages(&nats.client().await, &config.name, 5, Duration::from_millis(100)).await;
    assert_eq!(stored(&relayed), [ids[0].clone(), ids[2].clone(), ids[3].clone()], "nothing stored twice while the large event is refused");
    let failures: i64 = as_tenant(&db, app.tenant, "SELECT failures::bigint FROM relay_cursors WHERE $1 = $1", 0).await.unwrap();
    assert!(failures >= 3, "tried again and again: {failures}");

    // The operator allows larger messages: the held event goes in (after the
    // later ones: its Crm-Position says where it belongs), and relaying
    // carries on after them, without copies.
    config.max_message_size = 64 * 1024;
    js.update_stream(config.clone()).await.unwrap();
    app.create(customer("After", "after@example.com")).await;
    let relayed = wait_for_messages(&nats.client().await, &config.name, 6, Duration::from_secs(30)).await;
    assert_eq!(stored(&relayed)[..4], [ids[0].clone(), ids[2].clone(), ids[3].clone(), ids[1].clone()]);
    assert_eq!(relayed[5].event.r#type, "crm.profiles.v1.CustomerCreated");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let relayed = wait_for_messages(&nats.client().await, &config.name, 7, Duration::from_millis(100)).await;
    assert_eq!(relayed.len(), 6, "each once: {:?}", stored(&relayed));
}
