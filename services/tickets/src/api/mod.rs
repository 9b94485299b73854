//! gRPC handlers and proto ⇄ store conversions.

mod convert;
mod tickets;

pub use tickets::TicketApi;
