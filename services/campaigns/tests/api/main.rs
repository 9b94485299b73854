//! Service tests: each spawns the campaigns service on port 0 against a fresh
//! database, next to a real profiles process and a real SMTP server; the
//! crash test runs the campaigns binary itself and kills it.

mod callbacks;
mod campaign_crash;
mod campaign_tests;
mod campaigns;
mod complaints;
mod coupons;
mod crash;
mod dkim;
mod erasure;
mod helpers;
mod holidays;
mod journey_crash;
mod journey_runs;
mod journeys;
mod loyalty;
mod loyalty_program;
mod notices;
mod policy;
mod providers;
mod push;
mod questionnaires;
mod sent_log;
mod sms;
mod templates;
mod tracking;
mod unsubscribe;
