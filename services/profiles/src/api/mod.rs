//! gRPC handlers; proto ⇄ domain conversions are in `crate::wire`.

mod customers;
mod listing;

pub use customers::CustomerApi;
