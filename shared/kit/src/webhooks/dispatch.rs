//! Delivery: every replica runs a dispatcher, which finds webhooks with
//! something to deliver and runs one worker per webhook, holding its lease.
//! A worker reads the events after the webhook's cursor in position order,
//! POSTs them one at a time, and records its progress and every attempt in
//! batches; a failure ends its run with the retry time stored, so a slow or
//! dead endpoint holds one worker and delays no other webhook. Replicas never
//! deliver the same webhook at once (the lease), and a worker whose webhook
//! was replayed, changed or deleted meanwhile stops at its next record (the
//! cursor's generation). A crash loses at most the progress not yet recorded:
//! those events go out again, with the same `webhook-id`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use crm_proto::crm::{events::v1::Event, webhooks::v1::WebhookDisabled};
use reqwest::Client;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;
use uuid::Uuid;

use super::{
    WEBHOOK, envelope, like_pattern,
    policy::{RetryPolicy, Verdict, verdict},
    signing,
    store::{self, AttemptRow, Lease, Progress},
};
use crate::{
    config::WebhookSettings,
    db::{begin_tenant, scan_due},
    error::{Error, cause_chain},
    leased::{self, LeasedWork, Limits},
    outbox::{ReadAhead, read_after, wait_for_tenant},
    sealed::SecretCipher,
};

/// Events read per round trip.
const BATCH: i64 = 256;
/// Attempts recorded together at most (a crash repeats at most these).
const RECORD_EVERY: usize = 256;
/// Longest a delivered event goes unrecorded.
const RECORD_AFTER: Duration = Duration::from_millis(200);
/// How long a worker with nothing to deliver waits for its tenant's next
/// event before it gives its lease up.
const LINGER: Duration = Duration::from_secs(2);
/// Webhooks looked at per scan.
const SCAN_LIMIT: i64 = 1000;
/// Answer bytes read before a connection is given up rather than drained.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the dispatcher of one service needs.
pub struct Dispatcher {
    pool: PgPool,
    source: &'static str,
    settings: WebhookSettings,
    allow_private: bool,
    cipher: SecretCipher,
    /// This process, as the lease owner.
    owner: Uuid,
    wakeups: broadcast::Sender<Uuid>,
    shutdown: watch::Receiver<bool>,
}

impl Dispatcher {
    /// Starts the dispatcher of `source`'s webhooks; it stops when `shutdown` turns true.
    pub fn spawn(
        pool: PgPool,
        source: &'static str,
        settings: WebhookSettings,
        allow_private: bool,
        cipher: SecretCipher,
        wakeups: broadcast::Sender<Uuid>,
        shutdown: watch::Receiver<bool>,
    ) {
        let limits = Limits {
            total: settings.webhook_concurrency,
            per_tenant: settings.webhook_tenant_concurrency,
            poll: Duration::from_millis(settings.webhook_poll_ms),
        };
        let dispatcher = Arc::new(Self {
            pool,
            source,
            settings,
            allow_private,
            cipher,
            owner: Uuid::now_v7(),
            wakeups: wakeups.clone(),
            shutdown: shutdown.clone(),
        });
        leased::spawn(dispatcher, limits, &wakeups, shutdown);
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(self.settings.webhook_retry_base_ms),
            max_delay: Duration::from_millis(self.settings.webhook_retry_max_ms),
            disable_after: Duration::from_secs(self.settings.webhook_disable_after_secs),
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.settings.webhook_lease_ms)
    }
}

impl LeasedWork for Dispatcher {
    const NAME: &'static str = "webhooks";

    async fn due(&self) -> Result<Vec<(Uuid, Uuid)>, Error> {
        scan_due(&self.pool, "webhook-scan", "webhook_cursors", store::DUE_SQL, Utc::now(), SCAN_LIMIT).await
    }

    async fn run(self: Arc<Self>, tenant: Uuid, webhook: Uuid) -> Result<(), Error> {
        Worker { dispatcher: self, tenant, webhook }
            .deliver()
            .instrument(tracing::info_span!("webhook.worker", webhook = %WEBHOOK.name(webhook)))
            .await
    }
}

/// Delivers one leased webhook until it has nothing to do, fails, or loses its lease.
struct Worker {
    dispatcher: Arc<Dispatcher>,
    tenant: Uuid,
    webhook: Uuid,
}

