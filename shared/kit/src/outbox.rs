//! The transactional outbox and the `crm.events.v1.EventService` stream.
//!
//! Writers call [`append`] inside the transaction that makes the change, so
//! the event exists if and only if the change committed; a statement trigger
//! queues it in `outbox_pending` in the same transaction. Readers never trust
//! insertion order (transactions commit out of order); instead each read
//! first *stamps* the tenant's queued, committed events — moves them into
//! `outbox_positions` with the next positions — while holding a per-tenant
//! advisory lock until its transaction commits. Stamping transactions are
//! therefore serialised per tenant and each one's positions exceed every
//! position already visible, so `position > cursor` never skips a committed
//! event, however late it committed. (Positions live apart from the events so
//! that stamping writes two narrow rows, not a new version of the event's
//! row and of each of its indexes: see migration `0005_outbox_positions`.)
//!
//! Writers issue `NOTIFY crm_outbox, '<tenant>'`, delivered on commit, which
//! wakes that tenant's streams; a one-second poll covers lost notifications.

use std::{pin::Pin, time::Duration};

use chrono::{DateTime, Utc};
use crm_proto::crm::events::v1::{Event, SubscribeRequest, SubscribeResponse, event_service_server::EventService};
use futures::Stream;
use prost::{Message, Name};
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    auth::{EVENTS_READ, caller},
    db::{TenantTx, begin_tenant, db_span},
    error::Error,
    telemetry::current_traceparent,
};

/// Postgres channel on which writers announce new events (payload: tenant id).
pub const NOTIFY_CHANNEL: &str = "crm_outbox";
/// Events read per database round trip.
const BATCH: i64 = 256;
/// Poll interval when no notification arrives.
const POLL: Duration = Duration::from_secs(1);

/// Writes one event for `subject` in the caller's transaction. The event
/// type is the message's full protobuf name (`prost::Name`), so a type can
/// never drift from the message a consumer decodes.
#[tracing::instrument(skip_all, fields(event.type = tracing::field::Empty))]
pub async fn append<M: Message + Name>(tx: &mut TenantTx, tenant: Uuid, subject: &str, data: &M) -> Result<(), Error> {
    let type_name = M::full_name();
    tracing::Span::current().record("event.type", type_name.as_str());
    let any = prost_types::Any { type_url: M::type_url(), value: data.encode_to_vec() };
    sqlx::query(
        "WITH written AS (
             INSERT INTO outbox (tenant_id, id, type, subject, data, traceparent) VALUES ($1, $2, $3, $4, $5, $6)
         )
         SELECT pg_notify($7, $1::text)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(&type_name)
    .bind(subject)
    .bind(any.encode_to_vec())
    .bind(current_traceparent())
    .bind(NOTIFY_CHANNEL)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "outbox"))
    .await?;
    Ok(())
}

/// Writes `events` — (subject, message) pairs of one type — in the caller's
/// transaction with one statement, for writes that announce many changes.
#[tracing::instrument(skip_all, fields(event.type = tracing::field::Empty, event.count = events.len()))]
pub async fn append_all<M: Message + Name>(tx: &mut TenantTx, tenant: Uuid, events: &[(String, M)]) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let type_name = M::full_name();
    tracing::Span::current().record("event.type", type_name.as_str());
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let subjects: Vec<&str> = events.iter().map(|(subject, _)| subject.as_str()).collect();
    let data: Vec<Vec<u8>> =
        events.iter().map(|(_, m)| prost_types::Any { type_url: M::type_url(), value: m.encode_to_vec() }.encode_to_vec()).collect();
    sqlx::query(
        "WITH written AS (
             INSERT INTO outbox (tenant_id, id, type, subject, data, traceparent)
             SELECT $1, id, $3, subject, data, $6 FROM unnest($2::uuid[], $4::text[], $5::bytea[]) AS e(id, subject, data)
         )
         SELECT pg_notify($7, $1::text)",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&type_name)
    .bind(&subjects)
    .bind(&data)
    .bind(current_traceparent())
    .bind(NOTIFY_CHANNEL)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "outbox"))
    .await?;
    Ok(())
}

