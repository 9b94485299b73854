//! `crm.gateway.v1.OverviewService`, served by the gateway itself: the
//! customer 360 view: the customer and their latest timeline entries from
//! profiles, their tickets from tickets. The backends are asked concurrently through the
//! kit's outbound client (`crm_kit::client`): over the gateway's one channel
//! per backend, each call in its own client span and within the request's
//! deadline, forwarding the caller's token and request id (so every service
//! still applies its own permissions and tenancy). Every call is a read, so a
//! briefly unavailable backend is retried, within the deadline and a retry
//! budget per backend service. A part whose backend is down, slow or refuses
//! is left empty and listed in `unavailable`; only an unknown (or invisible)
//! customer fails the call.

use std::time::Duration;

use crm_kit::client::{Caller, Peer, Retry};
use crm_proto::crm::{
    gateway::v1 as pb,
    profiles::v1::{
        Customer, GetCustomerRequest, ListCustomerTimelineRequest, TimelineItem, customer_service_client::CustomerServiceClient,
    },
    tickets::v1::{ListTicketsRequest, Ticket, ticket_service_client::TicketServiceClient},
};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tokio::time::Instant;
use tonic::{Code, Status, metadata::MetadataMap};

use crate::{
    errors::{ApiError, status_name},
    forward::Backends,
    routes::{BackendMap, Route},
};

const CUSTOMERS: &str = "crm.profiles.v1.CustomerService";
const TICKETS: &str = "crm.tickets.v1.TicketService";

const OPEN: &str = "(status = NEW OR status = OPEN OR status = PENDING)";
const DONE: &str = "(status = RESOLVED OR status = CLOSED)";

/// The backends the customer 360 asks, built once at start-up so that each
/// keeps one retry budget across requests.
pub struct Overview {
    /// Profiles' customer service; none when no backend serves it.
    customers: Option<Peer>,
    /// Tickets' ticket service; none when no backend serves it.
    tickets: Option<Peer>,
    /// Decodes the details of the status a failed overview passes on.
    pool: DescriptorPool,
}

impl Overview {
    /// Peers of the backends `backend_map` names for profiles and tickets,
    /// over their channels in `backends`; `timeout` is a call's default deadline.
    pub fn new(pool: &DescriptorPool, backend_map: &BackendMap, backends: &Backends, timeout: Duration) -> Self {
        let peer = |service: &'static str| {
            let url = backend_map.backend_for(&pool.get_service_by_name(service)?)?;
            Some(Peer::with_channel(service, url, backends.channel(url), timeout))
        };
        Self { customers: peer(CUSTOMERS), tickets: peer(TICKETS), pool: pool.clone() }
    }

    /// Serves `GetCustomerOverview` for `message` (its request) with the
    /// caller's metadata; every backend call ends within `timeout`.
    pub async fn serve(
        &self,
        route: &Route,
        message: &DynamicMessage,
        metadata: &MetadataMap,
        timeout: Duration,
    ) -> Result<DynamicMessage, ApiError> {
        let name = message.get_field_by_name("name").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        // The name goes into a filter: only a well-formed id may (no quoting tricks).
        let id = name
            .strip_prefix("customers/")
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .ok_or_else(|| ApiError::bad_request("INVALID_NAME", format!("name must be customers/{{uuid}}, not {name:?}")))?;
        let caller = Caller::from_metadata(metadata, Some(Instant::now() + timeout));
        let of_customer = format!("customer = \"customers/{id}\"");
        let (customer, timeline, open, recent) = tokio::join!(
            self.customer(&name, &caller, timeout),
            self.timeline(&name, &caller, timeout),
            self.tickets(format!("{of_customer} AND {OPEN}"), 50, &caller, timeout),
            self.tickets(format!("{of_customer} AND {DONE}"), 10, &caller, timeout),
        );
        let mut response = pb::GetCustomerOverviewResponse::default();
        match customer {
            Ok(customer) => response.customer = Some(customer),
            // The caller's mistake (or a customer it may not see): the whole call fails, as GetCustomer would.
            Err(status)
                if matches!(status.code(), Code::NotFound | Code::InvalidArgument | Code::PermissionDenied | Code::Unauthenticated) =>
            {
                return Err(ApiError::from_status(&status, &self.pool));
            }
            Err(status) => response.unavailable.push(unavailable("customer", &status)),
        }
        match timeline {
            Ok(items) => response.timeline = items,
            Err(status) => response.unavailable.push(unavailable("timeline", &status)),
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

    async fn customer(&self, name: &str, caller: &Caller, timeout: Duration) -> Result<Customer, Status> {
        let peer = self.customers.as_ref().ok_or_else(|| unconfigured(CUSTOMERS))?;
        let request = GetCustomerRequest { name: name.to_owned() };
        // The request's deadline may be longer than the peer's default: it is the client's to choose.
        let response = peer
            .with_timeout(timeout)
            .call("GetCustomer", caller, Retry::Idempotent, request, |channel, request| async move {
                CustomerServiceClient::new(channel).get_customer(request).await
            })
            .await?;
        Ok(response.customer.unwrap_or_default())
    }

    async fn timeline(&self, name: &str, caller: &Caller, timeout: Duration) -> Result<Vec<TimelineItem>, Status> {
        let peer = self.customers.as_ref().ok_or_else(|| unconfigured(CUSTOMERS))?;
        let request = ListCustomerTimelineRequest { parent: name.to_owned(), page_size: 20, ..Default::default() };
        let response = peer
            .with_timeout(timeout)
            .call("ListCustomerTimeline", caller, Retry::Idempotent, request, |channel, request| async move {
                CustomerServiceClient::new(channel).list_customer_timeline(request).await
            })
            .await?;
        Ok(response.items)
    }

    async fn tickets(&self, filter: String, page_size: i32, caller: &Caller, timeout: Duration) -> Result<Vec<Ticket>, Status> {
        let peer = self.tickets.as_ref().ok_or_else(|| unconfigured(TICKETS))?;
        let request = ListTicketsRequest { page_size, filter, ..Default::default() };
        let response = peer
            .with_timeout(timeout)
            .call("ListTickets", caller, Retry::Idempotent, request, |channel, request| async move {
                TicketServiceClient::new(channel).list_tickets(request).await
            })
            .await?;
        Ok(response.tickets)
    }
}

fn unconfigured(service: &str) -> Status {
    Status::unavailable(format!("no backend is configured for {service}"))
}

fn unavailable(part: &str, status: &Status) -> pb::UnavailablePart {
    pb::UnavailablePart { part: part.to_owned(), status: status_name(status.code()).to_owned(), message: status.message().to_owned() }
}
