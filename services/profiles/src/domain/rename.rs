//! Renaming with approval (客户更名单): the names a rename request asks for.

/// The customer fields a rename changes; with approval on, UpdateCustomer may not change them.
pub const NAME_FIELDS: [&str; 3] = ["display_name", "given_name", "family_name"];

/// A rename request as a request describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameDraft {
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub reason: String,
}
