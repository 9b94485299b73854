//! The resource types of this service (names `{collection}/{uuid}` and the
//! type in error details), in one place for handlers, use cases and conversions.

use crm_kit::resource::ResourceType;

/// `tickets/{id}`.
pub const TICKET: ResourceType = ResourceType::new("tickets.crm/Ticket", "tickets");
/// `teams/{id}`.
pub const TEAM: ResourceType = ResourceType::new("tickets.crm/Team", "teams");
/// `customers/{id}`: the profiles service's customers, referenced by tickets.
pub const CUSTOMER: ResourceType = ResourceType::new("profiles.crm/Customer", "customers");
/// `followUps/{id}`.
pub const FOLLOW_UP: ResourceType = ResourceType::new("tickets.crm/FollowUp", "followUps");
/// `surveys/{id}`.
pub const SURVEY: ResourceType = ResourceType::new("tickets.crm/Survey", "surveys");
/// `articles/{id}`.
pub const ARTICLE: ResourceType = ResourceType::new("tickets.crm/Article", "articles");
/// `slaPolicies/{id}`.
pub const SLA_POLICY: ResourceType = ResourceType::new("tickets.crm/SlaPolicy", "slaPolicies");
/// `businessCalendars/{id}`.
pub const CALENDAR: ResourceType = ResourceType::new("tickets.crm/BusinessCalendar", "businessCalendars");
/// `classificationRules/{id}`.
pub const RULE: ResourceType = ResourceType::new("tickets.crm/ClassificationRule", "classificationRules");
