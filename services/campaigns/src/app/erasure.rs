//! What campaigns does with profiles' stream: when profiles erases a
//! customer (CustomerErased), what campaigns holds of their personal data
//! goes too; when it merges customers (CustomersMerged), their devices,
//! unsubscribes and open complaints follow the survivor, and come back on
//! unmerge (CustomersUnmerged) — each once, even with replicas applying the
//! same event, because the stream position is claimed in the same transaction.

use chrono::{DateTime, Utc};
use crm_kit::{Error, customer_changes::CustomerChange, follow};
use uuid::Uuid;

use super::{
    App,
    journey_runs::{self, Firing},
};
use crate::{
    domain::journey_run::CustomerEvent,
    store::{
        customer_merges, erasure, loyalty,
        streams::{PROFILES, TICKETS},
    },
};

impl App {
    /// Applies the event at `position` of profiles' stream, which happened
    /// at `time`: its change to customers, and what it means to journeys;
    /// the rows it touched (deliveries erased, rows moved, runs started), 0
    /// for an event applied before.
    pub async fn apply_profiles_event(
        &self,
        tenant: Uuid,
        position: i64,
        time: DateTime<Utc>,
        change: &CustomerChange,
        events: &[CustomerEvent],
    ) -> Result<u64, Error> {
        let mut tx = self.begin(tenant).await?;
        if !follow::claim(&mut tx, tenant, PROFILES, position).await? {
            tx.commit().await?;
            return Ok(0);
        }
        let (key, label) = (format!("{PROFILES}/{position}"), format!("{PROFILES} event {position}"));
        let firing = Firing { key: &key, label: &label };
        let started = journey_runs::apply_events(&mut tx, tenant, events, time, firing, Utc::now()).await?;
        let touched = match change {
            CustomerChange::Erased(customer) => erasure::erase(&mut tx, tenant, *customer).await?,
            CustomerChange::Merged { merge, survivor, merged } => {
                customer_merges::repoint(&mut tx, tenant, *merge, *survivor, merged).await?
                    + loyalty::move_for_merge(&mut tx, tenant, *merge, *survivor, merged, Utc::now()).await?
            }
            CustomerChange::Unmerged { merge } => {
                customer_merges::restore(&mut tx, tenant, *merge).await?
                    + loyalty::move_back_for_unmerge(&mut tx, tenant, *merge, Utc::now()).await?
            }
            CustomerChange::Other => 0,
        } + started;
        tx.commit().await?;
        Ok(touched)
    }

    /// Marks every sending tenant (one that follows tickets' stream) as
    /// following profiles' too, those from before this existed included.
    pub async fn follow_profiles_for_every_sender(&self) -> Result<(), Error> {
        for tenant in follow::followed(&self.pool, TICKETS).await? {
            let mut tx = self.begin(tenant).await?;
            follow::follow_tenant(&mut tx, tenant, PROFILES).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