/// A worker's state between records.
struct Run {
    lease: Lease,
    generation: i64,
    keys: Vec<Vec<u8>>,
    patterns: Vec<String>,
    client: Result<Client, String>,
    progress: Progress,
    attempts: Vec<AttemptRow>,
    recorded: Instant,
    lease_renewed: Instant,
}

/// How a run ends.
enum End {
    /// Nothing more to do for now, or shutting down: give the lease up.
    Release,
    /// The head event failed: retry at the progress's due time.
    Retry,
    /// Disable the webhook for this reason.
    Disable(String),
}

impl Worker {
    async fn deliver(&self) -> Result<(), Error> {
        let d = &self.dispatcher;
        let now = Utc::now();
        let mut tx = begin_tenant(&d.pool, self.tenant).await?;
        let lease = store::claim(&mut tx, self.tenant, self.webhook, d.owner, chrono_duration(d.lease()), now).await?;
        tx.commit().await?;
        let Some(lease) = lease else { return Ok(()) };
        let mut run = self.start(lease, now).await;
        // `start` looked the target's host up (up to a few seconds): the lease
        // is renewed before the first request, which then has a whole lease.
        let ended = match self.record(&mut run).await {
            Ok(false) => return Ok(()),
            Ok(true) => self.deliver_events(&mut run).await,
            Err(err) => Err(err),
        };
        match ended {
            Ok(end) => self.finish(run, end).await,
            // The run failed (the database, mostly): record what was delivered
            // and give the lease up if it can, rather than hold the webhook
            // until the lease runs out (and send those events again); the next
            // run waits the first retry delay, so a lasting failure is not
            // retried at every poll.
            Err(err) => {
                let delay = chrono_duration(self.dispatcher.policy().delay(1));
                run.progress.due_time = Some(Utc::now() + delay);
                if let Err(also) = self.finish(run, End::Retry).await {
                    tracing::warn!(error = %also, "webhook run not recorded; its lease runs out instead");
                }
                Err(err)
            }
        }
    }

