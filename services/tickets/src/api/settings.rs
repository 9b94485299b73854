//! TicketSettingsService: the tenant's service-desk settings (a singleton,
//! `ticketSettings`). Staff who read tickets read them; admins change them.

use chrono::{Duration, Utc};
use crm_kit::{Error, auth::caller, etag, fieldmask::UpdateMask, required, respond, time::to_timestamp};
use crm_proto::crm::tickets::v1::{self as pb, ticket_settings_service_server::TicketSettingsService};
use tonic::{Request, Response, Status};

use crate::{
    app::{App, settings::Settings},
    permissions,
};

/// The singleton's resource name.
const NAME: &str = "ticketSettings";
/// Paths UpdateTicketSettings may change.
const WRITABLE_PATHS: &[&str] = &["follow_up_delay"];
/// The longest follow-up delay: a year.
const MAX_FOLLOW_UP_DELAY: Duration = Duration::days(365);

/// Handlers of TicketSettingsService.
#[derive(Clone)]
pub struct SettingsApi {
    app: App,
}

impl SettingsApi {
    /// Handlers over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn check_name(name: &str, field: &str) -> Result<(), Error> {
    if name == NAME { Ok(()) } else { Err(Error::invalid(field, "INVALID_NAME", format!("the settings are named {NAME:?}"))) }
}

fn to_proto(settings: &Settings) -> pb::TicketSettings {
    let delay = settings.follow_up_delay;
    pb::TicketSettings {
        name: NAME.to_owned(),
        follow_up_delay: Some(prost_types::Duration { seconds: delay.num_seconds(), nanos: 0 }),
        follow_up_delay_set: settings.follow_up_delay_set,
        etag: etag::of_revision(settings.revision),
        update_time: settings.update_time.map(to_timestamp),
    }
}

/// The follow-up delay asked for: whole seconds, 0 to a year; `None` for the default.
fn follow_up_delay(input: Option<&prost_types::Duration>) -> Result<Option<Duration>, Error> {
    let Some(d) = input else { return Ok(None) };
    let field = "settings.follow_up_delay";
    if d.nanos != 0 || d.seconds < 0 || d.seconds > MAX_FOLLOW_UP_DELAY.num_seconds() {
        return Err(Error::invalid(field, "INVALID_DELAY", "whole seconds from 0 to 365 days"));
    }
    Ok(Some(Duration::seconds(d.seconds)))
}

#[tonic::async_trait]
impl TicketSettingsService for SettingsApi {
    #[tracing::instrument(skip_all)]
    async fn get_ticket_settings(
        &self,
        request: Request<pb::GetTicketSettingsRequest>,
    ) -> Result<Response<pb::GetTicketSettingsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            check_name(&request.get_ref().name, "name")?;
            let settings = self.app.settings(principal.tenant).await?;
            Ok(pb::GetTicketSettingsResponse { settings: Some(to_proto(&settings)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_ticket_settings(
        &self,
        request: Request<pb::UpdateTicketSettingsRequest>,
    ) -> Result<Response<pb::UpdateTicketSettingsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let pb::UpdateTicketSettingsRequest { settings, update_mask } = request.into_inner();
            let input = required(settings, "settings")?;
            check_name(&input.name, "settings.name")?;
            let mask = UpdateMask::parse(update_mask.as_ref(), WRITABLE_PATHS)?;
            let asked = follow_up_delay(input.follow_up_delay.as_ref())?;
            let expected = etag::parse(&input.etag, "settings.etag")?;
            let edit = |current: &Settings| {
                if let Some(expected) = expected
                    && expected != current.revision
                {
                    return Err(Error::EtagMismatch { resource_type: "tickets.crm/TicketSettings", name: NAME.to_owned() });
                }
                let own = current.follow_up_delay_set.then_some(current.follow_up_delay);
                Ok(if mask.contains("follow_up_delay") { asked } else { own })
            };
            let settings = self.app.update_settings(principal.tenant, edit, Utc::now()).await?;
            Ok(pb::UpdateTicketSettingsResponse { settings: Some(to_proto(&settings)) })
        })
        .await
    }
}
