//! The NATS JetStream relay (optional; on when `CRM_NATS_URL` is set): every
//! committed event of the service is published to the JetStream stream
//! `CRM_<SERVICE>` under the subject `crm.<service>.<tenant>.<type>`, each
//! tenant's in position order, with `Nats-Msg-Id` = the event id, so that
//! JetStream drops the copies a relay publishes again after a crash. How far
//! each tenant is relayed is recorded in the service's database
//! (`relay_cursors`), only after JetStream acknowledged the events.
//!
//! Message: the `crm.events.v1.Event` envelope, protobuf-encoded (as
//! `Subscribe` streams it), with headers `Nats-Msg-Id`, `Crm-Event-Type`,
//! `Crm-Position`, `Content-Type: application/protobuf` and the event's
//! `traceparent`. Tenants are relayed one worker each under a lease (see
//! [`crate::leased`]); a tenant first seen is relayed from its oldest event kept.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use chrono::{DateTime, Utc};
use crm_proto::crm::events::v1::Event;
use prost::Message;
use sqlx::PgPool;
use tokio::sync::{OnceCell, broadcast, watch};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    config::RelaySettings,
    db::{begin_tenant, db_span, scan_due_ids},
    error::Error,
    leased::{self, LeasedWork, Limits},
    outbox::{ReadAhead, pruned_position, read_after, wait_for_tenant},
    retention::tell_pruned,
};

/// Events read (and published) per round; the next round is read while
/// this one is published and its acknowledgements come in.
const BATCH: i64 = 2048;
/// How often progress is recorded while events flow.
const RECORD_AFTER: Duration = Duration::from_millis(100);
/// How long a worker with nothing to publish waits for its tenant's next event.
const LINGER: Duration = Duration::from_secs(2);
/// How often every tenant with events is looked for (besides those announced by notifications).
const DISCOVER_EVERY: Duration = Duration::from_secs(30);
/// Tenants relayed at once by one replica.
const WORKERS: usize = 64;
/// Longest wait before NATS is tried again after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Tenants with a relay cursor, their events not all relayed, not leased:
/// per cursor, one probe of the queue and of the last position (migration
/// 0005), never a scan of either. Least recently relayed first (a released
/// lease ends when it was given up), so that with more due tenants than a
/// scan returns, none waits behind tenants relayed since.
const DUE_SQL: &str = "SELECT c.tenant_id FROM relay_cursors c
     WHERE (c.due_time IS NULL OR c.due_time <= $1) AND (c.lease_until IS NULL OR c.lease_until < $1)
       AND ((SELECT 1 FROM outbox_pending q WHERE q.tenant_id = c.tenant_id LIMIT 1) IS NOT NULL
            OR outbox_last_position(c.tenant_id) > c.position)
     ORDER BY c.lease_until NULLS FIRST LIMIT $2";

/// Every tenant with events, by a loose scan of the positions' and the
/// queue's primary keys (one probe per tenant).
const TENANTS_SQL: &str = "WITH RECURSIVE stamped(tenant_id) AS (
         (SELECT tenant_id FROM outbox_positions ORDER BY tenant_id, position LIMIT 1)
         UNION ALL
         SELECT (SELECT p.tenant_id FROM outbox_positions p WHERE p.tenant_id > s.tenant_id ORDER BY p.tenant_id, p.position LIMIT 1)
         FROM stamped s WHERE s.tenant_id IS NOT NULL
     ), queued(tenant_id) AS (
         (SELECT tenant_id FROM outbox_pending ORDER BY tenant_id, seq LIMIT 1)
         UNION ALL
         SELECT (SELECT q.tenant_id FROM outbox_pending q WHERE q.tenant_id > u.tenant_id ORDER BY q.tenant_id, q.seq LIMIT 1)
         FROM queued u WHERE u.tenant_id IS NOT NULL
     )
     SELECT tenant_id FROM stamped WHERE tenant_id IS NOT NULL AND $1::timestamptz IS NOT NULL
     UNION SELECT tenant_id FROM queued WHERE tenant_id IS NOT NULL
     LIMIT $2";

