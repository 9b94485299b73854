//! What tickets does with profiles' stream: when profiles erases a customer
//! (CustomerErased), their personal text in tickets goes too; when it
//! merges customers (CustomersMerged), their tickets move to the survivor,
//! and back when the merge is undone (CustomersUnmerged) — each once, even
//! with replicas applying the same event, because the stream position is
//! claimed in the same transaction.

use chrono::{DateTime, Utc};
use crm_kit::{Error, customer_changes::CustomerChange, follow};
use uuid::Uuid;

use super::App;
use crate::store::{customer_merges, erasure};

/// The name of profiles' stream in `stream_positions`.
pub const PROFILES: &str = "profiles";

impl App {
    /// Marks every tenant that has tickets as following profiles' stream
    /// (those with tickets from before the stream was followed included);
    /// how many were marked anew is not told: marking is idempotent.
    pub async fn follow_profiles_for_every_tenant(&self) -> Result<(), Error> {
        for tenant in erasure::tenants_with_tickets(&self.pool).await? {
            let mut tx = self.begin(tenant).await?;
            follow::follow_tenant(&mut tx, tenant, PROFILES).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Applies the event at `position` of profiles' stream; the number of
    /// tickets it touched, 0 for an event applied before.
    pub async fn apply_profiles_event(
        &self,
        tenant: Uuid,
        position: i64,
        change: CustomerChange,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let mut tx = self.begin(tenant).await?;
        if !follow::claim(&mut tx, tenant, PROFILES, position).await? {
            tx.commit().await?;
            return Ok(0);
        }
        let touched = match &change {
            CustomerChange::Erased(customer) => erasure::erase(&mut tx, tenant, *customer, now).await?,
            CustomerChange::Merged { merge, survivor, merged } => {
                customer_merges::repoint(&mut tx, tenant, *merge, *survivor, merged, now).await?
            }
            CustomerChange::Unmerged { merge } => customer_merges::restore(&mut tx, tenant, *merge, now).await?,
            CustomerChange::Other => 0,
        };
        tx.commit().await?;
        if touched > 0 {
            tracing::info!(tickets = touched, change = ?std::mem::discriminant(&change), "profiles' change applied to tickets");
        }
        Ok(touched)
    }
}
