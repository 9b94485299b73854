//! Who may touch which customer, and which fields each role may write.
//! Reads are governed by the kit's role → permission table, except for a
//! `customer` caller, which reaches its own record only ([`reach`]); writes
//! are further limited here per field, because an agent, a marketer and the
//! customer itself edit different parts of the same customer.

use crm_kit::auth::{Permission, Principal, Role};
use uuid::Uuid;

use crate::permissions;

/// Every writable field path of `Customer`, in proto order.
pub const WRITABLE_PATHS: &[&str] = &[
    "display_name",
    "given_name",
    "family_name",
    "kind",
    "emails",
    "phones",
    "addresses",
    "company",
    "job_title",
    "industry",
    "company_size",
    "source_channel",
    "birthday",
    "time_zone",
    "locale",
    "tags",
    "attributes",
    "owner",
    "category",
    "consent",
    "verify_time",
];

/// Fields a customer-service agent may not change: who owns the customer and
/// how marketing segments it. Everything else (identity, contact data, what the
/// customer tells them on a call, including opting out) is theirs to maintain.
const NOT_FOR_AGENTS: &[&str] = &["source_channel", "owner", "category"];

/// Fields a marketer maintains: segmentation and contact permissions.
const MARKETER_PATHS: &[&str] = &["source_channel", "tags", "attributes", "category", "consent"];

/// Fields a customer maintains on its own record: how to reach it and what
/// it agrees to. Identity, segmentation and ownership stay with the staff.
pub const CUSTOMER_PATHS: &[&str] = &["emails", "phones", "addresses", "consent"];

/// Whether `principal` may change `path` of an existing customer (whose
/// record it is has been decided by [`reach`] already).
pub fn may_write(principal: &Principal, path: &str) -> bool {
    principal.has_role(Role::Admin)
        || principal.has_role(Role::Service)
        || (principal.has_role(Role::Agent) && WRITABLE_PATHS.contains(&path) && !NOT_FOR_AGENTS.contains(&path))
        || (principal.has_role(Role::Marketer) && MARKETER_PATHS.contains(&path))
        || (principal.customer().is_some() && CUSTOMER_PATHS.contains(&path))
}

/// Whether a caller may act on one customer record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Go ahead.
    Granted,
    /// Answer NOT_FOUND: a customer asking for another customer's record
    /// learns nothing, not even that it exists.
    Hidden,
    /// Answer PERMISSION_DENIED naming this permission.
    Denied(Permission),
}

/// The one decision of this service about whose record a caller may read
/// or update: staff by `staff_permission` (CustomersRead or
/// CustomersUpdate), a `customer` caller its own record only.
pub fn reach(principal: &Principal, customer: Uuid, staff_permission: Permission) -> Reach {
    if principal.can(staff_permission) {
        return Reach::Granted;
    }
    match principal.customer() {
        Some(own) if own == customer && principal.can(permissions::CUSTOMERS_SELF) => Reach::Granted,
        Some(_) => Reach::Hidden,
        None => Reach::Denied(staff_permission),
    }
}

/// Whether `principal` sees `customer`'s emails and phones unmasked: with
/// the `pii` permission, or when they are its own.
pub fn sees_pii(principal: &Principal, customer: Uuid) -> bool {
    principal.can(permissions::PII) || principal.customer() == Some(customer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(roles: &[Role]) -> Principal {
        Principal { subject: "u".into(), tenant: uuid::Uuid::nil(), roles: roles.iter().copied().collect() }
    }

    #[test]
    fn role_field_matrix() {
        let agent = principal(&[Role::Agent]);
        let marketer = principal(&[Role::Marketer]);
        assert!(may_write(&agent, "emails") && !may_write(&agent, "category") && !may_write(&agent, "owner"));
        assert!(may_write(&marketer, "category") && !may_write(&marketer, "emails"));
        assert!(WRITABLE_PATHS.iter().all(|p| may_write(&principal(&[Role::Admin]), p)));
        assert!(!may_write(&principal(&[Role::Readonly, Role::Analyst]), "tags"));
        assert!(NOT_FOR_AGENTS.iter().chain(MARKETER_PATHS).all(|p| WRITABLE_PATHS.contains(p)));
        assert!(may_write(&agent, "consent") && !may_write(&agent, "value_tier"));
        assert!(CUSTOMER_PATHS.iter().all(|p| WRITABLE_PATHS.contains(p)));
    }

    #[test]
    fn a_customer_reaches_its_own_record_only() {
        let own = Uuid::now_v7();
        let other = Uuid::now_v7();
        let customer =
            Principal { subject: format!("customers/{own}"), tenant: Uuid::nil(), roles: [Role::Customer].into_iter().collect() };
        assert_eq!(reach(&customer, own, permissions::CUSTOMERS_UPDATE), Reach::Granted);
        assert_eq!(reach(&customer, other, permissions::CUSTOMERS_READ), Reach::Hidden);
        assert!(sees_pii(&customer, own) && !sees_pii(&customer, other));
        assert!(may_write(&customer, "emails") && may_write(&customer, "consent"));
        assert!(!may_write(&customer, "display_name") && !may_write(&customer, "category") && !may_write(&customer, "owner"));
        let readonly = principal(&[Role::Readonly]);
        assert_eq!(reach(&readonly, other, permissions::CUSTOMERS_UPDATE), Reach::Denied(permissions::CUSTOMERS_UPDATE));
        assert_eq!(reach(&readonly, other, permissions::CUSTOMERS_READ), Reach::Granted);
        assert!(!sees_pii(&readonly, other));
    }
}
