//! Erasure from profiles' stream: when profiles erases a customer
//! (CustomerErased), their personal text in tickets goes too — once, even
//! with replicas applying the same event, because the stream position is
//! claimed in the same transaction.

use chrono::{DateTime, Utc};
use crm_kit::{Error, follow};
use uuid::Uuid;

use super::App;
use crate::store::erasure;

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

    /// Applies the event at `position` of profiles' stream: erases
    /// `customer`'s texts (when it names one); the number of tickets erased,
    /// 0 for an event applied before.
    pub async fn apply_profiles_event(
        &self,
        tenant: Uuid,
        position: i64,
        customer: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let mut tx = self.begin(tenant).await?;
        if !follow::claim(&mut tx, tenant, PROFILES, position).await? {
            tx.commit().await?;
            return Ok(0);
        }
        let erased = match customer {
            Some(customer) => erasure::erase(&mut tx, tenant, customer, now).await?,
            None => 0,
        };
        tx.commit().await?;
        if erased > 0 {
            tracing::info!(tickets = erased, "a customer's personal text was erased from their tickets");
        }
        Ok(erased)
    }
}
