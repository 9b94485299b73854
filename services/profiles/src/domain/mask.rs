//! Masking of personal data for callers without the `pii` permission and for
//! logs: the kit's, shared with the other services.

pub use crm_kit::mask::{email, phone};
