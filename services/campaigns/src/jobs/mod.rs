//! Background work of the campaigns service.

pub mod delivery;
