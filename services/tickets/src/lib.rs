//! `crm-tickets`: the service domain of the CRM suite — problems, requests and
//! complaints from every channel, handled through an explicit lifecycle, with
//! SLAs that run on business hours.
//!
//! Served today: `crm.tickets.v1.TicketService` (intake with a customer check
//! against profiles, get, list, transitions, comments, the audit timeline) and
//! its event stream. Dispatch, SLA policies, follow-ups, surveys, the knowledge
//! base and reports build on the domain modules here (issue 3).
//!
//! # Layout
//! - `config`, `startup`: flags and wiring.
//! - `api`: gRPC handlers and conversions.
//! - `profiles`: the client of the profiles service.
//! - `domain::status`: the ticket state machine.
//! - `domain::calendar`: business-hours calendars and exact business-time arithmetic.
//! - `domain::sla`: an SLA clock that pauses and resumes.
//! - `jobs::sla`: records SLA warnings and breaches and escalates, safely across replicas.
//! - `store`: SQL.

pub mod api;
pub mod config;
pub mod domain;
pub mod jobs;
pub mod profiles;
pub mod startup;
pub mod store;
