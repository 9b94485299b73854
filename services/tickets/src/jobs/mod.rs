//! Background work of the tickets service.

pub mod erasure;
pub mod sla;
