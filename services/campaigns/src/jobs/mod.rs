//! Background work of the campaigns service.

pub mod ab_tests;
pub mod campaigns;
pub mod complaints;
pub mod delivery;
pub mod erasure;
pub mod journeys;
pub mod loyalty;
pub mod occasions;
pub mod ticket_answers;
pub mod unsubscribes;

/// The kit's job loop: a round now, then one every poll interval.
pub use crm_kit::jobs::every;
