//! What campaigns does with profiles' stream: when profiles erases a
//! customer (CustomerErased), what campaigns holds of their personal data
//! goes too; when it merges customers (CustomersMerged), their devices,
//! unsubscribes and open complaints follow the survivor, and come back on
//! unmerge (CustomersUnmerged); and customers start the journeys profiles'
//! events trigger — each once, even with replicas applying the same events,
//! because the stream position is locked, read and moved in the transaction
//! that applies them.

use chrono::{DateTime, Utc};
use crm_kit::{Error, customer_changes::CustomerChange, follow};
use uuid::Uuid;

use super::{
    App,
    attribution::{self, PURCHASE},
    journey_runs::{self, Fired},
    loyalty::earn_in,
};
use crate::{
    domain::{journey_run::CustomerEvent, loyalty_program::Purchase},
    store::{
        conversions::Goal,
        customer_merges, erasure, loyalty,
        streams::{PROFILES, TICKETS},
    },
};

/// An event of profiles' stream as campaigns applies it.
#[derive(Debug, Clone)]
pub struct ProfilesEvent {
    pub position: i64,
    /// When it happened.
    pub time: DateTime<Utc>,
    pub change: CustomerChange,
    /// What it means to journeys.
    pub customer_events: Vec<CustomerEvent>,
    /// The purchase it records, which the loyalty programme earns on.
    pub purchase: Option<Purchase>,
}

impl App {
    /// Applies `events` of profiles' stream (in order) in one transaction:
    /// each one's change to customers, and what they mean to journeys; those
    /// at or before the stored position were applied before and change
    /// nothing. The rows touched (deliveries erased, rows moved, runs started).
    pub async fn apply_profiles_events(&self, tenant: Uuid, events: &[ProfilesEvent]) -> Result<u64, Error> {
        let mut tx = self.begin(tenant).await?;
        let applied = follow::lock_position(&mut tx, tenant, PROFILES).await?;
        let fresh: Vec<&ProfilesEvent> = events.iter().filter(|e| e.position > applied).collect();
        let Some(last) = fresh.last().map(|e| e.position) else {
            tx.commit().await?;
            return Ok(0);
        };
        let now = Utc::now();
        let mut touched = 0;
        let program = match fresh.iter().any(|e| e.purchase.is_some()) {
            true => Some(loyalty::program(&mut tx, tenant, false).await?.program.0),
            false => None,
        };
        for event in &fresh {
            if let (Some(program), Some(purchase)) = (program.as_ref().filter(|p| p.earns_at(event.time)), &event.purchase) {
                touched += u64::from(earn_in(&mut tx, tenant, program, purchase, now).await? > 0);
            }
            if let Some(purchase) = &event.purchase {
                let source = format!("transactions/{}", purchase.transaction);
                let goal = Goal {
                    customer_id: purchase.customer,
                    goal: PURCHASE,
                    source: &source,
                    currency_code: &purchase.currency,
                    revenue_minor: purchase.minor,
                    occur_time: event.time,
                };
                touched += u64::from(attribution::record_in(&mut tx, tenant, &goal, now).await?.is_some());
            }
            touched += match &event.change {
                CustomerChange::Erased(customer) => erasure::erase(&mut tx, tenant, *customer).await?,
                CustomerChange::Merged { merge, survivor, merged } => {
                    customer_merges::repoint(&mut tx, tenant, *merge, *survivor, merged).await?
                        + loyalty::move_for_merge(&mut tx, tenant, *merge, *survivor, merged, now).await?
                }
                CustomerChange::Unmerged { merge } => {
                    customer_merges::restore(&mut tx, tenant, *merge).await?
                        + loyalty::move_back_for_unmerge(&mut tx, tenant, *merge, now).await?
                }
                CustomerChange::Other => 0,
            };
        }
        let fired: Vec<Fired> = fresh
            .iter()
            .flat_map(|e| {
                e.customer_events.iter().map(|c| Fired {
                    event: c.clone(),
                    time: e.time,
                    key: format!("{PROFILES}/{}", e.position),
                    label: format!("{PROFILES} event {}", e.position),
                })
            })
            .collect();
        touched += journey_runs::apply_events(&mut tx, tenant, &fired, now).await?;
        follow::advance(&mut tx, tenant, PROFILES, last).await?;
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
