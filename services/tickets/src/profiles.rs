//! The profiles service as seen from tickets: does a customer exist for the
//! caller's tenant? One shared channel, a deadline on every call, the caller's
//! token and trace context forwarded.

use std::time::Duration;

use crm_kit::{Error, telemetry};
use crm_proto::crm::profiles::v1::{CustomerCategory, GetCustomerRequest, customer_service_client::CustomerServiceClient};
use tonic::{Code, Request, transport::Channel};
use tracing::Instrument;

/// Client of `crm.profiles.v1.CustomerService`.
#[derive(Clone)]
pub struct ProfilesClient {
    client: CustomerServiceClient<Channel>,
    url: String,
    timeout: Duration,
}

impl ProfilesClient {
    /// A lazily connecting client of the profiles service at `url`.
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())?.connect_timeout(timeout).connect_lazy();
        Ok(Self { client: CustomerServiceClient::new(channel), url: url.to_owned(), timeout })
    }

    /// The category (VIP, REGULAR, NEW, POTENTIAL or "") of `customer` (a
    /// resource name) when it is a live customer the caller can see.
    /// Its absence is the caller's mistake (INVALID_ARGUMENT on `field`); profiles
    /// being down or slow is UNAVAILABLE with RetryInfo.
    pub async fn check_customer(&self, authorization: &str, customer: &str, field: &str) -> Result<String, Error> {
        let span = telemetry::client_span("crm.profiles.v1.CustomerService", "GetCustomer", &self.url);
        async {
            let mut request = Request::new(GetCustomerRequest { name: customer.to_owned() });
            request.set_timeout(self.timeout);
            if let Ok(value) = authorization.parse() {
                request.metadata_mut().insert("authorization", value);
            }
            telemetry::inject_context(request.metadata_mut());
            let result = self.client.clone().get_customer(request).await;
            let code = result.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
            tracing::Span::current().record("rpc.grpc.status_code", code as i32);
            match result {
                Ok(response) if response.get_ref().customer.as_ref().is_some_and(|c| c.delete_time.is_none()) => {
                    let category = response.get_ref().customer.as_ref().map_or(0, |c| c.category);
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
                            message: "the customer could not be checked because the profiles service is unavailable; retry later"
                                .to_owned(),
                            retry_after: Duration::from_secs(1),
                        }
                    }
                }),
            }
        }
        .instrument(span)
        .await
    }
}
