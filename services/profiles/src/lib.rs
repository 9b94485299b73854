//! `crm-profiles`: the customer domain of the CRM suite — the customer archive
//! served as `crm.profiles.v1.CustomerService`, with its events streamed by
//! `crm.events.v1.EventService`.
//!
//! # Layout
//! - `config`: flags and environment.
//! - `startup`: wires the kit, the handlers and the event stream.
//! - `api`: gRPC handlers, list filters and ordering.
//! - `domain`: validated field types, the customer draft, masking, field-level write rules.
//! - `store`: SQL.
//! - `wire`: proto ⇄ domain conversions.
//! - `resources`: the customer resource name and type.

pub mod api;
pub mod config;
pub mod domain;
pub mod resources;
pub mod startup;
pub mod store;
pub mod wire;
