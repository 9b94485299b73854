//! Following another service's event stream, tenant by tenant, from a
//! position the follower stores: at least once from the source, exactly once
//! in effect, because [`Apply::apply`] stores each event's position
//! ([`advance`]) in the transaction that applies it, and replaying an
//! applied event must change nothing.
//!
//! Which tenants are followed is kept in the follower's `stream_positions`
//! table — a row per (tenant, source) means "follow this tenant's stream",
//! marked with [`follow_tenant`] when a tenant starts to matter (campaigns:
//! its first provider; tickets: its first ticket). The follower's own
//! migrations create that table, with its tenant policy and the read-only
//! `consumer_scan` policy through which [`spawn`] lists the tenants:
//!
//! ```sql
//! CREATE TABLE stream_positions (tenant_id uuid, source text, position bigint NOT NULL DEFAULT 0,
//!     update_time timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, source));
//! CREATE POLICY consumer_scan ON stream_positions FOR SELECT USING (current_setting('crm.scope', true) = 'consumer-scan');
//! ```

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use crm_proto::crm::events::v1::{Event, SubscribeRequest, event_service_client::EventServiceClient};
use futures::{FutureExt, StreamExt};
use prost::Message;
use sqlx::PgPool;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    Error,
    auth::ServiceTokens,
    db::{TenantTx, begin_tenant, db_span},
};

/// How often newly followed tenants are looked for.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The most events handed to [`Apply::apply_batch`] at once.
pub const MAX_BATCH: usize = 500;

/// What a follower does with each event of a tenant's stream.
pub trait Apply: Clone + Send + Sync + 'static {
    /// Applies `event` of `tenant` and [`advance`]s the stored position to
    /// its position, in one transaction; an event applied before must change nothing.
    fn apply(&self, tenant: Uuid, event: Event) -> impl Future<Output = Result<(), Error>> + Send;

    /// Applies `events` (in stream order, those that had arrived together,
    /// at most [`MAX_BATCH`]): by default one by one; a follower that can
    /// apply many in one transaction overrides it (then [`lock_position`]
    /// tells which were applied before).
    fn apply_batch(&self, tenant: Uuid, events: Vec<Event>) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            for event in events {
                self.apply(tenant, event).await?;
            }
            Ok(())
        }
    }
}

/// The stream a follower reads.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its name in `stream_positions`, e.g. "profiles".
    pub name: &'static str,
    /// The URL of the service serving it.
    pub url: String,
    /// The event types to receive.
    pub types: Vec<String>,
    /// Where the events are read.
    pub transport: Transport,
}

/// Where a follower reads a source's events. Either way each event is
/// applied through the same [`Apply`], whose stored positions make a second
/// delivery change nothing — switching transports repeats nothing in effect.
#[derive(Debug, Clone)]
pub enum Transport {
    /// The source's `crm.events.v1.EventService/Subscribe` stream.
    Subscribe,
    /// The source's JetStream stream (`CRM_<SOURCE>`, filled by its relay,
    /// see [`crate::relay`]), through a durable consumer per tenant named
    /// `<consumer>-<tenant>`, so that JetStream keeps each tenant's progress.
    JetStream {
        /// The NATS connection (boxed: it is large, and cloned per follower).
        context: Box<async_nats::jetstream::Context>,
        /// The following service's name (e.g. "campaigns").
        consumer: &'static str,
    },
}

/// From now on, `tenant`'s stream from `source` is followed (no-op if it is).
pub async fn follow_tenant(tx: &mut TenantTx, tenant: Uuid, source: &str) -> Result<(), Error> {
    sqlx::query("INSERT INTO stream_positions (tenant_id, source) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(source)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "stream_positions"))
        .await?;
    Ok(())
}

/// The tenants whose `source` stream is followed, across tenants (the `consumer_scan` policy).
pub async fn followed(pool: &PgPool, source: &str) -> Result<Vec<Uuid>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'consumer-scan', true)").await?;
    let tenants = sqlx::query_scalar("SELECT tenant_id FROM stream_positions WHERE source = $1")
        .bind(source)
        .fetch_all(&mut *tx)
        .instrument(db_span("SELECT", "stream_positions"))
        .await?;
    tx.commit().await?;
    Ok(tenants)
}

