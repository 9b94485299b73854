//! Erasure from profiles' stream: when profiles erases a customer
//! (CustomerErased), what campaigns holds of their personal data goes too —
//! once, even with replicas applying the same event, because the stream
//! position is claimed in the same transaction.

use crm_kit::{Error, follow};
use uuid::Uuid;

use super::{App, complaints::TICKETS};
use crate::store::erasure;

/// The name of profiles' stream in `stream_positions`.
pub const PROFILES: &str = "profiles";

impl App {
    /// Applies the event at `position` of profiles' stream: erases
    /// `customer`'s data (when it names one); deliveries touched, 0 for an event applied before.
    pub async fn apply_profiles_event(&self, tenant: Uuid, position: i64, customer: Option<Uuid>) -> Result<u64, Error> {
        let mut tx = self.begin(tenant).await?;
        if !follow::claim(&mut tx, tenant, PROFILES, position).await? {
            tx.commit().await?;
            return Ok(0);
        }
        let erased = match customer {
            Some(customer) => erasure::erase(&mut tx, tenant, customer).await?,
            None => 0,
        };
        tx.commit().await?;
        Ok(erased)
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
