//! `crm-tickets`: the service domain of the CRM suite — problems, requests and
//! complaints from every channel, handled by priority within SLAs that run on
//! business hours.
//!
//! This crate currently holds the pure domain rules the service is built on;
//! the gRPC service, its store and jobs follow (see issue 3).
//!
//! # Layout
//! - `domain::status`: the ticket state machine and whether the SLA clock runs.
//! - `domain::calendar`: business-hours calendars (time zone, weekly hours, holidays) and exact business-time arithmetic.
//! - `domain::sla`: an SLA clock that pauses and resumes, with due times, warnings and breaches.

pub mod domain;
