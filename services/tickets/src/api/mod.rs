//! gRPC handlers, dispatch, and proto ⇄ store conversions.

mod access;
mod articles;
mod convert;
mod dispatch;
mod follow_ups;
mod merge;
mod reports;
mod rules;
mod sla;
mod sla_tracking;
mod surveys;
mod teams;
mod tickets;

pub use articles::ArticleApi;
pub(crate) use convert::{parse_team_name, ticket_to_proto};
pub(crate) use dispatch::drain_queue;
pub use follow_ups::FollowUpApi;
pub use reports::ReportApi;
pub use rules::RuleApi;
pub use sla::SlaApi;
pub use surveys::SurveyApi;
pub use teams::TeamApi;
pub use tickets::TicketApi;
