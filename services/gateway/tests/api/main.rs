//! End-to-end tests of the gateway: real crm-profiles and crm-tickets
//! processes on fresh databases, the gateway in-process on port 0, plain HTTP
//! (`openapi` needs no backend).
//! Scenarios with the gateway as a process too (the suite trace test) are in
//! `tests/` at the repository root (crate crm-e2e).

mod customer_role;
mod customers;
mod errors;
mod files;
mod grpcweb;
mod health;
mod helpers;
mod limits;
mod openapi;
mod overview;
mod protocol;
mod tickets;
mod webhooks;
