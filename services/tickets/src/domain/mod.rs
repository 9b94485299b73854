//! Pure ticket-domain logic. No I/O.

pub mod calendar;
pub mod classify;
pub mod dispatch;
pub mod search;
pub mod sla;
pub mod status;
