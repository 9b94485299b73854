//! gRPC handlers: each authorizes, converts the request (`crate::wire`),
//! calls a use case in `crate::app` (or, for plain configuration reads and
//! writes, the store in one transaction), and converts the result back.

mod articles;
mod customer_view;
mod follow_ups;
mod merge;
mod reports;
mod rules;
mod settings;
mod sla;
mod surveys;
mod teams;
mod tickets;

pub use articles::ArticleApi;
pub use follow_ups::FollowUpApi;
pub use reports::ReportApi;
pub use rules::RuleApi;
pub use settings::SettingsApi;
pub use sla::SlaApi;
pub use surveys::SurveyApi;
pub use teams::TeamApi;
pub use tickets::TicketApi;
