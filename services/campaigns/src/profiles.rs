//! The profiles service as seen from campaigns: a customer's record,
//! contact details and consent, read through profiles' API (campaigns never
//! reads profiles' tables). Made through the kit's outbound client (one
//! shared channel, the caller's deadline, token and trace context, retries of
//! this read when profiles is briefly unavailable).

use std::time::Duration;

use crm_kit::{
    Error,
    client::{Caller, Peer, Retry},
};
use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use tonic::Code;
use uuid::Uuid;

use crate::domain::{
    channel::Channel,
    customer::{Consent, ConsentState, Customer, TemplateFields},
    journey::EventTrigger,
    journey_run::CustomerEvent,
    loyalty_program::Purchase,
};

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

    /// Customer `id` as the caller sees it. Its absence is the caller's
    /// mistake (INVALID_ARGUMENT on `field`); profiles being down or slow is
    /// UNAVAILABLE with RetryInfo.
    pub async fn customer(&self, caller: &Caller, id: Uuid, field: &str) -> Result<Customer, Error> {
        match self.get(caller, id).await {
            Ok(customer) => Ok(customer_of(id, customer)),
            Err(status) => Err(match status.code() {
                Code::NotFound | Code::InvalidArgument => {
                    Error::invalid(field, "UNKNOWN_CUSTOMER", format!("customers/{id} is not a customer of this tenant"))
                }
                other => peer_error(other, status.message()),
            }),
        }
    }
}

impl ProfilesClient {
    /// GetCustomer of `id`, as profiles answers it.
    async fn get(&self, caller: &Caller, id: Uuid) -> Result<pb::Customer, tonic::Status> {
        let request = pb::GetCustomerRequest { name: format!("customers/{id}") };
        let response = self
            .peer
            .call("GetCustomer", caller, Retry::Idempotent, request, |channel, request| async move {
                CustomerServiceClient::new(channel).get_customer(request).await
            })
            .await?;
        Ok(response.customer.unwrap_or_default())
    }
}

/// A page of customers matching `filter`, as ListCustomers pages them.
#[derive(Debug, Clone, Default)]
pub struct CustomerPage {
    pub customers: Vec<Customer>,
    /// Empty on the last page.
    pub next_page_token: String,
}

impl ProfilesClient {
    /// One page (up to `page_size`) of the live customers matching `filter`
    /// (AIP-160, profiles' ListCustomers syntax), after `page_token`. A filter
    /// profiles refuses is INVALID_ARGUMENT on `field`.
    pub async fn customers(
        &self,
        caller: &Caller,
        filter: &str,
        page_token: &str,
        page_size: i32,
        field: &str,
    ) -> Result<CustomerPage, Error> {
        let request = pb::ListCustomersRequest {
            page_size,
            page_token: page_token.to_owned(),
            filter: filter.to_owned(),
            order_by: String::new(),
            show_deleted: false,
            // A disabled customer is never a marketing audience member.
            show_disabled: false,
        };
        let result = self
            .peer
            .call("ListCustomers", caller, Retry::Idempotent, request, |channel, request| async move {
                CustomerServiceClient::new(channel).list_customers(request).await
            })
            .await;
        match result {
            Ok(page) => Ok(CustomerPage {
                customers: page
                    .customers
                    .into_iter()
                    .filter_map(|c| {
                        let id = crate::resources::CUSTOMER.id_of(&c.name)?;
                        Some(customer_of(id, c))
                    })
                    .collect(),
                next_page_token: page.next_page_token,
            }),
            Err(status) => Err(match status.code() {
                Code::InvalidArgument => {
                    Error::invalid(field, "INVALID_AUDIENCE", format!("profiles refused the filter: {}", status.message()))
                }
                other => peer_error(other, status.message()),
            }),
        }
    }
}

impl ProfilesClient {
    /// The customers `ids` as profiles has them now, read in batches; a
    /// customer profiles no longer knows (erased) comes back deleted.
    pub async fn customers_by_id(&self, caller: &Caller, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, Customer>, Error> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let request = pb::BatchGetCustomersRequest { names: chunk.iter().map(|id| format!("customers/{id}")).collect() };
            let result = self
                .peer
                .call("BatchGetCustomers", caller, Retry::Idempotent, request, |channel, request| async move {
                    CustomerServiceClient::new(channel).batch_get_customers(request).await
                })
                .await;
            match result {
                Ok(batch) => {
                    for c in batch.customers {
                        if let Some(id) = crate::resources::CUSTOMER.id_of(&c.name) {
                            found.insert(id, customer_of(id, c));
                        }
                    }
                }
                // One unknown name fails the batch: ask one by one.
                Err(status) if status.code() == Code::NotFound => {
                    for id in chunk {
                        let customer = match self.customer(caller, *id, "customer").await {
                            Ok(c) => c,
                            Err(Error::InvalidArgument { .. }) => Customer::gone(*id),
                            Err(other) => return Err(other),
                        };
                        found.insert(*id, customer);
                    }
                }
                Err(status) => return Err(peer_error(status.code(), status.message())),
            }
        }
        Ok(found)
    }
}

