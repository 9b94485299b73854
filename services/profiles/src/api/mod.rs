//! gRPC handlers: each authorizes, converts the request (`crate::wire`),
//! calls a use case in `crate::app`, and converts the result back.
//!
//! # Layout
//! - `customers`: CustomerService, including who may reach which record and
//!   write which field, and PII masking of every response.
//! - `listing`: ListCustomers' filter schema, `order_by` and page-token keys.

mod customers;
mod listing;

pub use customers::CustomerApi;
