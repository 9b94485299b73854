//! Pure ticket-domain logic. No I/O.

pub mod access;
pub mod calendar;
pub mod classify;
pub mod dispatch;
pub mod merge;
pub mod search;
pub mod sla;
pub mod status;
pub mod ticket;
