//! One worker per key (a webhook, a tenant's relay), across replicas: every
//! replica scans for due keys every poll interval and soon after any event
//! commits, and starts a worker for each due key it is not running already,
//! within a total and a per-tenant limit. Workers claim the key's lease
//! themselves (a row with an owner and an expiry), so that replicas never
//! work on one key at once; the scan only finds candidates.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{Error, cause_chain};

/// Least time between two scans started by notifications: events often
/// commit in bursts, and one scan serves the burst.
const SCAN_SPACING: Duration = Duration::from_millis(20);

/// Work done one leased key at a time.
pub trait LeasedWork: Send + Sync + 'static {
    /// The job's name in logs and spans.
    const NAME: &'static str;
    /// The keys with work due, as (tenant, key).
    fn due(&self) -> impl Future<Output = Result<Vec<(Uuid, Uuid)>, Error>> + Send;
    /// Claims `key`'s lease and works until there is nothing left (or the lease is lost).
    fn run(self: Arc<Self>, tenant: Uuid, key: Uuid) -> impl Future<Output = Result<(), Error>> + Send;
}

/// How many workers run at once, and how often to look for work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Workers on this replica.
    pub total: usize,
    /// Of those, for one tenant.
    pub per_tenant: usize,
    /// Scan interval when no event wakes the scan.
    pub poll: Duration,
}

struct Runner<W> {
    work: Arc<W>,
    limits: Limits,
    /// Keys with a worker here, with their tenant.
    running: Mutex<HashMap<Uuid, Uuid>>,
    slots: Arc<Semaphore>,
}

/// Starts scanning for `work`'s due keys; stops when `shutdown` turns true.
pub fn spawn<W: LeasedWork>(work: Arc<W>, limits: Limits, wakeups: &broadcast::Sender<Uuid>, shutdown: watch::Receiver<bool>) {
    let runner =
        Arc::new(Runner { work, limits, running: Mutex::new(HashMap::new()), slots: Arc::new(Semaphore::new(limits.total.max(1))) });
    tokio::spawn(runner.scan_loop(wakeups.subscribe(), shutdown));
}

impl<W: LeasedWork> Runner<W> {
    async fn scan_loop(self: Arc<Self>, mut wakeups: broadcast::Receiver<Uuid>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.scan().await {
                tracing::warn!(job = W::NAME, error = %cause_chain(&err), "scan failed; retrying");
            }
            let woken = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = tokio::time::sleep(self.limits.poll) => None,
                woken = wakeups.recv() => Some(woken.is_ok()),
            };
            match woken {
                Some(true) => {
                    tokio::time::sleep(SCAN_SPACING).await;
                    while wakeups.try_recv().is_ok() {}
                }
                // Lagged: scan now. (Closed cannot happen: the kit holds the sender.)
                Some(false) => wakeups = wakeups.resubscribe(),
                None => {}
            }
        }
    }

    async fn scan(self: &Arc<Self>) -> Result<(), Error> {
        for (tenant, key) in self.work.due().await? {
            {
                let running = self.running.lock().expect("not poisoned");
                if running.contains_key(&key) || running.values().filter(|t| **t == tenant).count() >= self.limits.per_tenant.max(1) {
                    continue;
                }
            }
            let Ok(slot) = self.slots.clone().try_acquire_owned() else { break };
            self.running.lock().expect("not poisoned").insert(key, tenant);
            let worker = Worker { runner: self.clone(), key, _slot: slot };
            let span = tracing::info_span!("leased.worker", job = W::NAME, %tenant, %key);
            tokio::spawn(
                async move {
                    if let Err(err) = worker.runner.work.clone().run(tenant, worker.key).await {
                        tracing::warn!(job = W::NAME, error = %cause_chain(&err), "worker stopped; its lease lapses and the work resumes later");
                    }
                    drop(worker);
                }
                .instrument(span),
            );
        }
        Ok(())
    }
}

/// A running worker's place: freed (key and slot) when it ends, however it ends.
struct Worker<W: LeasedWork> {
    runner: Arc<Runner<W>>,
    key: Uuid,
    _slot: OwnedSemaphorePermit,
}

impl<W: LeasedWork> Drop for Worker<W> {
    fn drop(&mut self) {
        self.runner.running.lock().expect("not poisoned").remove(&self.key);
    }
}