impl ProfilesClient {
    /// Withdraws customer `id`'s consent to marketing on `channel` (an
    /// unsubscribe link, an opt-out keyword). A customer already opted out,
    /// deleted or erased needs nothing.
    pub async fn opt_out(&self, caller: &Caller, id: Uuid, channel: Channel) -> Result<(), Error> {
        let withdraw = |customer: &mut pb::Customer| {
            let mut consent = customer.consent.take().unwrap_or_default();
            let slot = match channel {
                Channel::Email => &mut consent.email,
                Channel::Sms => &mut consent.sms,
                Channel::Push => &mut consent.push,
            };
            if slot.as_ref().is_some_and(|c| c.state == pb::ConsentState::OptedOut as i32) {
                return None;
            }
            *slot = Some(pb::ChannelConsent { state: pb::ConsentState::OptedOut as i32, update_time: None });
            Some(pb::Customer { consent: Some(consent), ..Default::default() })
        };
        self.change(caller, id, "consent", withdraw).await.map(|_| ())
    }

    /// Adds `add` to customer `id`'s tags and takes `remove` away (a journey
    /// step); whether the customer is still there to change (false: deleted or erased).
    pub async fn retag(&self, caller: &Caller, id: Uuid, add: &[String], remove: &[String]) -> Result<bool, Error> {
        let retag = |customer: &mut pb::Customer| {
            let mut tags: Vec<String> = customer.tags.iter().filter(|t| !remove.contains(t)).cloned().collect();
            for tag in add {
                if !tags.contains(tag) {
                    tags.push(tag.clone());
                }
            }
            (tags != customer.tags).then(|| pb::Customer { tags, ..Default::default() })
        };
        self.change(caller, id, "tags", retag).await
    }

    /// Reads customer `id`, lets `edit` make the change of field `path` (None:
    /// nothing to change), and writes it back under the read's etag — so a
    /// concurrent edit of another field is never overwritten — reading again
    /// when someone else wrote first. False when the customer is deleted or gone.
    async fn change(
        &self,
        caller: &Caller,
        id: Uuid,
        path: &str,
        edit: impl Fn(&mut pb::Customer) -> Option<pb::Customer>,
    ) -> Result<bool, Error> {
        for _ in 0..CHANGE_ATTEMPTS {
            let mut customer = match self.get(caller, id).await {
                Ok(customer) => customer,
                Err(status) if status.code() == Code::NotFound => return Ok(false),
                Err(status) => return Err(peer_error(status.code(), status.message())),
            };
            if customer.delete_time.is_some() {
                return Ok(false);
            }
            let Some(change) = edit(&mut customer) else { return Ok(true) };
            let change = pb::Customer { name: customer.name, etag: customer.etag, ..change };
            let request = pb::UpdateCustomerRequest {
                customer: Some(change),
                update_mask: Some(prost_types::FieldMask { paths: vec![path.to_owned()] }),
            };
            // Not retried by the client: a lost answer is retried here, from the read.
            let written = self
                .peer
                .call("UpdateCustomer", caller, Retry::Once, request, |channel, request| async move {
                    CustomerServiceClient::new(channel).update_customer(request).await
                })
                .await;
            match written {
                Ok(_) => return Ok(true),
                Err(status) if matches!(status.code(), Code::Aborted | Code::FailedPrecondition) => continue,
                Err(status) if status.code() == Code::NotFound => return Ok(false),
                Err(status) => return Err(peer_error(status.code(), status.message())),
            }
        }
        Err(Error::Unavailable {
            reason: "PROFILES_CONTENDED",
            message: "the customer kept changing while the change was written; retry later".to_owned(),
            retry_after: Duration::from_secs(1),
        })
    }
}

/// Read-change-write rounds of a change before giving up for now.
const CHANGE_ATTEMPTS: usize = 5;

