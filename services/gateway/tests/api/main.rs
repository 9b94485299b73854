//! End-to-end tests of the gateway: real crm-profiles and crm-tickets
//! processes on fresh databases, the gateway in-process on port 0, plain HTTP.

mod customer_role;
mod customers;
mod errors;
mod grpcweb;
mod health;
mod helpers;
mod limits;
mod openapi;
mod overview;
mod protocol;
mod tickets;
mod trace;
