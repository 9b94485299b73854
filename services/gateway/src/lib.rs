//! `crm-gateway`: REST/JSON in front of the CRM gRPC services, generated at
//! start-up from the `google.api.http` rules in the descriptor set.
//!
//! # Layout
//! - [`routes`]: path templates and the route table (pure).
pub mod routes;
