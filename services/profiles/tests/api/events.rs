//! The outbox event stream: content, order, resume, and no skipped events under concurrent writers.

use std::{collections::HashSet, time::Duration};

use crm_proto::crm::{
    events::v1::{Event, SubscribeRequest},
    profiles::v1 as pb,
};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

/// Subscribes after `after` and collects `n` events (failing after 20 s).
async fn collect(app: &TestApp, after: i64, n: usize) -> Vec<Event> {
    crm_testkit::events::collect(&app.channel, &app.admin_token, after, n).await
}

#[tokio::test]
async fn every_change_emits_its_event_in_commit_order_and_streams_resume() {
    let app = spawn_app().await;
    let created = app.create(customer("Ada", "ada@example.com")).await;
    let mut client = app.customers.clone();
    client
        .update_customer(app.admin(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer { name: created.name.clone(), display_name: "Ada K".into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into(), "company".into()] }),
        }))
        .await
        .unwrap();
    client.delete_customer(app.admin(pb::DeleteCustomerRequest { name: created.name.clone(), etag: String::new() })).await.unwrap();
    client.undelete_customer(app.admin(pb::UndeleteCustomerRequest { name: created.name.clone(), etag: String::new() })).await.unwrap();

    let events = collect(&app, 0, 4).await;
    let types: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        [
            "crm.profiles.v1.CustomerCreated",
            "crm.profiles.v1.CustomerUpdated",
            "crm.profiles.v1.CustomerDeleted",
            "crm.profiles.v1.CustomerUndeleted"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    assert!(events.iter().all(|e| e.subject == created.name && e.source == "profiles" && e.tenant == app.tenant.to_string()));
    let updated = pb::CustomerUpdated::decode(events[1].data.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(updated.changed_paths, ["display_name"], "only paths whose value changed");
    assert_eq!(updated.customer.unwrap().display_name, "Ada K");
    assert_eq!(events[0].data.as_ref().unwrap().type_url, "type.googleapis.com/crm.profiles.v1.CustomerCreated");

    // Resuming after the second event yields exactly the rest.
    let rest = collect(&app, events[1].position, 2).await;
    assert_eq!(rest.iter().map(|e| &e.id).collect::<Vec<_>>(), events[2..].iter().map(|e| &e.id).collect::<Vec<_>>());
}

#[tokio::test]
async fn concurrent_writers_never_cause_a_skipped_event() {
    let app = spawn_app().await;
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    // Subscribe first, so that the stream reads while transactions commit out of order.
    let reader = {
        let app_events = app.events.clone();
        let request = app.admin(SubscribeRequest { after_position: 0, types: vec!["crm.profiles.v1.CustomerCreated".into()] });
        tokio::spawn(async move {
            let mut stream = app_events.clone().subscribe(request).await.unwrap().into_inner();
            let mut events = Vec::new();
            while events.len() < WRITERS * EACH {
                let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.expect("events arrive in time");
                events.push(next.unwrap().unwrap().event.unwrap());
            }
            events
        })
    };
    let writers = (0..WRITERS).map(|w| {
        let mut client = app.customers.clone();
        let token = app.admin_token.clone();
        tokio::spawn(async move {
            let mut names = Vec::new();
            for i in 0..EACH {
                let request = crm_testkit::auth::with_token(
                    pb::CreateCustomerRequest { customer: Some(customer(&format!("W{w}-{i}"), "")), request_id: String::new() },
                    &token,
                );
                names.push(client.create_customer(request).await.unwrap().into_inner().customer.unwrap().name);
            }
            names
        })
    });
    let written: HashSet<String> = futures::future::join_all(writers).await.into_iter().flat_map(|r| r.unwrap()).collect();
    let events = reader.await.unwrap();

    assert!(events.windows(2).all(|w| w[0].position < w[1].position), "positions strictly increase");
    let ids: HashSet<&String> = events.iter().map(|e| &e.id).collect();
    assert_eq!(ids.len(), events.len(), "no duplicates");
    let subjects: HashSet<String> = events.iter().map(|e| e.subject.clone()).collect();
    assert_eq!(subjects, written, "every committed change streamed");

    // A fresh subscriber from 0 sees the same sequence.
    let replay = collect(&app, 0, WRITERS * EACH).await;
    assert_eq!(replay.iter().map(|e| e.position).collect::<Vec<_>>(), events.iter().map(|e| e.position).collect::<Vec<_>>());
}

#[tokio::test]
async fn subscribing_needs_the_events_permission_and_a_valid_position() {
    let app = spawn_app().await;
    let denied = app.events.clone().subscribe(app.as_roles(SubscribeRequest::default(), &["agent"])).await.map(|_| ());
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
    let negative = app.events.clone().subscribe(app.admin(SubscribeRequest { after_position: -1, types: vec![] })).await.map(|_| ());
    assert_error(negative, Code::InvalidArgument, "INVALID_POSITION");
}

#[tokio::test]
async fn a_stream_the_retention_overtakes_ends_out_of_range_instead_of_skipping() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.kit.webhooks.outbox_retention_days = 30;
        c.kit.webhooks.outbox_prune_poll_ms = 100;
    })
    .await;
    // 600 events of 32 KiB: a stream's first window (256 events, 8 MiB) is
    // more than its channel (64) and the client's HTTP/2 window (2 MiB) hold,
    // so the stream's reader stays in it while the client does not read.
    let pool = sqlx::PgPool::connect(&app.db.app_url).await.unwrap();
    let mut tx = crate::helpers::inside(&pool, app.tenant).await;
    let data = prost_types::Any { type_url: "type.googleapis.com/test.Opaque".into(), value: vec![7; 32 * 1024] }.encode_to_vec();
    sqlx::query(
        "INSERT INTO outbox (tenant_id, id, type, subject, data)
         SELECT $1, gen_random_uuid(), 'test.Opaque', 'tests/' || i, $2 FROM generate_series(1, 600) i",
    )
    .bind(app.tenant)
    .bind(&data)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut stream = app.events.clone().subscribe(app.admin(SubscribeRequest::default())).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap().event.unwrap();

    // The first 400 age past the retention and are deleted: the stream has
    // read 256 of them; 144 it has not are gone.
    let mut tx = crate::helpers::inside(&pool, app.tenant).await;
    sqlx::query(
        "WITH doomed AS (SELECT seq FROM outbox ORDER BY seq LIMIT 400),
              stamped AS (UPDATE outbox_positions SET time = now() - interval '31 days' WHERE seq IN (SELECT seq FROM doomed)),
              queued AS (UPDATE outbox_pending SET time = now() - interval '31 days' WHERE seq IN (SELECT seq FROM doomed))
         UPDATE outbox SET time = now() - interval '31 days' WHERE seq IN (SELECT seq FROM doomed)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for _ in 0..100 {
        let mut tx = crate::helpers::inside(&pool, app.tenant).await;
        let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        if kept == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The stream goes on with what it had read, then says it was overtaken.
    let mut got = vec![first];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(Ok(message)) => got.push(message.event.unwrap()),
                Some(Err(status)) => return status,
                None => panic!("the stream ended without an error"),
            }
        }
    })
    .await;
    let Ok(status) = ended else { panic!("no error after {} events", got.len()) };
    assert_eq!(got.len(), 256, "the first window, nothing after it");
    assert!(got.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(crate::helpers::error_info(&status).0, "EVENTS_PRUNED");
}