/// A failed call to profiles that is not the caller's mistake.
fn peer_error(code: Code, message: &str) -> Error {
    match code {
        Code::PermissionDenied => Error::PermissionDenied { permission: "customers.read".to_owned() },
        Code::Unauthenticated => Error::Unauthenticated { reason: "INVALID_TOKEN", message: message.to_owned() },
        _ => {
            tracing::warn!(code = ?code, "profiles did not answer a customer read");
            Error::Unavailable {
                reason: "PROFILES_UNAVAILABLE",
                message: "customers could not be read because the profiles service is unavailable; retry later".to_owned(),
                retry_after: Duration::from_secs(1),
            }
        }
    }
}

/// The primary entry of a contact list, else the first.
fn primary<'a, T>(items: &'a [T], is_primary: impl Fn(&T) -> bool, value: impl Fn(&'a T) -> &'a str) -> Option<String> {
    items.iter().find(|i| is_primary(i)).or_else(|| items.first()).map(|i| value(i).to_owned())
}

fn consent_state(c: Option<&pb::ChannelConsent>) -> ConsentState {
    match c.map(|c| pb::ConsentState::try_from(c.state)) {
        Some(Ok(pb::ConsentState::OptedIn)) => ConsentState::OptedIn,
        Some(Ok(pb::ConsentState::OptedOut)) => ConsentState::OptedOut,
        _ => ConsentState::Unknown,
    }
}

/// The record as campaigns uses it. Profiles masks addresses for callers
/// without `pii`; a masked address is no address to send to.
fn customer_of(id: Uuid, c: pb::Customer) -> Customer {
    let email = primary(&c.emails, |e| e.primary, |e| e.address.as_str()).filter(|e| !e.contains('*'));
    let phone = primary(&c.phones, |p| p.primary, |p| p.number.as_str()).filter(|p| !p.contains('*'));
    let consent = c.consent.as_ref();
    let birthday = c.birthday.as_ref().map_or_else(String::new, |d| match (d.year, d.month, d.day) {
        (0, 0, _) | (_, 0, _) => String::new(),
        (0, m, d) => format!("{m:02}-{d:02}"),
        (y, m, d) => format!("{y:04}-{m:02}-{d:02}"),
    });
    let category = crm_kit::protoenum::short_name(
        c.category,
        |n| pb::CustomerCategory::try_from(n).ok().map(|e| e.as_str_name()),
        "CUSTOMER_CATEGORY_",
    )
    .unwrap_or_default();
    let attributes = c.attributes.as_ref().map_or(serde_json::Value::Object(Default::default()), struct_to_json);
    Customer {
        id,
        deleted: c.delete_time.is_some(),
        disabled: c.disable_time.is_some(),
        email: email.clone(),
        phone: phone.clone(),
        consent: Consent {
            email: consent_state(consent.and_then(|c| c.email.as_ref())),
            sms: consent_state(consent.and_then(|c| c.sms.as_ref())),
            push: consent_state(consent.and_then(|c| c.push.as_ref())),
            do_not_contact: consent.is_some_and(|c| c.do_not_contact),
        },
        fields: TemplateFields {
            display_name: c.display_name,
            given_name: c.given_name,
            family_name: c.family_name,
            company: c.company,
            job_title: c.job_title,
            industry: c.industry,
            locale: c.locale,
            time_zone: c.time_zone,
            category,
            tags: c.tags,
            birthday,
            email: email.unwrap_or_default(),
            phone: phone.unwrap_or_default(),
            attributes,
        },
    }
}

fn struct_to_json(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect())
}

fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        Some(Kind::BoolValue(b)) => (*b).into(),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::StringValue(s)) => s.clone().into(),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(l.values.iter().map(value_to_json).collect()),
        Some(Kind::NullValue(_)) | None => serde_json::Value::Null,
    }
}

impl ProfilesClient {
    /// Whether segment `id` is one of the caller's tenant's segments in
    /// profiles; a missing one is the caller's mistake (INVALID_ARGUMENT
    /// `UNKNOWN_SEGMENT` on `field`), profiles down is UNAVAILABLE.
    pub async fn check_segment(&self, caller: &Caller, id: &str, field: &str) -> Result<(), Error> {
        let request = pb::GetSegmentRequest { name: format!("segments/{id}") };
        let found = self
            .peer
            .call("GetSegment", caller, Retry::Idempotent, request, |channel, request| async move {
                pb::segment_service_client::SegmentServiceClient::new(channel).get_segment(request).await
            })
            .await;
        match found {
            Ok(_) => Ok(()),
            Err(status) => Err(match status.code() {
                Code::NotFound | Code::InvalidArgument => {
                    Error::invalid(field, "UNKNOWN_SEGMENT", format!("segments/{id} is not a segment of this tenant"))
                }
                other => peer_error(other, status.message()),
            }),
        }
    }
}

