//! The resource types of this service (names `{collection}/{uuid}` and the
//! type in error details), in one place for handlers, use cases and conversions.

use crm_kit::resource::{ChildResourceType, ResourceType};

/// `customers/{id}`, type `profiles.crm/Customer` in error details.
pub const CUSTOMER: ResourceType = ResourceType::new("profiles.crm/Customer", "customers");
/// `customers/{customer}/relatedPersons/{id}`.
pub const RELATED_PERSON: ChildResourceType = ChildResourceType::new("profiles.crm/RelatedPerson", CUSTOMER, "relatedPersons");
/// `customers/{customer}/paymentAccounts/{id}`.
pub const PAYMENT_ACCOUNT: ChildResourceType = ChildResourceType::new("profiles.crm/PaymentAccount", CUSTOMER, "paymentAccounts");
/// `customers/{customer}/communications/{id}`.
pub const COMMUNICATION: ChildResourceType = ChildResourceType::new("profiles.crm/Communication", CUSTOMER, "communications");
/// `premises/{id}`.
pub const PREMISES: ResourceType = ResourceType::new("profiles.crm/Premises", "premises");
/// `premises/{premises}/occupancies/{id}`.
pub const OCCUPANCY: ChildResourceType = ChildResourceType::new("profiles.crm/Occupancy", PREMISES, "occupancies");
/// `customers/{customer}/occurrences/{id}`.
pub const OCCURRENCE: ChildResourceType = ChildResourceType::new("profiles.crm/Occurrence", CUSTOMER, "occurrences");
/// `customers/{customer}/transactions/{id}`.
pub const TRANSACTION: ChildResourceType = ChildResourceType::new("profiles.crm/Transaction", CUSTOMER, "transactions");

/// `customers/{customer}/spending`, the customer's spending (a singleton).
pub fn spending_name(customer: uuid::Uuid) -> String {
    format!("{}/spending", CUSTOMER.name(customer))
}

/// The customer of a spending name (request field `field`), or INVALID_ARGUMENT.
pub fn parse_spending(name: &str, field: &str) -> Result<uuid::Uuid, crm_kit::Error> {
    match name.strip_suffix("/spending") {
        Some(customer) => CUSTOMER.parse(customer, field),
        None => Err(crm_kit::Error::invalid(field, "INVALID_NAME", "expected customers/{customer}/spending")),
    }
}
/// `customers/{customer}/changes/{id}`: one field of the customer's history.
pub const CUSTOMER_CHANGE: ChildResourceType = ChildResourceType::new("profiles.crm/CustomerChange", CUSTOMER, "changes");
/// `customers/{customer}/renameRequests/{id}`.
pub const RENAME_REQUEST: ChildResourceType = ChildResourceType::new("profiles.crm/RenameRequest", CUSTOMER, "renameRequests");
/// `customerMerges/{id}`: a merge of duplicates, kept to undo it.
pub const CUSTOMER_MERGE: ResourceType = ResourceType::new("profiles.crm/CustomerMerge", "customerMerges");
/// `importJobs/{id}`: an upload and its import runs.
pub const IMPORT_JOB: ResourceType = ResourceType::new("profiles.crm/ImportJob", "importJobs");
/// `exports/{id}`: the audit entry of an export.
pub const EXPORT: ResourceType = ResourceType::new("profiles.crm/Export", "exports");
/// `segments/{id}`.
pub const SEGMENT: ResourceType = ResourceType::new("profiles.crm/Segment", "segments");
