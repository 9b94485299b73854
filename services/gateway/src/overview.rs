//! `crm.gateway.v1.OverviewService`, served by the gateway itself: the
//! customer 360 view. Profiles and tickets are asked concurrently, each call
//! with its own client span and deadline, forwarding the caller's token (so
//! every service still applies its own permissions and tenancy). A part whose
//! backend is down, slow or refuses is left empty and listed in
//! `unavailable`; only an unknown (or invisible) customer fails the call.

use std::time::Duration;

use crm_kit::telemetry::{client_span, inject_context};
use crm_proto::crm::{
    gateway::v1 as pb,
    profiles::v1::{Customer, GetCustomerRequest, customer_service_client::CustomerServiceClient},
    tickets::v1::{ListTicketsRequest, Ticket, ticket_service_client::TicketServiceClient},
};
use prost::Message as _;
use prost_reflect::DynamicMessage;
use tonic::{Code, Status, metadata::MetadataMap, transport::Channel};
use tracing::Instrument;

use crate::{
    errors::{ApiError, status_name},
    handler::{Gateway, REQUEST_ID},
    routes::Route,
};

/// `Route::backend` of the services the gateway serves itself.
pub const LOCAL: &str = "gateway";
/// The services the gateway serves itself.
pub const LOCAL_SERVICES: &[&str] = &["crm.gateway.v1.OverviewService"];

const OPEN: &str = "(status = NEW OR status = OPEN OR status = PENDING)";
const DONE: &str = "(status = RESOLVED OR status = CLOSED)";

/// A backend call's request: the caller's token and request id, this span's
/// trace context, the deadline.
fn request<T>(message: T, caller: &MetadataMap, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for key in ["authorization", REQUEST_ID] {
        if let Some(value) = caller.get(key) {
            request.metadata_mut().insert(key, value.clone());
        }
    }
    inject_context(request.metadata_mut());
    request.set_timeout(timeout);
    request
}

/// Runs `call` in a client span with the deadline enforced here too (a hung
/// connection must not hold the whole overview).
async fn backend_call<T>(
    service: &'static str,
    method: &'static str,
    peer: &str,
    timeout: Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let span = client_span(service, method, peer);
    async {
        let result = tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded(format!("{service} did not answer within {} ms", timeout.as_millis()))));
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        tracing::Span::current().record("rpc.grpc.status_code", code as i32);
        result
    }
    .instrument(span)
    .await
}

fn channel_of(gateway: &Gateway, service: &str) -> Option<(String, Channel)> {
    let descriptor = gateway.pool.get_service_by_name(service)?;
    let url = gateway.backend_map.backend_for(&descriptor)?;
    Some((url.to_owned(), gateway.backends.channel(url)))
}

fn unconfigured(service: &str) -> Status {
    Status::unavailable(format!("no backend is configured for {service}"))
}

async fn customer(gateway: &Gateway, name: &str, caller: &MetadataMap, timeout: Duration) -> Result<Customer, Status> {
    const SERVICE: &str = "crm.profiles.v1.CustomerService";
    let (url, channel) = channel_of(gateway, SERVICE).ok_or_else(|| unconfigured(SERVICE))?;
    backend_call(SERVICE, "GetCustomer", &url, timeout, async {
        let response = CustomerServiceClient::new(channel)
            .get_customer(request(GetCustomerRequest { name: name.to_owned() }, caller, timeout))
            .await?;
        Ok(response.into_inner().customer.unwrap_or_default())
    })
    .await
}

async fn tickets(
    gateway: &Gateway,
    filter: String,
    page_size: i32,
    caller: &MetadataMap,
    timeout: Duration,
) -> Result<Vec<Ticket>, Status> {
    const SERVICE: &str = "crm.tickets.v1.TicketService";
    let (url, channel) = channel_of(gateway, SERVICE).ok_or_else(|| unconfigured(SERVICE))?;
    backend_call(SERVICE, "ListTickets", &url, timeout, async {
        let list = ListTicketsRequest { page_size, filter, ..Default::default() };
        Ok(TicketServiceClient::new(channel).list_tickets(request(list, caller, timeout)).await?.into_inner().tickets)
    })
    .await
}

fn unavailable(part: &str, status: &Status) -> pb::UnavailablePart {
    pb::UnavailablePart { part: part.to_owned(), status: status_name(status.code()).to_owned(), message: status.message().to_owned() }
}

/// Serves `GetCustomerOverview` for `message` (its request) with the caller's metadata.
pub async fn serve(
    gateway: &Gateway,
    route: &Route,
    message: &DynamicMessage,
    caller: &MetadataMap,
    timeout: Duration,
) -> Result<DynamicMessage, ApiError> {
    let name = message.get_field_by_name("name").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    // The name goes into a filter: only a well-formed id may (no quoting tricks).
    let id = name
        .strip_prefix("customers/")
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .ok_or_else(|| ApiError::bad_request("INVALID_NAME", format!("name must be customers/{{uuid}}, not {name:?}")))?;
    let of_customer = format!("customer = \"customers/{id}\"");
    let (customer, open, recent) = tokio::join!(
        customer(gateway, &name, caller, timeout),
        tickets(gateway, format!("{of_customer} AND {OPEN}"), 50, caller, timeout),
        tickets(gateway, format!("{of_customer} AND {DONE}"), 10, caller, timeout),
    );
    let mut response = pb::GetCustomerOverviewResponse::default();
    match customer {
        Ok(customer) => response.customer = Some(customer),
        // The caller's mistake (or a customer it may not see): the whole call fails, as GetCustomer would.
        Err(status) if matches!(status.code(), Code::NotFound | Code::InvalidArgument | Code::PermissionDenied | Code::Unauthenticated) => {
            return Err(ApiError::from_status(&status, &gateway.pool));
        }
        Err(status) => response.unavailable.push(unavailable("customer", &status)),
    }
    match (open, recent) {
        (Ok(open), Ok(recent)) => (response.open_tickets, response.recent_tickets) = (open, recent),
        (Err(status), _) | (_, Err(status)) => response.unavailable.push(unavailable("tickets", &status)),
    }
    DynamicMessage::decode(route.rpc.output(), response.encode_to_vec().as_slice()).map_err(|e| ApiError::Backend {
        code: Code::Internal,
        message: format!("encoding the overview: {e}"),
        details: Vec::new(),
    })
}