/// Listens for outbox notifications and fans them out to streams; runs until `shutdown` turns true.
pub fn spawn_listener(pool: PgPool, mut shutdown: watch::Receiver<bool>) -> broadcast::Sender<Uuid> {
    let (wakeups, _) = broadcast::channel(1024);
    let sender = wakeups.clone();
    tokio::spawn(async move {
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(error = %err, "outbox listener cannot connect; streams fall back to polling");
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            };
            if let Err(err) = listener.listen(NOTIFY_CHANNEL).await {
                tracing::warn!(error = %err, "LISTEN failed");
                continue;
            }
            loop {
                tokio::select! {
                    note = listener.recv() => match note {
                        Ok(note) => {
                            if let Ok(tenant) = note.payload().parse() {
                                let _ = sender.send(tenant);
                            }
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "outbox listener lost its connection");
                            break;
                        }
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        }
    });
    wakeups
}

/// Serves `crm.events.v1.EventService` from the service's outbox.
#[derive(Clone)]
pub struct EventStreamService {
    pool: PgPool,
    source: &'static str,
    wakeups: broadcast::Sender<Uuid>,
    shutdown: watch::Receiver<bool>,
}

impl EventStreamService {
    /// A stream service for the outbox in `pool`, naming events' source `source`.
    pub fn new(pool: PgPool, source: &'static str, wakeups: broadcast::Sender<Uuid>, shutdown: watch::Receiver<bool>) -> Self {
        Self { pool, source, wakeups, shutdown }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for EventStreamService {
    type SubscribeStream = EventStream;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<EventStream>, Status> {
        let principal = caller(&request)?;
        principal.require(EVENTS_READ)?;
        let SubscribeRequest { after_position, types } = request.into_inner();
        if after_position < 0 {
            return Err(Error::invalid("after_position", "INVALID_POSITION", "after_position must not be negative").into());
        }
        if after_position > 0 {
            check_not_pruned(&self.pool, principal.tenant, after_position).await?;
        }
        let (sender, receiver) = mpsc::channel(64);
        let pump = Pump {
            pool: self.pool.clone(),
            source: self.source,
            tenant: principal.tenant,
            types: types.iter().map(|t| crate::webhooks::like_pattern(t)).collect(),
            wakeups: self.wakeups.subscribe(),
            shutdown: self.shutdown.clone(),
            sender,
        };
        tokio::spawn(pump.run(after_position).in_current_span());
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// Feeds one subscriber.
struct Pump {
    pool: PgPool,
    source: &'static str,
    tenant: Uuid,
    /// `LIKE` patterns of the types asked for.
    types: Vec<String>,
    wakeups: broadcast::Receiver<Uuid>,
    shutdown: watch::Receiver<bool>,
    sender: mpsc::Sender<Result<SubscribeResponse, Status>>,
}

impl Pump {
    async fn run(mut self, mut cursor: i64) {
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let batch = match read_after(&self.pool, self.source, self.tenant, cursor, &self.types, BATCH).await {
                // Overtaken by the retention mid-stream (a backlog read slower
                // than it ages): the same answer as resuming there.
                Ok(batch) if cursor > 0 && batch.pruned_after(cursor).is_some() => {
                    let _ = self.sender.send(Err(pruned_error(cursor, batch.pruned_through).into())).await;
                    return;
                }
                Ok(batch) => batch,
                Err(err) => {
                    let _ = self.sender.send(Err(err.into())).await;
                    return;
                }
            };
            for event in batch.events {
                if self.sender.send(Ok(SubscribeResponse { event: Some(event) })).await.is_err() {
                    return;
                }
            }
            cursor = batch.scanned_to;
            if batch.more {
                continue;
            }
            tokio::select! {
                _ = self.sender.closed() => return,
                _ = self.shutdown.wait_for(|stop| *stop) => return,
                _ = wait_for_tenant(&mut self.wakeups, self.tenant) => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// A tenant's committed events after a cursor, oldest first: the next
/// `limit` positions of the tenant are looked at, and those whose type
/// matches are returned.
pub(crate) struct Batch {
    /// The events looked at whose type matches.
    pub events: Vec<Event>,
    /// The last position looked at (the cursor when there was none): a
    /// reader that has handled `events` may move its cursor here, since the
    /// events it did not get up to it were filtered out.
    pub scanned_to: i64,
    /// Whether `limit` positions were looked at, so more may follow at once.
    pub more: bool,
    /// The tenant's highest pruned position as the window was read (0 when
    /// the window was empty): read in the same snapshot, so a cursor below
    /// it was overtaken by the retention, and the events in between are gone.
    pub pruned_through: i64,
}

impl Batch {
    /// The highest position pruned, when events after `cursor` were among
    /// those the retention deleted before this read.
    pub fn pruned_after(&self, cursor: i64) -> Option<i64> {
        (cursor < self.pruned_through).then_some(self.pruned_through)
    }
}

/// Stamps up to `limit` of `tenant`'s queued events (see the module docs) and reads the
/// next `limit` of them after `cursor` ([`Batch`]), keeping those whose type
/// matches one of `patterns` (SQL `LIKE` patterns, see
/// [`crate::webhooks::like_pattern`]; empty: every type).
///
/// The window is read by the `outbox_window` SQL function (migration
/// `0005_outbox_positions`): an index walk of `outbox_positions` that stops
/// after `limit` entries, each event then looked up by its `seq`, its plan
/// pinned so that a read costs the same however long the backlog. (Planned
/// freely, the row-security filter's low estimates make the planner scan
/// every later position of the tenant and sort them: O(backlog) per read.)
pub(crate) async fn read_after(
    pool: &PgPool,
    source: &str,
    tenant: Uuid,
    cursor: i64,
    patterns: &[String],
    limit: i64,
) -> Result<Batch, Error> {
    let mut tx = begin_tenant(pool, tenant).await?;
    stamp(&mut tx, tenant, Some(limit)).await?;
    let window: Vec<WindowRow> = sqlx::query_as(
        "SELECT position, id, type, subject, time, data, traceparent,
             (SELECT p.position FROM outbox_pruned p WHERE p.tenant_id = $1) AS pruned
         FROM outbox_window($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(cursor)
    .bind(limit)
    .bind(patterns)
    .fetch_all(&mut *tx)
    .instrument(db_span("SELECT", "outbox"))
    .await?;
    tx.commit().await?;
    let looked_at = window.len() as i64;
    let pruned_through = window.first().and_then(|row| row.pruned).unwrap_or(0);
    let scanned_to = window.last().map_or(cursor, |row| row.position);
    let events = window
        .into_iter()
        .filter_map(|row| {
            let WindowRow { position, id: Some(id), r#type: Some(r#type), subject, time, data, traceparent, .. } = row else {
                return None;
            };
            let data = prost_types::Any::decode(data.unwrap_or_default().as_slice()).map_err(Error::internal);
            Some(data.map(|data| Event {
                id: id.to_string(),
                r#type,
                source: source.to_owned(),
                subject: subject.unwrap_or_default(),
                time: time.map(crate::time::to_timestamp),
                tenant: tenant.to_string(),
                data: Some(data),
                position,
                traceparent: traceparent.unwrap_or_default(),
            }))
        })
        .collect::<Result<_, Error>>()?;
    Ok(Batch { events, scanned_to, more: looked_at == limit, pruned_through })
}

/// The next window of a deliverer, read in the background (by [`read_after`])
/// while it hands out the current one; aborted when dropped unread.
pub(crate) struct ReadAhead(tokio::task::JoinHandle<Result<Batch, Error>>);

impl ReadAhead {
    /// Starts reading `tenant`'s next `limit` positions after `after`.
    pub fn start(pool: &PgPool, source: &'static str, tenant: Uuid, after: i64, patterns: Vec<String>, limit: i64) -> Self {
        let pool = pool.clone();
        Self(tokio::spawn(async move { read_after(&pool, source, tenant, after, &patterns, limit).await }.in_current_span()))
    }

    /// The window, once read.
    pub async fn batch(mut self) -> Result<Batch, Error> {
        (&mut self.0).await.map_err(Error::internal)?
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `tenant`'s highest pruned position (0 when nothing was pruned): where a
/// new cursor of a deliverer starts, so that its gap check reports only
/// events it was meant to deliver.
pub async fn pruned_position(tx: &mut TenantTx, tenant: Uuid) -> Result<i64, Error> {
    let pruned: Option<i64> = sqlx::query_scalar("SELECT position FROM outbox_pruned WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "outbox_pruned"))
        .await?;
    Ok(pruned.unwrap_or(0))
}

/// OUT_OF_RANGE when events of `tenant` after `after_position` were pruned.
pub async fn check_not_pruned(pool: &PgPool, tenant: Uuid, after_position: i64) -> Result<(), Error> {
    let mut tx = begin_tenant(pool, tenant).await?;
    let pruned = pruned_position(&mut tx, tenant).await?;
    tx.commit().await?;
    if after_position < pruned {
        return Err(pruned_error(after_position, pruned));
    }
    Ok(())
}

fn pruned_error(after_position: i64, pruned: i64) -> Error {
    Error::OutOfRange {
        reason: "EVENTS_PRUNED",
        message: format!(
            "events after position {after_position} up to {pruned} are past the outbox retention and were deleted; \
             resume from position {pruned} (or 0, the oldest kept) and reconcile the gap another way"
        ),
    }
}

/// A position of the window read, with its event when the type matches
/// (else every other column is NULL).
#[derive(sqlx::FromRow)]
struct WindowRow {
    position: i64,
    id: Option<Uuid>,
    r#type: Option<String>,
    subject: Option<String>,
    time: Option<DateTime<Utc>>,
    data: Option<Vec<u8>>,
    traceparent: Option<String>,
    /// The tenant's highest pruned position (the same on every row).
    pruned: Option<i64>,
}

/// Gives every committed, queued event of `tenant` the next positions; the
/// advisory lock is held until `tx` commits (see the module docs for why).
/// Readers stamp for themselves; this is public for tools and benches that
/// prepare a backlog as a reader would leave it.
pub async fn stamp_positions(tx: &mut TenantTx, tenant: Uuid) -> Result<(), Error> {
    stamp(tx, tenant, None).await
}

/// Stamps up to `max` (all when `None`) of `tenant`'s queued events, oldest
/// first, with the `outbox_stamp` SQL function. A reader stamps about what it
/// reads, so that a large backlog is stamped a window at a time while the
/// windows before go out, instead of all of it before the first goes out.
async fn stamp(tx: &mut TenantTx, tenant: Uuid, max: Option<i64>) -> Result<(), Error> {
    // Stamping is an event's first delivery: how long it waited is the outbox lag.
    let waits: Vec<f64> = sqlx::query_scalar("SELECT outbox_stamp($1, $2)")
        .bind(tenant)
        .bind(max)
        .fetch_all(&mut **tx)
        .instrument(db_span("INSERT", "outbox_positions"))
        .await?;
    crate::metrics::record_outbox_lag(&waits);
    Ok(())
}

pub(crate) async fn wait_for_tenant(wakeups: &mut broadcast::Receiver<Uuid>, tenant: Uuid) {
    loop {
        match wakeups.recv().await {
            Ok(t) if t == tenant => return,
            Ok(_) => continue,
            // Missed notifications may have been ours: read anyway.
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
