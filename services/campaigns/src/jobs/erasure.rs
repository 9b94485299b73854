//! Follows profiles' event stream for every sending tenant (through
//! `crm_kit::follow`): erases a customer's personal data from campaigns on
//! CustomerErased, moves what follows a person on CustomersMerged and back
//! on CustomersUnmerged, and starts the journeys profiles' events trigger.

use crm_kit::{
    Error,
    auth::ServiceTokens,
    customer_changes::{self, CustomerChange},
    follow::{self, Apply, Source, Transport},
};
use crm_proto::crm::events::v1::Event;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    app::{App, erasure::ProfilesEvent},
    profiles,
    store::streams::PROFILES,
};

/// Applies profiles' erasures to campaigns.
#[derive(Clone)]
struct Erasures(App);

impl Apply for Erasures {
    async fn apply(&self, tenant: Uuid, event: Event) -> Result<(), Error> {
        self.apply_batch(tenant, vec![event]).await
    }

    async fn apply_batch(&self, tenant: Uuid, events: Vec<Event>) -> Result<(), Error> {
        let events: Vec<ProfilesEvent> = events.iter().map(profiles_event).collect();
        let touched = self.0.apply_profiles_events(tenant, &events).await?;
        if touched > 0 {
            tracing::info!(%tenant, rows = touched, events = events.len(), "profiles' events applied to campaigns");
        }
        Ok(())
    }
}

/// What an event of profiles' stream says, for campaigns.
fn profiles_event(event: &Event) -> ProfilesEvent {
    let data = event.data.as_ref().map(|any| any.value.as_slice()).unwrap_or_default();
    ProfilesEvent {
        position: event.position,
        time: event.time.and_then(|t| crm_kit::time::from_timestamp(&t)).unwrap_or_else(chrono::Utc::now),
        change: CustomerChange::of(event),
        customer_events: profiles::customer_events(&event.r#type, data),
        purchase: profiles::purchase(&event.r#type, data),
    }
}

/// Runs the job until `shutdown` turns true; sending tenants from before it
/// existed are marked first, in the background.
pub fn spawn(
    app: App,
    profiles_url: &str,
    transport: Transport,
    tokens: ServiceTokens,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let marking = app.clone();
    tokio::spawn(async move {
        if let Err(err) = marking.follow_profiles_for_every_sender().await {
            tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not mark the sending tenants as following profiles");
        }
    });
    let mut types = customer_changes::event_types();
    types.extend(profiles::journey_event_types());
    let source = Source { name: PROFILES, url: profiles_url.to_owned(), types, transport };
    follow::spawn(app.pool().clone(), source, tokens, Erasures(app), shutdown)
}
