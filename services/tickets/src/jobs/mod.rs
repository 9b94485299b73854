//! Background work of the tickets service.

pub mod sla;