impl ProfilesClient {
    /// The segments (ids) customer `id` is a member of now.
    pub async fn segments_of(&self, caller: &Caller, id: Uuid) -> Result<Vec<String>, Error> {
        let request = pb::CheckMembershipRequest { customer: format!("customers/{id}") };
        let found = self
            .peer
            .call("CheckMembership", caller, Retry::Idempotent, request, |channel, request| async move {
                pb::segment_service_client::SegmentServiceClient::new(channel).check_membership(request).await
            })
            .await;
        match found {
            Ok(membership) => Ok(membership.segments.iter().filter_map(|s| s.strip_prefix("segments/")).map(str::to_owned).collect()),
            Err(status) if status.code() == Code::NotFound => Ok(Vec::new()),
            Err(status) => Err(peer_error(status.code(), status.message())),
        }
    }

    /// Whether customer `id` matches `filter` (profiles' ListCustomers syntax)
    /// now; a filter profiles refuses is INVALID_ARGUMENT on `field`.
    pub async fn matches(&self, caller: &Caller, id: Uuid, filter: &str, field: &str) -> Result<bool, Error> {
        let filter = format!("({filter}) AND name = \"customers/{id}\"");
        Ok(!self.customers(caller, &filter, "", 1, field).await?.customers.is_empty())
    }
}

/// The profiles event types journeys start on.
pub fn journey_event_types() -> Vec<String> {
    use prost::Name;
    vec![
        pb::CustomerCreated::full_name(),
        pb::SegmentMembershipChanged::full_name(),
        pb::CustomerGraded::full_name(),
        pb::TransactionRecorded::full_name(),
    ]
}

/// What an event of profiles' stream says happened to a customer, as
/// journeys start on it: a customer created, a segment entered or left, a
/// value tier changed, a purchase (refunds start nothing).
pub fn customer_events(type_name: &str, data: &[u8]) -> Vec<CustomerEvent> {
    use prost::{Message, Name};
    let customer = |name: &str| crate::resources::CUSTOMER.id_of(name);
    let found = if type_name == pb::CustomerCreated::full_name() {
        pb::CustomerCreated::decode(data).ok().and_then(|e| customer(&e.customer?.name)).map(|c| CustomerEvent {
            customer: c,
            event: EventTrigger::CustomerCreated,
            ticket: None,
        })
    } else if type_name == pb::SegmentMembershipChanged::full_name() {
        pb::SegmentMembershipChanged::decode(data).ok().and_then(|e| {
            let segment = e.segment.strip_prefix("segments/")?.to_owned();
            let event = if e.entered { EventTrigger::SegmentEntered { segment } } else { EventTrigger::SegmentLeft { segment } };
            Some(CustomerEvent { customer: customer(&e.customer)?, event, ticket: None })
        })
    } else if type_name == pb::CustomerGraded::full_name() {
        pb::CustomerGraded::decode(data)
            .ok()
            .filter(|e| e.value_tier != e.previous_value_tier)
            .and_then(|e| customer(&e.customer))
            .map(|c| CustomerEvent { customer: c, event: EventTrigger::TierChanged, ticket: None })
    } else if type_name == pb::TransactionRecorded::full_name() {
        pb::TransactionRecorded::decode(data)
            .ok()
            .and_then(|e| e.transaction)
            .filter(|t| t.kind == pb::TransactionKind::Purchase as i32)
            .and_then(|t| customer(t.name.split("/transactions/").next()?))
            .map(|c| CustomerEvent { customer: c, event: EventTrigger::TransactionCreated, ticket: None })
    } else {
        None
    };
    found.into_iter().collect()
}

/// The purchase an event of profiles' stream records, if it is one (refunds earn nothing).
pub fn purchase(type_name: &str, data: &[u8]) -> Option<Purchase> {
    use prost::{Message, Name};
    if type_name != pb::TransactionRecorded::full_name() {
        return None;
    }
    let t = pb::TransactionRecorded::decode(data).ok()?.transaction?;
    if t.kind != pb::TransactionKind::Purchase as i32 {
        return None;
    }
    let (customer, transaction) = t.name.split_once("/transactions/")?;
    let amount = crm_kit::money::to_minor(t.amount.as_ref()?, None).ok()?;
    Some(Purchase {
        customer: crate::resources::CUSTOMER.id_of(customer)?,
        transaction: Uuid::parse_str(transaction).ok()?,
        currency: amount.currency,
        minor: amount.minor,
    })
}