/// The relay of one service.
pub struct Relay {
    pool: PgPool,
    source: &'static str,
    settings: RelaySettings,
    jetstream: jetstream::Context,
    stream: OnceCell<()>,
    /// This process, as the lease owner.
    owner: Uuid,
    /// Tenants known to have a cursor.
    known: Mutex<HashSet<Uuid>>,
    /// Notifications not yet looked at for new tenants.
    announced: Mutex<broadcast::Receiver<Uuid>>,
    discovered: Mutex<Option<Instant>>,
    wakeups: broadcast::Sender<Uuid>,
    shutdown: watch::Receiver<bool>,
}

/// The JetStream stream of `source`'s events, e.g. `CRM_PROFILES`.
pub fn stream_name(source: &str) -> String {
    format!("CRM_{}", source.to_uppercase())
}

/// The subject of `event` from `source`: `crm.<source>.<tenant>.<type>`.
pub fn subject(source: &str, event: &Event) -> String {
    format!("crm.{source}.{}.{}", event.tenant, event.r#type)
}

impl Relay {
    /// Starts relaying `source`'s events if `settings` name a NATS server.
    /// Connecting goes on in the background, so a NATS outage at start-up
    /// delays the relay, not the service.
    pub async fn start(
        pool: PgPool,
        source: &'static str,
        settings: RelaySettings,
        wakeups: broadcast::Sender<Uuid>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let Some(url) = settings.nats_url.clone() else { return Ok(()) };
        let client = async_nats::ConnectOptions::new()
            .name(format!("crm-{source}-relay"))
            .retry_on_initial_connect()
            .connect(url.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("CRM_NATS_URL {url:?}: {e}"))?;
        let limits = Limits { total: WORKERS, per_tenant: 1, poll: Duration::from_millis(settings.relay_poll_ms) };
        let relay = Arc::new(Self {
            pool,
            source,
            settings,
            jetstream: jetstream::new(client),
            stream: OnceCell::new(),
            owner: Uuid::now_v7(),
            known: Mutex::new(HashSet::new()),
            announced: Mutex::new(wakeups.subscribe()),
            discovered: Mutex::new(None),
            wakeups: wakeups.clone(),
            shutdown: shutdown.clone(),
        });
        tracing::info!(stream = %stream_name(source), "relaying events to NATS JetStream");
        leased::spawn(relay, limits, &wakeups, shutdown);
        Ok(())
    }

    /// Creates the stream if it does not exist (an existing one is used as its operator configured it).
    async fn ensure_stream(&self) -> Result<(), Error> {
        self.stream
            .get_or_try_init(|| async {
                let config = stream::Config {
                    name: stream_name(self.source),
                    subjects: vec![format!("crm.{}.>", self.source)],
                    duplicate_window: Duration::from_secs(self.settings.nats_duplicate_window_secs),
                    storage: stream::StorageType::File,
                    ..Default::default()
                };
                self.jetstream.get_or_create_stream(config).await.map(drop).map_err(|e| nats_error("creating the stream", e))
            })
            .await
            .copied()
    }

    /// Gives every tenant with events a cursor: those announced since the last
    /// look, and every tenant now and then (a notification can be missed).
    async fn discover(&self) -> Result<(), Error> {
        let mut found: Vec<Uuid> = Vec::new();
        let mut rescan = false;
        {
            let mut announced = self.announced.lock().expect("not poisoned");
            loop {
                match announced.try_recv() {
                    Ok(tenant) => found.push(tenant),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => rescan = true,
                    Err(_) => break,
                }
            }
        }
        let due = self.discovered.lock().expect("not poisoned").is_none_or(|at| at.elapsed() >= DISCOVER_EVERY);
        if rescan || due {
            found.extend(scan_due_ids(&self.pool, "relay-scan", "outbox", TENANTS_SQL, Utc::now(), 100_000).await?);
            *self.discovered.lock().expect("not poisoned") = Some(Instant::now());
        }
        for tenant in found {
            if self.known.lock().expect("not poisoned").contains(&tenant) {
                continue;
            }
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            // From the oldest event kept: a tenant pruned before the relay
            // knew it has no gap to report.
            let start = pruned_position(&mut tx, tenant).await?;
            sqlx::query("INSERT INTO relay_cursors (tenant_id, position) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(tenant)
                .bind(start)
                .execute(&mut *tx)
                .instrument(db_span("INSERT", "relay_cursors"))
                .await?;
            tx.commit().await?;
            self.known.lock().expect("not poisoned").insert(tenant);
        }
        Ok(())
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.settings.relay_lease_ms as i64)
    }

    /// Records where `tenant` stands (and the failures that hold the next
    /// try back); `keep` renews the lease, else gives it up (its end set to
    /// now: when the tenant was last relayed, which orders the due scan).
    /// False when the lease was lost.
    async fn record(&self, tenant: Uuid, at: Standing, keep: bool) -> Result<bool, Error> {
        let now = Utc::now();
        let due = (at.failures > 0).then(|| now + chrono::Duration::from_std(backoff(at.failures)).unwrap_or(chrono::Duration::MAX));
        let lease_until = if keep { now + self.lease() } else { now };
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let updated = sqlx::query(
            "UPDATE relay_cursors SET position = greatest(position, $3), failures = $4, stored_through = $5, due_time = $6,
                 lease_until = $7, lease_owner = CASE WHEN $8 THEN lease_owner END
             WHERE tenant_id = $1 AND lease_owner = $2",
        )
        .bind(tenant)
        .bind(self.owner)
        .bind(at.position)
        .bind(at.failures)
        .bind(at.stored_through)
        .bind(due)
        .bind(lease_until)
        .bind(keep)
        .execute(&mut *tx)
        .instrument(db_span("UPDATE", "relay_cursors"))
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(updated == 1)
    }

    /// Moves `tenant`'s cursor past events pruned before they were relayed
    /// and tells the tenant, if this replica still holds the lease.
    async fn skip_pruned(&self, tenant: Uuid, after: i64, through: i64) -> Result<bool, Error> {
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let moved = sqlx::query("UPDATE relay_cursors SET position = greatest(position, $3) WHERE tenant_id = $1 AND lease_owner = $2")
            .bind(tenant)
            .bind(self.owner)
            .bind(through)
            .execute(&mut *tx)
            .instrument(db_span("UPDATE", "relay_cursors"))
            .await?
            .rows_affected();
        if moved == 1 {
            tell_pruned(&mut tx, tenant, &format!("jetstream/{}", stream_name(self.source)), after, through).await?;
        }
        tx.commit().await?;
        Ok(moved == 1)
    }

    /// Publishes `events` without waiting for their acknowledgements; stops
    /// at the first one NATS refuses (the rest is published again later).
    async fn send(&self, events: &[Event]) -> InFlight {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let mut message = PublishMessage::build()
                .payload(event.encode_to_vec().into())
                .message_id(&event.id)
                .header("Crm-Event-Type", event.r#type.as_str())
                .header("Crm-Position", event.position.to_string().as_str())
                .header("Content-Type", "application/protobuf");
            if !event.traceparent.is_empty() {
                message = message.header("traceparent", event.traceparent.as_str());
            }
            match self.jetstream.send_publish(subject(self.source, event), message).await {
                Ok(ack) => acks.push(Sent { position: event.position, id: event.id.clone(), ack }),
                Err(err) => {
                    tracing::warn!(error = %err, position = event.position, event.id = %event.id, "NATS refused a publish; it and the rest are published again later");
                    return InFlight { acks, all_sent: false };
                }
            }
        }
        InFlight { acks, all_sent: true }
    }

    /// After a failure, the event at the head of `tenant` is published alone
    /// and acknowledged before anything follows it, so that an event
    /// JetStream keeps refusing (too large for the stream, say) is not
    /// followed at every retry by events the stream already holds — past its
    /// duplicate window it would store them again. Those the last run saw
    /// acknowledged after the failed one (`stored_through`) are skipped.
    /// Where relaying resumes, or `None` when the head failed again.
    async fn probe(&self, tenant: Uuid, head: &Event, stored_through: i64) -> Option<i64> {
        let InFlight { mut acks, all_sent } = self.send(std::slice::from_ref(head)).await;
        let sent = acks.pop().filter(|_| all_sent)?;
        match sent.ack.await {
            Ok(ack) => {
                if !ack.duplicate && stored_through > head.position {
                    // Refused (or lost) the first time, stored now: after the
                    // events the last run got in behind it.
                    tracing::warn!(%tenant, position = head.position, event.id = %head.id, stored_through,
                        "an event JetStream refused earlier is stored after later ones; consumers see it out of Crm-Position order");
                }
                Some(head.position.max(stored_through))
            }
            Err(err) => {
                tracing::warn!(%tenant, error = %err, position = head.position, event.id = %head.id, "JetStream refused the head event again; the tenant waits for it");
                None
            }
        }
    }

    async fn relay_tenant(&self, tenant: Uuid) -> Result<(), Error> {
        let now = Utc::now();
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let claimed: Option<(i64, i32, i64)> = sqlx::query_as(
            "UPDATE relay_cursors SET lease_owner = $2, lease_until = $3
             WHERE tenant_id = $1 AND (due_time IS NULL OR due_time <= $4) AND (lease_until IS NULL OR lease_until < $4 OR lease_owner = $2)
             RETURNING position, failures, stored_through",
        )
        .bind(tenant)
        .bind(self.owner)
        .bind(now + self.lease())
        .bind(now)
        .fetch_optional(&mut *tx)
        .instrument(db_span("UPDATE", "relay_cursors"))
        .await?;
        tx.commit().await?;
        let Some((position, failures, stored_through)) = claimed else { return Ok(()) };
        // The failures stay counted until the probe below succeeds, so that a
        // run that ends before it (idle, shutting down) probes again next time.
        let mut at = Standing { position, failures: failures.max(0), stored_through };
        let failed = |at: Standing| Standing { failures: at.failures + 1, ..at };
        if let Err(err) = self.ensure_stream().await {
            self.record(tenant, failed(at), false).await?;
            return Err(err);
        }
        let mut probing = failures > 0 || stored_through > 0;
        let mut wakeups = self.wakeups.subscribe();
        let mut shutdown = self.shutdown.clone();
        let mut idle_since: Option<Instant> = None;
        let mut recorded = Instant::now();
        let renew_every = Duration::from_millis(self.settings.relay_lease_ms / 3);
        // Publishes of the last batch whose acknowledgements are awaited while
        // the next batch is read; and how far reading got.
        let mut in_flight: Option<InFlight> = None;
        let mut read_to = at.position;
        // The window after the one being published, read meanwhile (when the
        // run ends first, it is dropped, which aborts it).
        let mut next: Option<ReadAhead> = None;
        loop {
            let stopping = *shutdown.borrow();
            let limit = if probing { 1 } else { BATCH };
            let ahead = next.take();
            let (batch, settled) = tokio::join!(
                async {
                    match ahead {
                        _ if stopping => Ok(None),
                        Some(ahead) => ahead.batch().await.map(Some),
                        None => read_after(&self.pool, self.source, tenant, read_to, &[], limit).await.map(Some),
                    }
                },
                settle(in_flight.take(), at.position)
            );
            at.position = settled.position;
            if !settled.complete {
                at.stored_through = settled.stored_through;
                self.record(tenant, failed(at), false).await?;
                return Ok(());
            }
            let Some(batch) = batch? else {
                self.record(tenant, at, false).await?;
                return Ok(());
            };
            // Overtaken by the retention (NATS unreachable for longer than it
            // keeps events, or a backlog relayed slower than it ages): resume
            // after the gap, and tell the tenant — relayed too, so the
            // stream's consumers learn of it. Everything up to the gap is
            // gone, so the cursor may move there whatever the acks said.
            if let Some(pruned) = batch.pruned_after(read_to) {
                if !self.skip_pruned(tenant, read_to, pruned).await? {
                    return Ok(());
                }
                at.position = at.position.max(pruned);
            }
            if batch.events.is_empty() {
                let since = *idle_since.get_or_insert_with(Instant::now);
                let Some(left) = LINGER.checked_sub(since.elapsed()) else {
                    self.record(tenant, at, false).await?;
                    return Ok(());
                };
                if recorded.elapsed() >= renew_every {
                    if !self.record(tenant, at, true).await? {
                        return Ok(());
                    }
                    recorded = Instant::now();
                }
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => {}
                    _ = wait_for_tenant(&mut wakeups, tenant) => {}
                    _ = tokio::time::sleep(left.min(renew_every)) => {}
                }
                continue;
            }
            idle_since = None;
            if probing {
                let Some(resumed) = self.probe(tenant, &batch.events[0], at.stored_through).await else {
                    self.record(tenant, failed(at), false).await?;
                    return Ok(());
                };
                probing = false;
                at = Standing { position: resumed, failures: 0, stored_through: 0 };
                read_to = resumed;
                continue;
            }
            if batch.more {
                next = Some(ReadAhead::start(&self.pool, self.source, tenant, batch.scanned_to, Vec::new(), BATCH));
            }
            in_flight = Some(self.send(&batch.events).await);
            read_to = batch.scanned_to;
            // Recorded now and then, not per batch: a crash publishes again
            // what was not recorded, and JetStream drops those copies.
            if recorded.elapsed() >= RECORD_AFTER {
                if !self.record(tenant, at, true).await? {
                    return Ok(());
                }
                recorded = Instant::now();
            }
        }
    }
}

