//! `crm-campaigns`: the marketing domain of the CRM suite — message
//! templates, the tenant's delivery providers, transactional notices and the
//! delivery ledger that sends them exactly once, crash or not.
//!
//! Serves `crm.campaigns.v1`: TemplateService (with RenderPreview),
//! ProviderService, DeliveryService (SendNotice and the sent log),
//! CampaignService, ContactPolicyService, UnsubscribeService (links followed
//! without a login), and its event stream.
//!
//! # Layout
//! Data flows `api` → `app` → `domain` / `store`; `jobs` call `app`.
//! - `config`, `startup`: flags and wiring.
//! - `api`: gRPC handlers — authorize, convert, call `app`, convert back.
//! - `app`: use cases, one transaction each, with the outbox event of every change.
//! - `domain`: pure rules — channels, the customer as a recipient, templates
//!   (checking, sandboxed rendering), SMS length, the contact policy, the
//!   delivery lifecycle and retry timing.
//! - `store`: SQL.
//! - `jobs::delivery`: the worker that claims, sends and records; the other
//!   jobs snapshot campaigns, follow tickets' stream and carry opt-outs to profiles.
//! - `channels`: senders per provider (SMTP), paced per provider.
//! - `links`: signed unsubscribe links.
//! - `wire`: proto ⇄ domain conversions.
//! - `resources`: resource names and types.
//! - `profiles`: the client of the profiles service.
//! - `tickets`: what tickets' event stream says for the contact policy.

pub mod api;
pub mod app;
pub mod channels;
pub mod config;
pub mod domain;
pub mod jobs;
pub mod links;
pub mod permissions;
pub mod profiles;
pub mod resources;
pub mod startup;
pub mod store;
pub mod tickets;
pub mod wire;
