//! Service tests: each spawns the profiles service on port 0 against a fresh
//! database and calls it with a real tonic client.

mod archive_imports;
mod auth;
mod communications;
mod customer_role;
mod customers;
mod disable;
mod duplicates;
mod event_crash;
mod events;
mod exports;
mod grading;
mod helpers;
mod history;
mod idempotency;
mod import_crash;
mod imports;
mod infrastructure;
mod listing;
mod merges;
mod occurrences;
mod payment_accounts;
mod premises;
mod privacy;
mod related_persons;
mod relay;
mod rename;
mod segments;
mod shutdown;
mod telemetry;
mod tenancy;
mod timeline;
mod transaction_imports;
mod transactions;
mod verification;
mod webhooks;
