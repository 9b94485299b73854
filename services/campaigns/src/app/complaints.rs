//! Open complaints from tickets' event stream: applying events idempotently
//! (each ticket keeps the position of the event it was last set by, and the
//! tenant's stream position moves forward in the same transaction).

use chrono::{DateTime, Utc};
use crm_kit::Error;
use uuid::Uuid;

use super::{
    App,
    attribution::{self, TICKET_RESOLVED},
    journey_runs::{self, Fired},
};
use crate::{
    domain::{journey::EventTrigger, journey_run::CustomerEvent},
    store::{
        conversions::Goal,
        streams::{self, TICKETS},
    },
    tickets::TicketFacts,
};

impl App {
    /// Whether `customer` has an open complaint ticket (as far as tickets' stream has been applied).
    pub async fn has_open_complaint(&self, tenant: Uuid, customer: Uuid) -> Result<bool, Error> {
        let mut tx = self.begin(tenant).await?;
        let open = streams::with_open_complaints(&mut tx, tenant, &[customer]).await?;
        tx.commit().await?;
        Ok(open.contains(&customer))
    }

    /// Applies the tickets of the event at `position` (which happened at
    /// `time`) and what it means to journeys, and the position itself. An
    /// event applied before starts no run twice (the run's entry key is the
    /// position) and sets each ticket to what it already is.
    pub async fn apply_ticket_event(
        &self,
        tenant: Uuid,
        position: i64,
        time: DateTime<Utc>,
        tickets: &[TicketFacts],
        events: &[CustomerEvent],
    ) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        for t in tickets {
            streams::record_ticket(&mut tx, tenant, t.id, t.customer, t.complaint, t.open, position).await?;
        }
        let fired: Vec<Fired> = events
            .iter()
            .map(|e| Fired { event: e.clone(), time, key: format!("{TICKETS}/{position}"), label: format!("{TICKETS} event {position}") })
            .collect();
        let now = Utc::now();
        journey_runs::apply_events(&mut tx, tenant, &fired, now).await?;
        let source = format!("{TICKETS} event {position}");
        for resolved in events.iter().filter(|e| e.event == EventTrigger::TicketResolved) {
            let goal = Goal {
                customer_id: resolved.customer,
                goal: TICKET_RESOLVED,
                source: &source,
                currency_code: "",
                revenue_minor: 0,
                occur_time: time,
            };
            attribution::record_in(&mut tx, tenant, &goal, now).await?;
        }
        crm_kit::follow::advance(&mut tx, tenant, TICKETS, position).await?;
        tx.commit().await?;
        Ok(())
    }
}
