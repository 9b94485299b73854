//! `crm.campaigns.v1.ContactPolicyService`: the tenant's contact rules.
//! Everyone who reads templates reads them; administrators change them.

use chrono::Utc;
use crm_kit::{Error, auth::caller, fieldmask::UpdateMask, required, respond};
use crm_proto::crm::campaigns::v1::{self as pb, contact_policy_service_server::ContactPolicyService};
use tonic::{Request, Response, Status};

use crate::{
    app::App,
    permissions,
    wire::{contact_policy_from, contact_policy_to},
};

const WRITABLE: &[&str] = &["time_zone", "quiet_hours_start", "quiet_hours_end", "frequency_caps"];

crm_kit::mask_fields!(pb::ContactPolicy;
    "time_zone" => time_zone,
    "quiet_hours_start" => quiet_hours_start,
    "quiet_hours_end" => quiet_hours_end,
    "frequency_caps" => frequency_caps,
);

/// Handlers of ContactPolicyService.
#[derive(Clone)]
pub struct ContactPolicyApi {
    app: App,
}

impl ContactPolicyApi {
    /// Handlers over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn check_name(name: &str, field: &str) -> Result<(), Error> {
    if name == "contactPolicy" { Ok(()) } else { Err(Error::invalid(field, "INVALID_NAME", "the name is \"contactPolicy\"")) }
}

#[tonic::async_trait]
impl ContactPolicyService for ContactPolicyApi {
    #[tracing::instrument(skip_all)]
    async fn get_contact_policy(
        &self,
        request: Request<pb::GetContactPolicyRequest>,
    ) -> Result<Response<pb::GetContactPolicyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TEMPLATES_READ)?;
            check_name(&request.get_ref().name, "name")?;
            Ok(pb::GetContactPolicyResponse { contact_policy: Some(contact_policy_to(&self.app.contact_policy(principal.tenant).await?)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_contact_policy(
        &self,
        request: Request<pb::UpdateContactPolicyRequest>,
    ) -> Result<Response<pb::UpdateContactPolicyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CONTACT_POLICY_CONFIGURE)?;
            let pb::UpdateContactPolicyRequest { contact_policy, update_mask } = request.into_inner();
            let input = required(contact_policy, "contact_policy")?;
            check_name(&input.name, "contact_policy.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            let edit = |stored: &crate::store::contact_policy::ContactPolicyRow| {
                let mut merged = contact_policy_to(stored);
                for path in &paths {
                    copy_field(&mut merged, &input, path);
                }
                contact_policy_from(&merged)
            };
            let row = self.app.update_contact_policy(principal.tenant, &input.etag, edit, Utc::now()).await?;
            Ok(pb::UpdateContactPolicyResponse { contact_policy: Some(contact_policy_to(&row)) })
        })
        .await
    }
}
