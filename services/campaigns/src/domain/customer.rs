//! What campaigns knows of a customer when it renders and addresses a
//! message: a snapshot of the profiles record (read through profiles' API),
//! the fields templates may use under `customer.*`, and consent.

use serde::Serialize;
use uuid::Uuid;

/// A customer as campaigns sees one message's recipient.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customer {
    /// Id in profiles.
    pub id: Uuid,
    /// Whether the record is soft-deleted.
    pub deleted: bool,
    /// Whether the customer is disabled (禁用): no marketing.
    pub disabled: bool,
    /// Primary (else first) email address.
    pub email: Option<String>,
    /// Primary (else first) phone number.
    pub phone: Option<String>,
    /// Consent per channel.
    pub consent: Consent,
    /// The fields templates read.
    pub fields: TemplateFields,
}

impl Customer {
    /// A customer profiles no longer knows (erased): nothing is sent to them.
    pub fn gone(id: Uuid) -> Self {
        Self { id, deleted: true, ..Self::default() }
    }
}

/// The customer fields a template may use, as `customer.<field>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TemplateFields {
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub company: String,
    pub job_title: String,
    pub industry: String,
    pub locale: String,
    pub time_zone: String,
    pub category: String,
    pub tags: Vec<String>,
    /// "YYYY-MM-DD", "MM-DD" when the year is unknown, or empty.
    pub birthday: String,
    pub email: String,
    pub phone: String,
    /// Free-form attributes (`customer.attributes.plan`).
    pub attributes: serde_json::Value,
}

/// The names `customer.<name>` a template may use: [`TemplateFields`]' fields.
pub const TEMPLATE_FIELDS: &[&str] = &[
    "display_name",
    "given_name",
    "family_name",
    "company",
    "job_title",
    "industry",
    "locale",
    "time_zone",
    "category",
    "tags",
    "birthday",
    "email",
    "phone",
    "attributes",
];

/// A channel's opt-in state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConsentState {
    /// Never asked.
    #[default]
    Unknown,
    /// Agreed.
    OptedIn,
    /// Refused or withdrew.
    OptedOut,
}

/// Consent of a customer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consent {
    pub email: ConsentState,
    pub sms: ConsentState,
    pub push: ConsentState,
    /// No marketing on any channel.
    pub do_not_contact: bool,
}
