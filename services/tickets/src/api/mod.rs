//! gRPC handlers, dispatch, and proto ⇄ store conversions.

mod convert;
mod dispatch;
mod teams;
mod tickets;

pub use teams::TeamApi;
pub use tickets::TicketApi;
