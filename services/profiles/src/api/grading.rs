//! `crm.profiles.v1.GradingService`: `customers.read` reads the tenant's
//! grading settings and cut points; administrators (`settings.configure`)
//! change them and regrade at once.

use chrono::Utc;
use crm_kit::{Error, auth::caller, fieldmask::UpdateMask, required, respond};
use crm_proto::crm::profiles::v1::{self as pb, grading_service_server::GradingService};
use tonic::{Request, Response, Status};

use crate::{
    app::App,
    permissions,
    wire::grading::{SETTINGS_NAME, WRITABLE, copy_field, from_proto, to_proto},
};

/// How long RegradeCustomers waits for the regrade before answering that it
/// is running (well inside the kit's call deadline).
const WAIT_FOR_REGRADE: std::time::Duration = std::time::Duration::from_secs(5);

/// Handlers of GradingService.
#[derive(Clone)]
pub struct GradingApi {
    app: App,
}

impl GradingApi {
    /// Handlers over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn settings_name(name: &str, field: &str) -> Result<(), Error> {
    if name == SETTINGS_NAME { Ok(()) } else { Err(Error::invalid(field, "INVALID_NAME", "the settings are named \"gradingSettings\"")) }
}

#[tonic::async_trait]
impl GradingService for GradingApi {
    #[tracing::instrument(skip_all)]
    async fn get_grading_settings(
        &self,
        request: Request<pb::GetGradingSettingsRequest>,
    ) -> Result<Response<pb::GetGradingSettingsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            settings_name(&request.get_ref().name, "name")?;
            let (settings, update_time, cuts) = self.app.grading_settings(principal.tenant).await?;
            Ok(pb::GetGradingSettingsResponse { grading_settings: Some(to_proto(&settings, update_time, &cuts)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_grading_settings(
        &self,
        request: Request<pb::UpdateGradingSettingsRequest>,
    ) -> Result<Response<pb::UpdateGradingSettingsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::SETTINGS_CONFIGURE)?;
            let pb::UpdateGradingSettingsRequest { grading_settings, update_mask } = request.into_inner();
            let input = required(grading_settings, "grading_settings")?;
            settings_name(&input.name, "grading_settings.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            let (stored, _, cuts) = self.app.grading_settings(principal.tenant).await?;
            let mut merged = to_proto(&stored, None, &cuts);
            for path in &paths {
                copy_field(&mut merged, &input, path);
            }
            let settings = from_proto(&merged, "grading_settings").map_err(|violations| Error::InvalidArgument { violations })?;
            let now = Utc::now();
            self.app.set_grading_settings(principal.tenant, &settings, now).await?;
            Ok(pb::UpdateGradingSettingsResponse { grading_settings: Some(to_proto(&settings, Some(now), &cuts)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn regrade_customers(
        &self,
        request: Request<pb::RegradeCustomersRequest>,
    ) -> Result<Response<pb::RegradeCustomersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::SETTINGS_CONFIGURE)?;
            settings_name(&request.get_ref().name, "name")?;
            // Run apart from the call, so that a regrade outlasting its deadline still finishes (and commits).
            let (app, tenant) = (self.app.clone(), principal.tenant);
            let run = tokio::spawn(async move { app.regrade(tenant, false, Utc::now()).await });
            let (changed, running) = match tokio::time::timeout(WAIT_FOR_REGRADE, run).await {
                Ok(done) => {
                    let regraded = done.map_err(|err| Error::Internal(anyhow::anyhow!("the regrade task failed: {err}")))??;
                    (regraded.map_or(0, |(_, changed)| changed), false)
                }
                Err(_) => (0, true),
            };
            let (settings, update_time, cuts) = self.app.grading_settings(principal.tenant).await?;
            Ok(pb::RegradeCustomersResponse {
                grading_settings: Some(to_proto(&settings, update_time, &cuts)),
                changed_customers: i64::try_from(changed).unwrap_or(i64::MAX),
                running,
            })
        })
        .await
    }
}
