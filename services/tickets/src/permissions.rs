//! What callers of the tickets service may do, and which roles grant it
//! (`admin` holds everything; see `crm_kit::auth::Permission`). Whose tickets
//! a caller reaches builds on these in `domain::access`.

use crm_kit::auth::{Permission, Role};

/// Read tickets, their public comments and timelines, teams, rules, SLA policies and reports.
pub const TICKETS_READ: Permission = Permission::new("tickets.read", &[Role::Service, Role::Agent, Role::Analyst, Role::Readonly]);
/// Open, assign, transition, merge and comment on tickets (and read internal notes).
pub const TICKETS_WRITE: Permission = Permission::new("tickets.write", &[Role::Service, Role::Agent]);
/// Delete and undelete tickets.
pub const TICKETS_DELETE: Permission = Permission::new("tickets.delete", &[]);
/// Configure ticket handling: teams, classification rules, calendars and SLA policies.
pub const TICKETS_CONFIGURE: Permission = Permission::new("tickets.configure", &[]);
/// Open tickets for oneself, read them and their public comments, reply
/// publicly (the `customer` role; `domain::access` checks the ticket is the caller's).
pub const TICKETS_SELF: Permission = Permission::new("tickets.self", &[Role::Customer]);
/// Read and search published knowledge-base articles (a customer's help center too).
pub const ARTICLES_READ: Permission =
    Permission::new("articles.read", &[Role::Service, Role::Agent, Role::Analyst, Role::Readonly, Role::Customer]);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crm_kit::auth::held_by;

    use super::*;

    const ALL: [Permission; 6] = [TICKETS_READ, TICKETS_WRITE, TICKETS_DELETE, TICKETS_CONFIGURE, TICKETS_SELF, ARTICLES_READ];

    #[test]
    fn each_role_holds_exactly_its_permissions() {
        assert_eq!(held_by(Role::Admin, &ALL).len(), ALL.len());
        assert_eq!(held_by(Role::Agent, &ALL), BTreeSet::from(["tickets.read", "tickets.write", "articles.read"]));
        assert_eq!(held_by(Role::Service, &ALL), BTreeSet::from(["tickets.read", "tickets.write", "articles.read"]));
        assert_eq!(held_by(Role::Analyst, &ALL), BTreeSet::from(["tickets.read", "articles.read"]));
        assert!(held_by(Role::Marketer, &ALL).is_empty());
        assert_eq!(
            held_by(Role::Customer, &ALL),
            BTreeSet::from(["tickets.self", "articles.read"]),
            "a customer holds no staff permission"
        );
    }
}