/// Where a tenant's relaying stands, as recorded in `relay_cursors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    /// The last position relayed in an unbroken run.
    position: i64,
    /// Failed runs in a row.
    failures: i32,
    /// After a failure: the events after the failed one that JetStream
    /// acknowledged, up to this position (0: none).
    stored_through: i64,
}

/// One publish awaiting its acknowledgement.
struct Sent {
    position: i64,
    id: String,
    ack: PublishAckFuture,
}

/// Publishes sent and not yet acknowledged, in order, and whether every event of the batch was sent.
struct InFlight {
    acks: Vec<Sent>,
    all_sent: bool,
}

/// What came of a batch's publishes.
#[derive(Debug, PartialEq, Eq)]
struct Settled {
    /// The last position acknowledged in an unbroken run.
    position: i64,
    /// Whether every event was sent and acknowledged.
    complete: bool,
    /// After a failure: the last of the unbroken run of acknowledgements right after it (0: none).
    stored_through: i64,
}

/// Waits for `in_flight`'s acknowledgements in order, from `position`. After
/// a failure the rest are still awaited, all at once (an acknowledgement's
/// timeout starts when it is awaited: one by one, a stalled server would cost
/// one timeout each), so that the events right after it that JetStream did
/// store are not published again behind it (see [`Relay::probe`]).
async fn settle(in_flight: Option<InFlight>, position: i64) -> Settled {
    let Some(InFlight { acks, all_sent }) = in_flight else { return Settled { position, complete: true, stored_through: 0 } };
    let mut settled = Settled { position, complete: all_sent, stored_through: 0 };
    let mut acks = acks.into_iter();
    for Sent { position, id, ack } in acks.by_ref() {
        match ack.await {
            Ok(_) => settled.position = position,
            Err(err) => {
                tracing::warn!(error = %err, position, event.id = %id, "JetStream did not acknowledge an event; publishing again from it");
                settled.complete = false;
                break;
            }
        }
    }
    let (positions, rest): (Vec<i64>, Vec<PublishAckFuture>) = acks.map(|sent| (sent.position, sent.ack)).unzip();
    let outcomes = futures::future::join_all(rest.into_iter().map(std::future::IntoFuture::into_future)).await;
    settled.stored_through =
        positions.iter().zip(&outcomes).take_while(|(_, outcome)| outcome.is_ok()).last().map_or(0, |(position, _)| *position);
    settled
}

