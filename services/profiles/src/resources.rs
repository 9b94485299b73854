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
