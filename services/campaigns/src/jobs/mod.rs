//! Background work of the campaigns service.

pub mod campaigns;
pub mod complaints;
pub mod delivery;
pub mod erasure;
pub mod loyalty;
pub mod unsubscribes;
