//! A service's event stream as tests read it, and backlogs written for them.

use std::time::Duration;

use crm_proto::crm::events::v1::{Event, SubscribeRequest, event_service_client::EventServiceClient};
use prost::{Message, Name};
use sqlx::PgPool;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::auth::with_token;

/// The first `n` events after position `after` of the stream on `channel`,
/// read with `bearer`; panics if they do not arrive within 20 s.
pub async fn collect(channel: &Channel, bearer: &str, after: i64, n: usize) -> Vec<Event> {
    collect_of(channel, bearer, after, n, &[]).await
}

/// The first `n` events of the given `types` (all when empty) after position `after`.
pub async fn collect_of(channel: &Channel, bearer: &str, after: i64, n: usize, types: &[&str]) -> Vec<Event> {
    let types = types.iter().map(|t| (*t).to_owned()).collect();
    let request = with_token(SubscribeRequest { after_position: after, types }, bearer);
    let mut stream = EventServiceClient::new(channel.clone()).subscribe(request).await.expect("subscribed").into_inner();
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("events arrive in time");
        events.push(next.expect("stream open").expect("no stream error").event.expect("an event"));
    }
    events
}

/// Writes `count` CustomerCreated events of `tenant` into a profiles outbox
/// (`app_url`: the service's login role) as the service's own writes do — one
/// statement, announced — for tests and benches of what reads the outbox.
pub async fn write_backlog(app_url: &str, tenant: Uuid, count: usize) -> Vec<Uuid> {
    insert_backlog(app_url, tenant, count, false).await
}

/// As [`write_backlog`], with the events stamped before they are announced —
/// as when another reader (a webhook, a `Subscribe` stream) read them first.
pub async fn write_stamped_backlog(app_url: &str, tenant: Uuid, count: usize) -> Vec<Uuid> {
    insert_backlog(app_url, tenant, count, true).await
}

async fn insert_backlog(app_url: &str, tenant: Uuid, count: usize, stamped: bool) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
    let subjects: Vec<String> = (0..count).map(|_| format!("customers/{}", Uuid::now_v7())).collect();
    let data: Vec<Vec<u8>> = subjects
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let created = crm_proto::crm::profiles::v1::CustomerCreated {
                customer: Some(crm_proto::crm::profiles::v1::Customer {
                    name: name.clone(),
                    display_name: format!("Backlog {i}"),
                    ..Default::default()
                }),
            };
            prost_types::Any { type_url: crm_proto::crm::profiles::v1::CustomerCreated::type_url(), value: created.encode_to_vec() }
                .encode_to_vec()
        })
        .collect();
    let pool = PgPool::connect(app_url).await.unwrap();
    let mut tx = crm_kit::db::begin_tenant(&pool, tenant).await.unwrap();
    sqlx::query(
        "INSERT INTO outbox (tenant_id, id, type, subject, data)
         SELECT $1, id, $2, subject, data FROM unnest($3::uuid[], $4::text[], $5::bytea[]) AS e(id, subject, data) ORDER BY id",
    )
    .bind(tenant)
    .bind(crm_proto::crm::profiles::v1::CustomerCreated::full_name())
    .bind(&ids)
    .bind(&subjects)
    .bind(&data)
    .execute(&mut *tx)
    .await
    .unwrap();
    if stamped {
        crm_kit::outbox::stamp_positions(&mut tx, tenant).await.unwrap();
    }
    sqlx::query("SELECT pg_notify('crm_outbox', $1)").bind(tenant.to_string()).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    ids
}
