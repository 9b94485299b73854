//! Follows profiles' event stream for every tenant with tickets (through
//! `crm_kit::follow`): erases a customer's personal text from their tickets
//! on CustomerErased, re-points tickets on CustomersMerged and back on
//! CustomersUnmerged.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::ServiceTokens,
    follow::{self, Apply, Source},
};
use crm_proto::crm::{
    events::v1::Event,
    profiles::v1::{CustomerErased, CustomersMerged, CustomersUnmerged},
};
use prost::{Message, Name};
use tokio::sync::watch;
use uuid::Uuid;

use crate::app::{
    App,
    erasure::{PROFILES, ProfilesChange},
};

/// Applies profiles' erasures to tickets.
#[derive(Clone)]
struct Erasures(App);

impl Apply for Erasures {
    async fn apply(&self, tenant: Uuid, event: Event) -> Result<(), Error> {
        self.0.apply_profiles_event(tenant, event.position, change_of(&event), Utc::now()).await?;
        Ok(())
    }
}

/// What `event` asks of tickets (an undecodable one: nothing).
fn change_of(event: &Event) -> ProfilesChange {
    let data = event.data.as_ref().map(|any| any.value.as_slice()).unwrap_or_default();
    let id = |name: &str, collection: &str| name.strip_prefix(collection).and_then(|id| Uuid::parse_str(id).ok());
    let customer = |name: &str| id(name, "customers/");
    let merge = |name: &str| id(name, "customerMerges/");
    if event.r#type == CustomerErased::full_name() {
        let erased = CustomerErased::decode(data).ok().and_then(|e| customer(&e.customer));
        return erased.map_or(ProfilesChange::Other, ProfilesChange::Erased);
    }
    if event.r#type == CustomersMerged::full_name() {
        let Ok(merged) = CustomersMerged::decode(data) else { return ProfilesChange::Other };
        let (Some(merge_id), Some(survivor)) = (merge(&merged.customer_merge), customer(&merged.survivor)) else {
            return ProfilesChange::Other;
        };
        return ProfilesChange::Merged(merge_id, survivor, merged.merged.iter().filter_map(|m| customer(m)).collect());
    }
    if event.r#type == CustomersUnmerged::full_name() {
        let unmerged = CustomersUnmerged::decode(data).ok().and_then(|u| merge(&u.customer_merge));
        return unmerged.map_or(ProfilesChange::Other, ProfilesChange::Unmerged);
    }
    ProfilesChange::Other
}

/// Runs the job until `shutdown` turns true. Tenants with tickets from
/// before the stream was followed are marked first, in the background.
pub fn spawn(app: App, profiles_url: &str, tokens: ServiceTokens, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let marking = app.clone();
    tokio::spawn(async move {
        if let Err(err) = marking.follow_profiles_for_every_tenant().await {
            tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not mark the tenants with tickets as following profiles");
        }
    });
    let types = vec![CustomerErased::full_name(), CustomersMerged::full_name(), CustomersUnmerged::full_name()];
    let source = Source { name: PROFILES, url: profiles_url.to_owned(), types };
    follow::spawn(app.pool().clone(), source, tokens, Erasures(app), shutdown)
}
