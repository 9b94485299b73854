//! Follows tickets' event stream for every tenant that sends (one stream per
//! tenant, read with the service's own token from the stored position) and
//! applies each event's tickets to the open complaints the contact policy
//! checks (`app::complaints`): at least once from tickets, exactly once in
//! effect. A broken stream is opened again from the stored position; a
//! tenant that starts sending is picked up at the next look.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use crm_kit::auth::ServiceTokens;
use crm_proto::crm::events::v1::{SubscribeRequest, event_service_client::EventServiceClient};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::{
    app::{App, complaints::TICKETS},
    store::streams,
    tickets,
};

/// How often new sending tenants are looked for.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Runs the job until `shutdown` turns true.
pub fn spawn(app: App, tickets_url: &str, tokens: ServiceTokens, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(tickets_url.to_owned())?.connect_timeout(Duration::from_secs(2)).connect_lazy();
    let following: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            match streams::followed(app.pool(), TICKETS).await {
                Ok(tenants) => {
                    for (tenant, _) in tenants {
                        if following.lock().expect("not poisoned").insert(tenant) {
                            tokio::spawn(follow(app.clone(), channel.clone(), tokens.clone(), tenant, shutdown.clone()));
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not list the tenants to follow"),
            }
            tokio::select! {
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    });
    Ok(())
}

/// Follows one tenant's tickets stream until shutdown, reopening it after any failure.
async fn follow(app: App, channel: Channel, tokens: ServiceTokens, tenant: Uuid, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            result = stream(&app, &channel, &tokens, tenant) => result,
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return } else { continue },
        };
        if let Err(err) = result {
            tracing::info!(tenant = %tenant, error = %err, "tickets' event stream broke; reopening it");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Reads the stream from the stored position and applies every event; returns when it ends.
async fn stream(app: &App, channel: &Channel, tokens: &ServiceTokens, tenant: Uuid) -> anyhow::Result<()> {
    let after = app.tickets_position(tenant).await?;
    let mut request = tonic::Request::new(SubscribeRequest { after_position: after, types: tickets::event_types() });
    request.metadata_mut().insert("authorization", format!("Bearer {}", tokens.mint(tenant)?).parse()?);
    let mut events = EventServiceClient::new(channel.clone()).subscribe(request).await?.into_inner();
    while let Some(message) = events.message().await? {
        let Some(event) = message.event else { continue };
        let data = event.data.map(|any| any.value).unwrap_or_default();
        let found = tickets::tickets_in(&event.r#type, &data);
        app.apply_ticket_event(tenant, event.position, &found).await?;
    }
    Ok(())
}
