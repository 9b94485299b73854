//! Service tests: each spawns the tickets service on port 0 against a fresh
//! database, next to a real profiles process with its own database.

mod aip;
mod articles;
mod classification;
mod customer_merges;
mod customer_role;
mod erasure;
mod follow_ups;
mod helpers;
mod merge;
mod reports;
mod scenario;
mod settings;
mod sla;
mod status_history;
mod surveys;
mod teams;
mod tenancy;
mod tickets;
