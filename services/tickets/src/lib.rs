//! `crm-tickets`: the service domain of the CRM suite — problems, requests and
//! complaints from every channel, handled through an explicit lifecycle, with
//! SLAs that run on business hours.
//!
//! Serves `crm.tickets.v1`: TicketService (intake with a customer check
//! against profiles, lifecycle, assignment, merge, comments, timeline),
//! TeamService (dispatch), ClassificationRuleService, SlaPolicyService
//! (business calendars and SLA policies), FollowUpService, SurveyService,
//! ArticleService (knowledge base), ReportService, and its event stream.
//!
//! # Layout
//! Data flows `api` → `app` → `domain` / `store`; `jobs` call `app`.
//! - `config`, `startup`: flags and wiring.
//! - `api`: gRPC handlers — authorize, convert, call `app`, convert back.
//! - `app`: use cases, one transaction each, carrying out what `domain` decides.
//! - `domain`: pure rules — the ticket and its state machine (`status`,
//!   `ticket`), business-hours `calendar`, `sla` clocks and escalation,
//!   `classify`, `dispatch`, `merge`, `access`, `search`.
//! - `store`: SQL.
//! - `jobs::sla`: the SLA job's timer loop.
//! - `wire`: proto ⇄ domain conversions (responses and events).
//! - `resources`: resource names and types.
//! - `profiles`: the client of the profiles service.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod jobs;
pub mod permissions;
pub mod profiles;
pub mod resources;
pub mod startup;
pub mod store;
pub mod wire;
