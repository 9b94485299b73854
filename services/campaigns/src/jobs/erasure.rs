//! Follows profiles' event stream for every sending tenant (through
//! `crm_kit::follow`) and erases a customer's personal data from campaigns
//! when profiles announces CustomerErased.

use crm_kit::{
    Error,
    auth::ServiceTokens,
    follow::{self, Apply, Source},
};
use crm_proto::crm::{events::v1::Event, profiles::v1::CustomerErased};
use prost::{Message, Name};
use tokio::sync::watch;
use uuid::Uuid;

use crate::app::{App, erasure::PROFILES};

/// Applies profiles' erasures to campaigns.
#[derive(Clone)]
struct Erasures(App);

impl Apply for Erasures {
    async fn apply(&self, tenant: Uuid, event: Event) -> Result<(), Error> {
        let customer = (event.r#type == CustomerErased::full_name())
            .then(|| event.data.as_ref().and_then(|any| CustomerErased::decode(any.value.as_slice()).ok()))
            .flatten()
            .and_then(|erased| erased.customer.strip_prefix("customers/").and_then(|id| Uuid::parse_str(id).ok()));
        let erased = self.0.apply_profiles_event(tenant, event.position, customer).await?;
        if erased > 0 {
            tracing::info!(%tenant, deliveries = erased, "a customer's personal data was erased from campaigns");
        }
        Ok(())
    }
}

/// Runs the job until `shutdown` turns true; sending tenants from before it
/// existed are marked first, in the background.
pub fn spawn(app: App, profiles_url: &str, tokens: ServiceTokens, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let marking = app.clone();
    tokio::spawn(async move {
        if let Err(err) = marking.follow_profiles_for_every_sender().await {
            tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not mark the sending tenants as following profiles");
        }
    });
    let source = Source { name: PROFILES, url: profiles_url.to_owned(), types: vec![CustomerErased::full_name()] };
    follow::spawn(app.pool().clone(), source, tokens, Erasures(app), shutdown)
}