/// The position `tenant`'s `source` stream was applied up to.
pub async fn position(tx: &mut TenantTx, tenant: Uuid, source: &str) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT position FROM stream_positions WHERE tenant_id = $1 AND source = $2")
        .bind(tenant)
        .bind(source)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "stream_positions"))
        .await?
        .unwrap_or(0))
}

/// Records that `tenant`'s `source` stream is applied up to `position` (never backwards).
pub async fn advance(tx: &mut TenantTx, tenant: Uuid, source: &str, position: i64) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO stream_positions (tenant_id, source, position) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, source) DO UPDATE SET position = greatest(stream_positions.position, EXCLUDED.position), update_time = now()",
    )
    .bind(tenant)
    .bind(source)
    .bind(position)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "stream_positions"))
    .await?;
    Ok(())
}

/// Locks `tenant`'s `source` position until the transaction ends and
/// returns it: a batch applies only the events after it, then [`advance`]s
/// it — a second replica applying the same batch waits here, then finds
/// them applied.
pub async fn lock_position(tx: &mut TenantTx, tenant: Uuid, source: &str) -> Result<i64, Error> {
    follow_tenant(tx, tenant, source).await?;
    Ok(sqlx::query_scalar("SELECT position FROM stream_positions WHERE tenant_id = $1 AND source = $2 FOR UPDATE")
        .bind(tenant)
        .bind(source)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "stream_positions"))
        .await?)
}

/// Moves `tenant`'s `source` position to `position` if it is behind it, and
/// says whether it did: the gate of an event whose effect must happen once
/// even when two replicas apply it (the second waits for the first's row
/// lock, then finds the position moved and gets `false`).
pub async fn claim(tx: &mut TenantTx, tenant: Uuid, source: &str, position: i64) -> Result<bool, Error> {
    let moved: Option<i64> = sqlx::query_scalar(
        "INSERT INTO stream_positions (tenant_id, source, position) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, source) DO UPDATE SET position = EXCLUDED.position, update_time = now()
         WHERE stream_positions.position < EXCLUDED.position
         RETURNING position",
    )
    .bind(tenant)
    .bind(source)
    .bind(position)
    .fetch_optional(&mut **tx)
    .instrument(db_span("INSERT", "stream_positions"))
    .await?;
    Ok(moved.is_some())
}

