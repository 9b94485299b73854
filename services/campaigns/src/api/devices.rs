//! `crm.campaigns.v1.DeviceService`: the devices FCM pushes go to. A
//! customer's app registers, reads and removes the customer's own devices
//! (another customer's look like they do not exist); staff need
//! `devices.read` / `devices.write`. Tokens are shown whole to their
//! customer and to callers with `pii`, otherwise masked.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Principal, caller},
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::campaigns::v1::{self as pb, device_service_server::DeviceService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    app::App,
    permissions,
    resources::{CUSTOMER, DEVICE},
    store::devices::DeviceRow,
    wire::devices::{device_to, registration_from},
};

/// Handlers of DeviceService.
#[derive(Clone)]
pub struct DeviceApi {
    app: App,
    page_tokens: PageTokenCodec,
}

/// `row` as `principal` may see it.
fn shown(principal: &Principal, row: &DeviceRow) -> pb::Device {
    device_to(row, principal.can(permissions::PII) || principal.customer() == Some(row.customer_id))
}

/// The device `id` if `principal` may act on it with `staff` (a customer on their own only), else NOT_FOUND or PERMISSION_DENIED.
async fn reachable(app: &App, principal: &Principal, id: Uuid, staff: crm_kit::auth::Permission) -> Result<DeviceRow, Error> {
    let own = principal.customer();
    if own.is_none() {
        principal.require(staff)?;
    }
    let row = app.device(principal.tenant, id).await?;
    match own {
        Some(customer) if customer != row.customer_id => Err(DEVICE.not_found(id)),
        _ => Ok(row),
    }
}

impl DeviceApi {
    /// Handlers over `app`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

#[tonic::async_trait]
impl DeviceService for DeviceApi {
    #[tracing::instrument(skip_all)]
    async fn register_device(&self, request: Request<pb::RegisterDeviceRequest>) -> Result<Response<pb::RegisterDeviceResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let device = required(request.into_inner().device, "device")?;
            let customer = match principal.customer() {
                // A customer registers their own devices only.
                Some(own) if device.customer.is_empty() || CUSTOMER.parse(&device.customer, "device.customer").ok() == Some(own) => own,
                Some(_) => return Err(Error::PermissionDenied { permission: "devices.write (another customer's device)".into() }),
                None => {
                    principal.require(permissions::DEVICES_WRITE)?;
                    CUSTOMER.parse(&device.customer, "device.customer")?
                }
            };
            let registration = registration_from(&device, customer)?;
            let (row, _) = self.app.register_device(principal.tenant, &registration, Utc::now()).await?;
            Ok(pb::RegisterDeviceResponse { device: Some(shown(&principal, &row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_device(&self, request: Request<pb::GetDeviceRequest>) -> Result<Response<pb::GetDeviceResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let id = DEVICE.parse(&request.get_ref().name, "name")?;
            let row = reachable(&self.app, &principal, id, permissions::DEVICES_READ).await?;
            Ok(pb::GetDeviceResponse { device: Some(shown(&principal, &row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_devices(&self, request: Request<pb::ListDevicesRequest>) -> Result<Response<pb::ListDevicesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let request = request.get_ref();
            let asked = match request.customer.as_str() {
                "" => None,
                name => Some(CUSTOMER.parse(name, "customer")?),
            };
            let customer = match principal.customer() {
                // A customer lists their own devices; naming another finds none of theirs.
                Some(own) if asked.is_none_or(|c| c == own) => Some(own),
                Some(_) => return Ok(pb::ListDevicesResponse::default()),
                None => {
                    principal.require(permissions::DEVICES_READ)?;
                    asked
                }
            };
            let pager = Pager::new(&self.page_tokens);
            let scope = customer.map(|c| c.to_string()).unwrap_or_default();
            let page = pager.start(request.page_size, &request.page_token, &["ListDevices", &principal.tenant.to_string(), &scope])?;
            let rows = self.app.devices(principal.tenant, customer, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |d| (d.update_time, d.id));
            Ok(pb::ListDevicesResponse { devices: rows.iter().map(|d| shown(&principal, d)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_device(&self, request: Request<pb::DeleteDeviceRequest>) -> Result<Response<pb::DeleteDeviceResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let id = DEVICE.parse(&request.get_ref().name, "name")?;
            reachable(&self.app, &principal, id, permissions::DEVICES_WRITE).await?;
            self.app.delete_device(principal.tenant, id).await?;
            Ok(pb::DeleteDeviceResponse {})
        })
        .await
    }
}