    /// The run's state; a secret that cannot be opened or a target that
    /// cannot be reached fails each attempt (recorded, retried, eventually
    /// disabling the webhook) instead of the run.
    async fn start(&self, lease: Lease, now: DateTime<Utc>) -> Run {
        let d = &self.dispatcher;
        let (keys, client) = match self.keys(&lease, now) {
            Err(why) => (Vec::new(), Err(why)),
            Ok(keys) => {
                let client = match crate::egress::parse_url(&lease.target_uri, d.allow_private) {
                    Ok(url) => crate::egress::pinned_client(&url, d.allow_private, Duration::from_millis(d.settings.webhook_timeout_ms))
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (keys, client)
            }
        };
        let progress = Progress {
            position: lease.position,
            failures: lease.failures,
            failing_since: lease.failing_since,
            due_time: None,
            lease_until: Some(now + chrono_duration(d.lease())),
        };
        Run {
            generation: lease.generation,
            patterns: lease.event_types.iter().map(|t| like_pattern(t)).collect(),
            keys,
            client,
            progress,
            attempts: Vec::new(),
            recorded: Instant::now(),
            lease_renewed: Instant::now(),
            lease,
        }
    }

    /// The signing keys: the secret, and the previous one while it is still valid.
    fn keys(&self, lease: &Lease, now: DateTime<Utc>) -> Result<Vec<Vec<u8>>, String> {
        let mut keys = Vec::new();
        for (sealed, valid) in
            [(Some(&lease.secret), true), (lease.previous_secret.as_ref(), lease.previous_secret_expire_time.is_some_and(|t| t > now))]
        {
            if let (Some(sealed), true) = (sealed, valid) {
                let text = self.dispatcher.cipher.open(self.tenant, self.webhook, sealed).map_err(|err| {
                    tracing::warn!(error = %err, "a webhook's signing secret cannot be opened");
                    "the signing secret cannot be opened with this service's key".to_owned()
                })?;
                keys.push(signing::secret_key(&text).ok_or("a stored signing secret is not whsec_")?);
            }
        }
        Ok(keys)
    }

    async fn deliver_events(&self, run: &mut Run) -> Result<End, Error> {
        let d = &self.dispatcher;
        let mut wakeups = d.wakeups.subscribe();
        let mut shutdown = d.shutdown.clone();
        let mut idle_since: Option<Instant> = None;
        // The next window, read while this one's events are POSTed: it starts
        // where this window ends, which is where the cursor stands once all of
        // them are delivered (if one is not, the run ends and it is dropped).
        let mut next: Option<ReadAhead> = None;
        loop {
            if *shutdown.borrow() {
                return Ok(End::Release);
            }
            let batch = match next.take() {
                Some(read_ahead) => read_ahead.batch().await?,
                None => read_after(&d.pool, d.source, self.tenant, run.progress.position, &run.patterns, BATCH).await?,
            };
            // Overtaken by the retention (disabled for longer than it keeps
            // events, or a backlog delivered slower than it ages): resume
            // after the gap, and tell the tenant.
            if let Some(pruned) = batch.pruned_after(run.progress.position) {
                let before = run.progress.position;
                run.progress.position = pruned;
                match self.record_telling(run, Some((before, pruned))).await {
                    Ok(true) => {}
                    Ok(false) => return Ok(End::Release),
                    // Not told: the run's end must not record the move either.
                    Err(err) => {
                        run.progress.position = before;
                        return Err(err);
                    }
                }
            }
            if batch.events.is_empty() {
                let skipped = batch.scanned_to > run.progress.position;
                run.progress.position = run.progress.position.max(batch.scanned_to);
                if (skipped || !run.attempts.is_empty() || run.lease_renewed.elapsed() > d.lease() / 3) && !self.record(run).await? {
                    return Ok(End::Release);
                }
                if batch.more {
                    // A window of events this webhook does not take: look further at once.
                    continue;
                }
                let since = *idle_since.get_or_insert_with(Instant::now);
                let Some(left) = LINGER.checked_sub(since.elapsed()) else { return Ok(End::Release) };
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return Ok(End::Release),
                    _ = wait_for_tenant(&mut wakeups, self.tenant) => {}
                    _ = tokio::time::sleep(left) => {}
                }
                continue;
            }
            idle_since = None;
            if batch.more {
                next = Some(ReadAhead::start(&d.pool, d.source, self.tenant, batch.scanned_to, run.patterns.clone(), BATCH));
            }
            for event in &batch.events {
                if let Some(end) = self.attempt(run, event).await? {
                    return Ok(end);
                }
                if (run.attempts.len() >= RECORD_EVERY || run.recorded.elapsed() >= RECORD_AFTER) && !self.record(run).await? {
                    return Ok(End::Release);
                }
            }
            // Every event up to the window's end was delivered or is not this webhook's.
            run.progress.position = run.progress.position.max(batch.scanned_to);
        }
    }