/// Follows `source` for every followed tenant (one stream each, read with
/// the service's own token from the stored position) until `shutdown` turns
/// true. A broken stream is opened again from the stored position; a newly
/// followed tenant is picked up at the next look.
pub fn spawn<A: Apply>(
    pool: PgPool,
    source: Source,
    tokens: ServiceTokens,
    apply: A,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(source.url.clone())?.connect_timeout(Duration::from_secs(2)).connect_lazy();
    let following: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            match followed(&pool, source.name).await {
                Ok(tenants) => {
                    for tenant in tenants {
                        if following.lock().expect("not poisoned").insert(tenant) {
                            let follower = Follower {
                                pool: pool.clone(),
                                source: source.clone(),
                                channel: channel.clone(),
                                tokens: tokens.clone(),
                                apply: apply.clone(),
                            };
                            tokio::spawn(follower.run(tenant, shutdown.clone()));
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(source = source.name, error = %crate::error::cause_chain(&err), "could not list the tenants to follow")
                }
            }
            tokio::select! {
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    });
    Ok(())
}

/// One tenant's stream.
struct Follower<A> {
    pool: PgPool,
    source: Source,
    channel: Channel,
    tokens: ServiceTokens,
    apply: A,
}

impl<A: Apply> Follower<A> {
    /// Follows the tenant's stream until shutdown, reopening it after any failure.
    async fn run(self, tenant: Uuid, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let result = tokio::select! {
                result = self.read(tenant) => result,
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return } else { continue },
            };
            if let Err(err) = result {
                tracing::info!(source = self.source.name, tenant = %tenant, error = %err, "an event stream broke; reopening it");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// Reads the stream from the stored position and applies every event; returns when it ends.
    async fn subscribe(
        &self,
        tenant: Uuid,
        after: i64,
    ) -> anyhow::Result<Result<tonic::Response<tonic::Streaming<crm_proto::crm::events::v1::SubscribeResponse>>, tonic::Status>> {
        let mut request = tonic::Request::new(SubscribeRequest { after_position: after, types: self.source.types.clone() });
        request.metadata_mut().insert("authorization", format!("Bearer {}", self.tokens.mint(tenant)?).parse()?);
        Ok(EventServiceClient::new(self.channel.clone()).subscribe(request).await)
    }

    async fn read(&self, tenant: Uuid) -> anyhow::Result<()> {
        match &self.source.transport {
            Transport::Subscribe => self.read_subscribe(tenant).await,
            Transport::JetStream { context, consumer } => self.read_jetstream(tenant, context, consumer).await,
        }
    }

    /// Reads `tenant`'s events from the source's JetStream stream, from where
    /// this consumer acknowledged last (the stream's start, the first time:
    /// [`Apply`] skips what it applied before), and acknowledges each batch
    /// once it is applied.
    async fn read_jetstream(&self, tenant: Uuid, context: &async_nats::jetstream::Context, consumer: &str) -> anyhow::Result<()> {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
        let stream = context.get_stream(crate::relay::stream_name(self.source.name)).await?;
        let durable = format!("{consumer}-{tenant}");
        let config = pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: format!("crm.{}.{tenant}.>", self.source.name),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: (MAX_BATCH * 2) as i64,
            ..Default::default()
        };
        let mut messages = stream.get_or_create_consumer(&durable, config).await?.messages().await?;
        // As Subscribe reads `types`: exact names, or prefixes ending in `*`.
        let wanted = |event_type: &str| {
            self.source.types.is_empty()
                || self.source.types.iter().any(|t| t.strip_suffix('*').map_or(t == event_type, |prefix| event_type.starts_with(prefix)))
        };
        let read = async {
            while let Some(first) = messages.next().await {
                let mut batch = vec![first?];
                while batch.len() < MAX_BATCH {
                    match messages.next().now_or_never() {
                        Some(Some(message)) => batch.push(message?),
                        _ => break,
                    }
                }
                let mut events = Vec::with_capacity(batch.len());
                for message in &batch {
                    let event = Event::decode(message.payload.clone())?;
                    if wanted(&event.r#type) {
                        events.push(event);
                    }
                }
                if !events.is_empty() {
                    self.apply.apply_batch(tenant, events).await?;
                }
                for message in &batch {
                    message.ack().await.map_err(|e| anyhow::anyhow!("acknowledging to JetStream: {e}"))?;
                }
            }
            anyhow::Ok(())
        };
        let result = read.await;
        if result.is_err() {
            // Events received but not applied would come back only after the
            // ack wait, behind later ones — which, applied first, would move
            // the stored position past them (and Apply would then skip them).
            // Dropping the consumer makes the next read start over from the
            // stream's beginning, in order; Apply skips what it applied.
            if let Err(err) = stream.delete_consumer(&durable).await {
                tracing::warn!(error = %err, consumer = %durable, "could not drop the JetStream consumer after a failed read");
            }
        }
        result
    }

    async fn read_subscribe(&self, tenant: Uuid) -> anyhow::Result<()> {
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let after = position(&mut tx, tenant, self.source.name).await?;
        tx.commit().await?;
        let mut events = match self.subscribe(tenant, after).await? {
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                // Events after our position were pruned by the producer's
                // retention before we read them (we were stopped for longer
                // than it keeps events). They are gone: say so loudly and
                // carry on from the oldest event kept, rather than stop for good.
                tracing::error!(
                    source = self.source.name, tenant = %tenant, after, error = %status.message(),
                    "events were pruned before this consumer read them; resuming from the oldest event kept"
                );
                self.subscribe(tenant, 0).await??
            }
            result => result?,
        }
        .into_inner();
        while let Some(message) = events.next().await {
            // With the first event, whatever else has already arrived: a backlog is applied in batches.
            let mut batch: Vec<Event> = message?.event.into_iter().collect();
            let mut ended = false;
            while batch.len() < MAX_BATCH {
                match events.next().now_or_never() {
                    Some(Some(message)) => batch.extend(message?.event),
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            if !batch.is_empty() {
                self.apply.apply_batch(tenant, batch).await?;
            }
            if ended {
                break;
            }
        }
        Ok(())
    }
}