impl LeasedWork for Relay {
    const NAME: &'static str = "nats-relay";

    async fn due(&self) -> Result<Vec<(Uuid, Uuid)>, Error> {
        self.discover().await?;
        Ok(due_tenants(&self.pool, Utc::now(), 1000).await?.into_iter().map(|tenant| (tenant, tenant)).collect())
    }

    async fn run(self: Arc<Self>, tenant: Uuid, _key: Uuid) -> Result<(), Error> {
        self.relay_tenant(tenant).await
    }
}

/// Up to `limit` tenants the relay has work for at `now` and nobody relays,
/// least recently relayed first: what every replica's scan starts workers for.
pub async fn due_tenants(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, Error> {
    scan_due_ids(pool, "relay-scan", "relay_cursors", DUE_SQL, now, limit).await
}

/// The wait after `failures` failures in a row: 200 ms doubled per failure, at most 30 s.
fn backoff(failures: i32) -> Duration {
    (Duration::from_millis(200) * 2u32.saturating_pow(failures.clamp(1, 16) as u32 - 1)).min(MAX_BACKOFF)
}

fn nats_error(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        reason: "NATS_UNAVAILABLE",
        message: format!("NATS JetStream, {what}: {err}"),
        retry_after: Duration::from_secs(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_service_tenant_and_type() {
        let event = Event { tenant: "t1".into(), r#type: "crm.profiles.v1.CustomerCreated".into(), ..Default::default() };
        assert_eq!(subject("profiles", &event), "crm.profiles.t1.crm.profiles.v1.CustomerCreated");
        assert_eq!(stream_name("profiles"), "CRM_PROFILES");
    }

    #[test]
    fn retries_back_off_to_half_a_minute() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}
