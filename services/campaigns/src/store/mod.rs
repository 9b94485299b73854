//! SQL for the campaigns service, and nothing else. Every function runs in a
//! tenant-scoped transaction (RLS) and also names the tenant explicitly, so
//! the planner uses the `(tenant_id, ...)` indexes — except the queue scan,
//! which reads ids and instants across tenants under its own policy.

pub mod ab_tests;
pub mod campaign_tests;
pub mod campaigns;
pub mod contact_policy;
pub mod conversions;
pub mod coupons;
pub mod customer_merges;
pub mod deliveries;
pub mod devices;
pub mod erasure;
pub mod holidays;
pub mod journey_runs;
pub mod journeys;
pub mod loyalty;
pub mod providers;
pub mod questionnaires;
pub mod queue;
pub mod receipts;
pub mod streams;
pub mod templates;
pub mod unsubscribes;
