//! Webhooks: a tenant's subscriptions to the service's events, delivered
//! outward as signed HTTP POSTs (Standard Webhooks), in position order, at
//! least once, with retries for days and replay from the outbox. The kit
//! serves `crm.webhooks.v1.WebhookService` and runs the dispatcher in every
//! service, so each service delivers its own events without code of its own.
//!
//! - [`api`]: the gRPC service (administrators only).
//! - [`dispatch`]: finding due webhooks and delivering them, one worker each.
//! - [`policy`]: what an answer means, retry spacing, type filters (pure).
//! - [`signing`]: secrets and signatures (pure).
//! - [`envelope`]: the JSON body.
//! - [`store`]: the SQL of webhooks, cursors and attempts.

pub mod api;
pub mod dispatch;
pub mod envelope;
pub mod policy;
pub mod signing;
pub mod store;

pub use self::policy::like_pattern;
use crate::{
    auth::Permission,
    resource::{ChildResourceType, ResourceType},
};

/// `webhooks/{id}`.
pub const WEBHOOK: ResourceType = ResourceType::new("webhooks.crm/Webhook", "webhooks");
/// `webhooks/{id}/deliveries/{id}`.
pub const WEBHOOK_DELIVERY: ChildResourceType = ChildResourceType::new("webhooks.crm/WebhookDelivery", WEBHOOK, "deliveries");
/// Configure the tenant's webhooks and read their delivery log: administrators only.
pub const WEBHOOKS_MANAGE: Permission = Permission::new("webhooks.manage", &[]);
