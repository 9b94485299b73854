//! What callers of the profiles service may do, and which roles grant it
//! (`admin` holds everything; see `crm_kit::auth::Permission`). Field-level
//! write rules and PII masking build on these in `domain::access`.

use crm_kit::auth::{Permission, Role};

/// Get, List and BatchGet customers.
pub const CUSTOMERS_READ: Permission =
    Permission::new("customers.read", &[Role::Service, Role::Agent, Role::Marketer, Role::Analyst, Role::Readonly]);
/// Create customers.
pub const CUSTOMERS_CREATE: Permission = Permission::new("customers.create", &[Role::Service, Role::Agent]);
/// Update customers (further limited per field in `domain::access`).
pub const CUSTOMERS_UPDATE: Permission = Permission::new("customers.update", &[Role::Service, Role::Agent, Role::Marketer]);
/// Disable and enable customers (禁用/启用).
pub const CUSTOMERS_DISABLE: Permission = Permission::new("customers.disable", &[Role::Service, Role::Agent]);
/// Delete and undelete customers.
pub const CUSTOMERS_DELETE: Permission = Permission::new("customers.delete", &[]);
/// Merge duplicate customers and undo merges.
pub const CUSTOMERS_MERGE: Permission = Permission::new("customers.merge", &[Role::Agent]);
/// Read one's own record and update its contact details and consent (the
/// `customer` role; `domain::access` checks the record is the caller's).
pub const CUSTOMERS_SELF: Permission = Permission::new("customers.self", &[Role::Customer]);
/// Read a customer's archive records (related persons, ...); a customer reads
/// their own through `customers.self`.
pub const ARCHIVE_READ: Permission =
    Permission::new("archive.read", &[Role::Service, Role::Agent, Role::Marketer, Role::Analyst, Role::Readonly]);
/// Add, change and remove a customer's archive records.
pub const ARCHIVE_WRITE: Permission = Permission::new("archive.write", &[Role::Service, Role::Agent]);
/// Upload spreadsheets, dry-run them and read the jobs and the rows they refused; a real
/// run also needs `customers.create` (and for an upsert `customers.update` and each mapped field).
pub const CUSTOMERS_IMPORT: Permission = Permission::new("customers.import", &[Role::Agent, Role::Marketer]);
/// Export customers (by filter or segment) and transactions (by time range)
/// as CSV or XLSX; personal data unmasked only with `pii`. Every export is audited.
pub const CUSTOMERS_EXPORT: Permission = Permission::new("customers.export", &[Role::Agent, Role::Marketer, Role::Analyst]);
/// Read the audit of exports: who took which data out, when (administrators only).
pub const AUDIT_READ: Permission = Permission::new("audit.read", &[]);
/// Create, change and remove segments and static segments' members.
pub const SEGMENTS_WRITE: Permission = Permission::new("segments.write", &[Role::Agent, Role::Marketer]);
/// Export everything held about a customer and erase their personal data (GDPR / PIPL; administrators only).
pub const PRIVACY_MANAGE: Permission = Permission::new("privacy.manage", &[]);
/// Approve or reject requests to rename a customer (administrators only).
pub const CUSTOMERS_APPROVE_RENAME: Permission = Permission::new("customers.approve_rename", &[]);
/// Set the tenant's data-verification period and rename approval (administrators only).
pub const SETTINGS_CONFIGURE: Permission = Permission::new("settings.configure", &[]);
/// See emails and phone numbers unmasked, and filter by them.
pub const PII: Permission = Permission::new("pii", &[Role::Service, Role::Agent, Role::Marketer]);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crm_kit::auth::held_by;

    use super::*;

    const ALL: [Permission; 17] = [
        CUSTOMERS_READ,
        CUSTOMERS_IMPORT,
        CUSTOMERS_EXPORT,
        AUDIT_READ,
        CUSTOMERS_MERGE,
        CUSTOMERS_CREATE,
        CUSTOMERS_UPDATE,
        CUSTOMERS_DISABLE,
        CUSTOMERS_DELETE,
        CUSTOMERS_SELF,
        CUSTOMERS_APPROVE_RENAME,
        PRIVACY_MANAGE,
        SEGMENTS_WRITE,
        ARCHIVE_READ,
        ARCHIVE_WRITE,
        SETTINGS_CONFIGURE,
        PII,
    ];

    #[test]
    fn each_role_holds_exactly_its_permissions() {
        assert_eq!(held_by(Role::Admin, &ALL).len(), ALL.len());
        assert_eq!(
            held_by(Role::Agent, &ALL),
            BTreeSet::from([
                "customers.read",
                "customers.create",
                "customers.update",
                "customers.disable",
                "customers.merge",
                "customers.import",
                "customers.export",
                "archive.read",
                "archive.write",
                "segments.write",
                "pii"
            ])
        );
        assert_eq!(
            held_by(Role::Marketer, &ALL),
            BTreeSet::from([
                "customers.read",
                "customers.update",
                "customers.import",
                "customers.export",
                "archive.read",
                "segments.write",
                "pii"
            ])
        );
        assert_eq!(held_by(Role::Analyst, &ALL), BTreeSet::from(["customers.read", "customers.export", "archive.read"]));
        assert_eq!(held_by(Role::Readonly, &ALL), BTreeSet::from(["customers.read", "archive.read"]));
        assert_eq!(held_by(Role::Customer, &ALL), BTreeSet::from(["customers.self"]), "a customer holds no staff permission");
    }
}
