//! Background work of the campaigns service.

pub mod ab_tests;
pub mod campaigns;
pub mod complaints;
pub mod delivery;
pub mod erasure;
pub mod journeys;
pub mod loyalty;
pub mod occasions;
pub mod unsubscribes;
