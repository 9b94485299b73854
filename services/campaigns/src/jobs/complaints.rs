//! Follows tickets' event stream for every tenant that sends (through
//! `crm_kit::follow`: one stream per tenant, from the stored position, with
//! the service's own token) and applies each event's tickets to the open
//! complaints the contact policy checks (`app::complaints`) and to the
//! journeys started by tickets' events: at least once from tickets, exactly
//! once in effect.

use crm_kit::{
    Error,
    auth::ServiceTokens,
    follow::{self, Apply, Source, Transport},
};
use crm_proto::crm::events::v1::Event;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{app::App, store::streams::TICKETS, tickets};

/// Applies tickets' events to the open complaints.
#[derive(Clone)]
struct Complaints(App);

impl Apply for Complaints {
    async fn apply(&self, tenant: Uuid, event: Event) -> Result<(), Error> {
        let data = event.data.map(|any| any.value).unwrap_or_default();
        let found = tickets::tickets_in(&event.r#type, &data);
        let events = tickets::customer_events(&event.r#type, &data);
        let time = event.time.and_then(|t| crm_kit::time::from_timestamp(&t)).unwrap_or_else(chrono::Utc::now);
        self.0.apply_ticket_event(tenant, event.position, time, &found, &events).await
    }
}

/// Runs the job until `shutdown` turns true.
pub fn spawn(
    app: App,
    tickets_url: &str,
    transport: Transport,
    tokens: ServiceTokens,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let source = Source { name: TICKETS, url: tickets_url.to_owned(), types: tickets::event_types(), transport };
    follow::spawn(app.pool().clone(), source, tokens, Complaints(app), shutdown)
}
