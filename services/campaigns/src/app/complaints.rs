//! Open complaints from tickets' event stream: applying events idempotently
//! (each ticket keeps the position of the event it was last set by, and the
//! tenant's stream position moves forward in the same transaction).

use crm_kit::Error;
use uuid::Uuid;

use super::App;
use crate::{store::streams, tickets::TicketFacts};

/// The source name of tickets' stream in `stream_positions`.
pub const TICKETS: &str = "tickets";

impl App {
    /// Whether `customer` has an open complaint ticket (as far as tickets' stream has been applied).
    pub async fn has_open_complaint(&self, tenant: Uuid, customer: Uuid) -> Result<bool, Error> {
        let mut tx = self.begin(tenant).await?;
        let open = streams::with_open_complaints(&mut tx, tenant, &[customer]).await?;
        tx.commit().await?;
        Ok(open.contains(&customer))
    }

    /// Applies the tickets of the event at `position`, and the position itself.
    pub async fn apply_ticket_event(&self, tenant: Uuid, position: i64, tickets: &[TicketFacts]) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        for t in tickets {
            streams::record_ticket(&mut tx, tenant, t.id, t.customer, t.complaint, t.open, position).await?;
        }
        crm_kit::follow::advance(&mut tx, tenant, TICKETS, position).await?;
        tx.commit().await?;
        Ok(())
    }
}
