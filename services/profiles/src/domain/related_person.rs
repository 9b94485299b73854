//! A related person's writable data after validation (客户成员).

use uuid::Uuid;

use super::{
    customer::{EmailEntry, PhoneEntry},
    fields::Birthday,
};

/// A related person as a request describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedPersonDraft {
    /// SPOUSE, CHILD, PARENT, RELATIVE, COLLEAGUE, ASSISTANT or OTHER.
    pub relation: String,
    pub display_name: String,
    pub phones: Vec<PhoneEntry>,
    pub emails: Vec<EmailEntry>,
    /// "", FEMALE, MALE or OTHER.
    pub gender: String,
    pub birthday: Option<Birthday>,
    pub note: String,
    /// Their own customer record, when they are a customer too.
    pub linked_customer: Option<Uuid>,
}
