//! Follows profiles' event stream for every tenant with tickets (through
//! `crm_kit::follow`): erases a customer's personal text from their tickets
//! on CustomerErased, re-points tickets on CustomersMerged and back on
//! CustomersUnmerged.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::ServiceTokens,
    customer_changes::{self, CustomerChange},
    follow::{self, Apply, Source, Transport},
};
use crm_proto::crm::events::v1::Event;
use tokio::sync::watch;
use uuid::Uuid;

use crate::app::{App, erasure::PROFILES};

/// Applies profiles' erasures to tickets.
#[derive(Clone)]
struct Erasures(App);

impl Apply for Erasures {
    async fn apply(&self, tenant: Uuid, event: Event) -> Result<(), Error> {
        self.0.apply_profiles_event(tenant, event.position, CustomerChange::of(&event), Utc::now()).await?;
        Ok(())
    }
}

/// Runs the job until `shutdown` turns true. Tenants with tickets from
/// before the stream was followed are marked first, in the background.
pub fn spawn(
    app: App,
    profiles_url: &str,
    transport: Transport,
    tokens: ServiceTokens,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let marking = app.clone();
    tokio::spawn(async move {
        if let Err(err) = marking.follow_profiles_for_every_tenant().await {
            tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not mark the tenants with tickets as following profiles");
        }
    });
    let source = Source { name: PROFILES, url: profiles_url.to_owned(), types: customer_changes::event_types(), transport };
    follow::spawn(app.pool().clone(), source, tokens, Erasures(app), shutdown)
}
