//! Whose an imported row is: the customer column of a sheet of transactions,
//! related persons or occupancies, read into a reference that the batch
//! looks up (by resource name, email, phone or external id).

use uuid::Uuid;

use super::import::RowProblem;
use crate::{
    domain::{fields, import::international},
    resources::CUSTOMER,
};

/// How a sheet names a row's customer: the kind of its customer column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerColumn {
    /// "customers/{id}", as an export writes it.
    Name,
    Email,
    Phone,
    /// The customer attribute "external_id".
    ExternalId,
}

impl CustomerColumn {
    /// The field name a mapping gives it.
    pub fn field(self) -> &'static str {
        match self {
            Self::Name => "customer",
            Self::Email => "customer_email",
            Self::Phone => "customer_phone",
            Self::ExternalId => "customer_external_id",
        }
    }
}

/// A field vocabulary (of transactions, related persons, occupancies) whose
/// rows name their customer in one of its fields.
pub trait CustomerField: Copy + PartialEq {
    /// The kind of customer column this field is, if it is one.
    fn customer_column(self) -> Option<CustomerColumn>;
}

/// Implements [`CustomerField`] for a field enum with the four customer
/// variants `Customer`, `CustomerEmail`, `CustomerPhone`, `CustomerExternalId`.
macro_rules! customer_field {
    ($field:ty) => {
        impl $crate::wire::customer_ref::CustomerField for $field {
            fn customer_column(self) -> Option<$crate::wire::customer_ref::CustomerColumn> {
                use $crate::wire::customer_ref::CustomerColumn;
                match self {
                    Self::Customer => Some(CustomerColumn::Name),
                    Self::CustomerEmail => Some(CustomerColumn::Email),
                    Self::CustomerPhone => Some(CustomerColumn::Phone),
                    Self::CustomerExternalId => Some(CustomerColumn::ExternalId),
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use customer_field;

/// How a sheet whose rows name their customer is read.
#[derive(Debug, Clone)]
pub struct Sheet<F> {
    /// (0-based column, field) for each mapped column.
    pub mapping: Vec<(usize, F)>,
    /// Put before national phone numbers, e.g. "86".
    pub calling_code: String,
}

/// The customer column of `mapping`: its kind and where it is (None: none is mapped).
pub fn customer_of<F: CustomerField>(mapping: &[(usize, F)]) -> Option<(CustomerColumn, usize)> {
    mapping.iter().find_map(|(column, field)| field.customer_column().map(|kind| (kind, *column)))
}

impl<F: CustomerField> Sheet<F> {
    /// The customer column: its kind and where it is.
    pub fn customer_column(&self) -> Option<(CustomerColumn, usize)> {
        customer_of(&self.mapping)
    }

    /// Where `field` is.
    pub fn column_of(&self, field: F) -> Option<usize> {
        self.mapping.iter().find(|(_, f)| *f == field).map(|(c, _)| *c)
    }
}

/// Whose a row is, as its customer cell says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerRef {
    Name(Uuid),
    /// A normalised email address.
    Email(String),
    /// An E.164 phone number.
    Phone(String),
    ExternalId(String),
}

impl CustomerRef {
    /// The reference as one text, normalised (the same customer written
    /// "13800138000" or "+86 138 0013 8000" is one key).
    pub fn key(&self) -> String {
        match self {
            Self::Name(id) => format!("n:{id}"),
            Self::Email(email) => format!("e:{email}"),
            Self::Phone(phone) => format!("p:{phone}"),
            Self::ExternalId(id) => format!("x:{id}"),
        }
    }
}

/// The customer `cell` (in `column`, of kind `kind`) names, national phone
/// numbers with `calling_code` in front; the problem when it names none.
pub fn read_customer_ref(kind: CustomerColumn, cell: &str, column: usize, calling_code: &str) -> Result<CustomerRef, RowProblem> {
    let problem =
        |reason: &'static str, message: String| RowProblem { column: Some(column), field: kind.field().to_owned(), reason, message };
    match kind {
        CustomerColumn::Name => CUSTOMER
            .id_of(cell)
            .map(CustomerRef::Name)
            .ok_or_else(|| problem("INVALID_CUSTOMER", "a customer's resource name, customers/{id}".into())),
        CustomerColumn::Email => fields::email(cell).map(CustomerRef::Email).map_err(|(reason, message)| problem(reason, message)),
        CustomerColumn::Phone => {
            fields::phone(&international(cell, calling_code)).map(CustomerRef::Phone).map_err(|(reason, message)| problem(reason, message))
        }
        CustomerColumn::ExternalId => Ok(CustomerRef::ExternalId(cell.to_owned())),
    }
}

/// The problem of a row whose customer cell (`at`: the customer column, if one is mapped) is blank.
pub fn blank_customer(at: Option<(CustomerColumn, usize)>) -> RowProblem {
    RowProblem {
        column: at.map(|(_, column)| column),
        field: at.map_or("customer", |(kind, _)| kind.field()).to_owned(),
        reason: "REQUIRED",
        message: "whose it is: the customer column is blank".to_owned(),
    }
}