    /// POSTs `event` once; `Some` when the run ends with it.
    async fn attempt(&self, run: &mut Run, event: &Event) -> Result<Option<End>, Error> {
        let d = &self.dispatcher;
        let started = Utc::now();
        let clock = Instant::now();
        let event_id: Uuid = event.id.parse().map_err(Error::internal)?;
        let (status, error) = match &run.client {
            Ok(client) => post(client, &run.lease.target_uri, &run.keys, event, d.source).await?,
            Err(setup) => (None, setup.clone()),
        };
        let failures = if verdict(status) == Verdict::Delivered { 0 } else { run.progress.failures + 1 };
        let mut row = AttemptRow {
            id: Uuid::now_v7(),
            event_id,
            event_type: event.r#type.clone(),
            position: event.position,
            attempt: run.progress.failures + 1,
            succeeded: verdict(status) == Verdict::Delivered,
            response_code: status.map_or(0, i32::from),
            error,
            latency_us: clock.elapsed().as_micros() as i64,
            attempt_time: started,
            next_attempt_time: None,
        };
        let end = match verdict(status) {
            Verdict::Delivered => {
                run.progress.position = event.position;
                run.progress.failing_since = None;
                None
            }
            Verdict::Gone => Some(End::Disable("the endpoint answered 410 Gone".to_owned())),
            Verdict::Failed => {
                let since = *run.progress.failing_since.get_or_insert(started);
                let policy = d.policy();
                if policy.gives_up(since, started) {
                    Some(End::Disable(format!("deliveries have failed since {}", since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))))
                } else {
                    let due = started + chrono_duration(policy.delay(failures as u32));
                    row.next_attempt_time = Some(due);
                    run.progress.due_time = Some(due);
                    Some(End::Retry)
                }
            }
        };
        run.progress.failures = failures;
        run.attempts.push(row);
        Ok(end)
    }

    /// Records progress and attempts, renewing the lease; false when the lease is lost.
    async fn record(&self, run: &mut Run) -> Result<bool, Error> {
        self.record_telling(run, None).await
    }

    /// [`Self::record`], and with `pruned` = (after, through), tells the
    /// tenant that the progress skipped events the retention deleted.
    async fn record_telling(&self, run: &mut Run, pruned: Option<(i64, i64)>) -> Result<bool, Error> {
        let d = &self.dispatcher;
        run.progress.lease_until = Some(Utc::now() + chrono_duration(d.lease()));
        let mut tx = begin_tenant(&d.pool, self.tenant).await?;
        if !store::record_progress(&mut tx, self.tenant, self.webhook, d.owner, run.generation, &run.progress).await? {
            return Ok(false);
        }
        store::insert_attempts(&mut tx, self.tenant, self.webhook, &run.attempts).await?;
        if let Some((after, through)) = pruned {
            crate::retention::tell_pruned(&mut tx, self.tenant, &WEBHOOK.name(self.webhook), after, through).await?;
        }
        tx.commit().await?;
        run.attempts.clear();
        run.recorded = Instant::now();
        run.lease_renewed = Instant::now();
        Ok(true)
    }

    /// Records the run's end: the lease given up, and the webhook disabled (with an event) when it must be.
    async fn finish(&self, mut run: Run, end: End) -> Result<(), Error> {
        let d = &self.dispatcher;
        run.progress.lease_until = None;
        if !matches!(end, End::Retry) {
            run.progress.due_time = None;
        }
        let now = Utc::now();
        let mut tx = begin_tenant(&d.pool, self.tenant).await?;
        if !store::record_progress(&mut tx, self.tenant, self.webhook, d.owner, run.generation, &run.progress).await? {
            return Ok(());
        }
        store::insert_attempts(&mut tx, self.tenant, self.webhook, &run.attempts).await?;
        if let End::Disable(reason) = &end
            && store::disable(&mut tx, self.tenant, self.webhook, reason, now).await?
        {
            let name = WEBHOOK.name(self.webhook);
            tracing::warn!(webhook = %name, reason = %reason, "webhook disabled");
            let disabled = WebhookDisabled { webhook: name.clone(), target_uri: run.lease.target_uri.clone(), reason: reason.clone() };
            crate::outbox::append(&mut tx, self.tenant, &name, &disabled).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// POSTs `event` to `target`, signed with every key: the status (`None`
/// when there was no answer) and, for a failure, why.
async fn post(client: &Client, target: &str, keys: &[Vec<u8>], event: &Event, source: &str) -> Result<(Option<u16>, String), Error> {
    let body = envelope::json_body(event)?;
    let timestamp = Utc::now().timestamp();
    let signature = signing::signature_header(keys.iter().map(Vec::as_slice), &event.id, timestamp, &body);
    let span = tracing::info_span!(
        "webhook.deliver",
        otel.kind = "client",
        http.request.method = "POST",
        event.r#type = %event.r#type,
        http.response.status_code = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, &event.traceparent);
    let request = client
        .post(target)
        .header("content-type", "application/json")
        .header("user-agent", concat!("crm-webhooks/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("crm-event-source", source)
        .header("crm-event-type", &event.r#type);
    let traceparent = span.in_scope(crate::telemetry::current_traceparent);
    let request = if traceparent.is_empty() { request } else { request.header("traceparent", traceparent) }.body(body);
    let answer = request.send().instrument(span.clone()).await;
    Ok(match answer {
        Ok(mut response) => {
            let status = response.status().as_u16();
            span.record("http.response.status_code", status);
            // A short answer is read so that the connection can be reused; a
            // long one is dropped unread (it may hold anything, and is never kept).
            let mut left = MAX_ANSWER_BYTES;
            while let Ok(Some(chunk)) = response.chunk().await {
                let Some(rest) = left.checked_sub(chunk.len()) else { break };
                left = rest;
            }
            let error = if (200..300).contains(&status) { String::new() } else { format!("HTTP {status}") };
            (Some(status), error)
        }
        Err(err) if err.is_timeout() => (None, "timed out".to_owned()),
        Err(err) => (None, crate::mask::text(&cause_chain(&err))),
    })
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
