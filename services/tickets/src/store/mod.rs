//! SQL for the tickets service, and nothing else. Every function runs in a
//! tenant-scoped transaction (RLS) and names the tenant explicitly too.

mod tickets;

pub use tickets::{
    CommentRow, EventRow, NewTicket, StatusChange, TicketRow, append_event, find, insert, insert_comment, list, list_comments, list_events,
    set_assignment, set_delete_time, set_first_response, set_status, update_fields,
};
