//! gRPC handlers and proto ⇄ domain conversions.

mod convert;
mod customers;
mod listing;

pub use customers::CustomerApi;
