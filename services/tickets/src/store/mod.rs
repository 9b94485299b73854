//! SQL for the tickets service, and nothing else. Every function runs in a
//! tenant-scoped transaction (RLS) and names the tenant explicitly too.

pub mod articles;
pub mod customer_merges;
pub mod erasure;
pub mod follow_ups;
pub mod reports;
mod rules;
mod settings;
mod sla;
pub mod surveys;
mod teams;
mod tickets;

pub use rules::{RuleRow, delete_rule, find_rule, insert_rule, list_rules, rules_page, update_rule};
pub use settings::{SettingsRow, follow_up_delay_secs, lock_settings, save_settings, settings};
pub use sla::{
    CalendarRow, PolicyRow, StoredHours, calendar_users, delete_calendar, delete_policy, find_calendar, find_policy, insert_calendar,
    insert_policy, list_calendars, list_policies, lock_calendar, policy_for, update_calendar, update_policy,
};
pub use teams::{
    MemberRow, TeamRow, delete_member, find_team, insert_team, list_teams, lock_dispatch, members, members_page, set_last_assigned,
    teams_of, update_team, upsert_member,
};
pub use tickets::{
    CommentRow, EventRow, TICKETS, append_event, due_timers, escalate, insert, insert_comment, list, list_comments, list_events,
    lock_in_order, lock_many, move_comments, queued, running_on_calendar, set_answer_article, set_assignment, set_first_response,
    set_merged, set_sla, set_status, set_tags, update_fields,
};
