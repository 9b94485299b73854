//! gRPC handlers, dispatch, and proto ⇄ store conversions.

mod convert;
mod dispatch;
mod rules;
mod teams;
mod tickets;

pub use rules::RuleApi;
pub use teams::TeamApi;
pub use tickets::TicketApi;
