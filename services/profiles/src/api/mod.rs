//! gRPC handlers: each authorizes, converts the request (`crate::wire`),
//! calls a use case in `crate::app`, and converts the result back.
//!
//! # Layout
//! - `customers`: CustomerService, including who may reach which record and
//!   write which field, and PII masking of every response.
//! - `listing`: ListCustomers' filter schema, `order_by` and page-token keys.
//! - `related_persons`: RelatedPersonService — the people around a customer.

mod customers;
mod listing;
mod related_persons;

pub use customers::CustomerApi;
pub use related_persons::RelatedPersonApi;
