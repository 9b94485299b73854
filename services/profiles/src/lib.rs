//! `crm-profiles`: the customer domain of the CRM suite — the customer archive
//! served as `crm.profiles.v1.CustomerService` and the archive records'
//! services (related persons, payment accounts, communications, occurrences,
//! premises), with its events streamed by `crm.events.v1.EventService`.
//!
//! # Layout
//! Data flows `api` → `app` → `domain` / `store`; `wire` and `resources` sit
//! below `api` and `app` and import neither.
//! - `config`, `startup`: flags and wiring.
//! - `api`: gRPC handlers — authorize, convert, call `app`, convert back;
//!   ListCustomers' filter schema, ordering and page-token keys.
//! - `app`: use cases, one transaction each, with the outbox event of every
//!   change: creation with request-id replay, updates, soft deletion and
//!   undeletion (email addresses unique among live customers), reads.
//! - `domain`: pure rules — validated field types, the customer draft and
//!   its consent timestamps, masking, who may reach and write what.
//! - `store`: SQL.
//! - `jobs`: background work calling `app` (verification reminders).
//! - `wire`: proto ⇄ domain conversions (requests, responses and events).
//! - `resources`: the resource names and types.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod jobs;
pub mod permissions;
pub mod resources;
pub mod startup;
pub mod store;
pub mod wire;
