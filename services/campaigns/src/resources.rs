//! The resource types of this service (names `{collection}/{uuid}` and the
//! type in error details), in one place for handlers, use cases and conversions.

use crm_kit::resource::{ChildResourceType, ResourceType};

/// `templates/{id}`.
pub const TEMPLATE: ResourceType = ResourceType::new("campaigns.crm/Template", "templates");
/// `providers/{id}`.
pub const PROVIDER: ResourceType = ResourceType::new("campaigns.crm/Provider", "providers");
/// `campaigns/{id}`.
pub const CAMPAIGN: ResourceType = ResourceType::new("campaigns.crm/Campaign", "campaigns");
/// `deliveries/{id}`.
pub const DELIVERY: ResourceType = ResourceType::new("campaigns.crm/Delivery", "deliveries");
/// `devices/{id}`.
pub const DEVICE: ResourceType = ResourceType::new("campaigns.crm/Device", "devices");
/// `journeys/{id}`.
pub const JOURNEY: ResourceType = ResourceType::new("campaigns.crm/Journey", "journeys");
/// `journeys/{journey}/runs/{id}`.
pub const JOURNEY_RUN: ChildResourceType = ChildResourceType::new("campaigns.crm/JourneyRun", JOURNEY, "runs");
/// `coupons/{id}`.
pub const COUPON: ResourceType = ResourceType::new("campaigns.crm/Coupon", "coupons");
/// `questionnaires/{id}`.
pub const QUESTIONNAIRE: ResourceType = ResourceType::new("campaigns.crm/Questionnaire", "questionnaires");
/// `customers/{id}`, owned by profiles.
pub const CUSTOMER: ResourceType = ResourceType::new("profiles.crm/Customer", "customers");
