//! The profiles service as seen from tickets: does a customer exist for the
//! caller's tenant? Made through the kit's outbound client (one shared
//! channel, the caller's deadline, token and trace context, retries of this
//! read when profiles is briefly unavailable).

use std::time::Duration;

use crm_kit::{
    Error,
    client::{Caller, Peer, Retry},
};
use crm_proto::crm::profiles::v1::{CustomerCategory, GetCustomerRequest, customer_service_client::CustomerServiceClient};
use tonic::Code;

/// Client of `crm.profiles.v1.CustomerService`.
#[derive(Clone)]
pub struct ProfilesClient {
    peer: Peer,
}

impl ProfilesClient {
    /// A lazily connecting client of the profiles service at `url`; no call takes longer than `timeout`.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self { peer: Peer::connect_lazy("crm.profiles.v1.CustomerService", url, timeout)? })
    }

    /// The category (VIP, REGULAR, NEW, POTENTIAL or "") of `customer` (a
    /// resource name) when it is a live customer the caller can see.
    /// Its absence is the caller's mistake (INVALID_ARGUMENT on `field`); profiles
    /// being down or slow is UNAVAILABLE with RetryInfo.
    pub async fn check_customer(&self, caller: &Caller, customer: &str, field: &str) -> Result<String, Error> {
        let request = GetCustomerRequest { name: customer.to_owned() };
        let result = self
            .peer
            .call("GetCustomer", caller, Retry::Idempotent, request, |channel, request| async move {
                CustomerServiceClient::new(channel).get_customer(request).await
            })
            .await;
        match result {
            Ok(response) if response.customer.as_ref().is_some_and(|c| c.delete_time.is_none()) => {
                let category = response.customer.as_ref().map_or(0, |c| c.category);
                Ok(crm_kit::protoenum::short_name(
                    category,
                    |n| CustomerCategory::try_from(n).ok().map(|e| e.as_str_name()),
                    "CUSTOMER_CATEGORY_",
                )
                .unwrap_or_default())
            }
            Ok(_) => Err(Error::invalid(field, "CUSTOMER_DELETED", format!("{customer} is deleted; undelete it first"))),
            Err(status) => Err(match status.code() {
                Code::NotFound | Code::InvalidArgument => {
                    Error::invalid(field, "UNKNOWN_CUSTOMER", format!("{customer:?} is not a customer of this tenant"))
                }
                Code::PermissionDenied => Error::PermissionDenied { permission: "customers.read".to_owned() },
                Code::Unauthenticated => Error::Unauthenticated { reason: "INVALID_TOKEN", message: status.message().to_owned() },
                _ => {
                    tracing::warn!(code = ?status.code(), "profiles did not answer the customer check");
                    Error::Unavailable {
                        reason: "PROFILES_UNAVAILABLE",
                        message: "the customer could not be checked because the profiles service is unavailable; retry later".to_owned(),
                        retry_after: Duration::from_secs(1),
                    }
                }
            }),
        }
    }
}
