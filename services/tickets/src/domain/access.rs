//! Whose tickets a caller reaches: the one place this service decides it.
//!
//! Staff reach every ticket of their tenant by permission. A `customer`
//! caller (the kit's `Principal::customer`) reaches only the tickets whose
//! customer it is, and only through the RPCs that ask for a [`Scope`] here:
//! CreateTicket, GetTicket, ListTickets, AddComment (public replies) and
//! ListComments (public comments). Every other RPC checks a staff
//! permission the customer role lacks, so it is refused before any lookup.
//! Another customer's ticket, and a deleted one, do not exist for a customer
//! (NOT_FOUND), so that ids cannot be probed.

use crm_kit::{
    Error,
    auth::{Permission, Principal},
};
use crm_proto::crm::tickets::v1 as pb;
use uuid::Uuid;

use super::ticket::Ticket;
use crate::permissions;
use crate::resources::{CUSTOMER, TICKET};

/// The tickets a caller reaches in one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every ticket of the tenant (staff).
    All,
    /// The live tickets of this customer only.
    Customer(Uuid),
}

/// The caller's scope for an RPC that staff need `staff_permission` for and
/// a customer may use on its own tickets; PERMISSION_DENIED naming
/// `staff_permission` for anyone else. Checked before anything is read.
pub fn scope(principal: &Principal, staff_permission: Permission) -> Result<Scope, Error> {
    if principal.can(staff_permission) {
        return Ok(Scope::All);
    }
    match principal.customer() {
        Some(own) if principal.can(permissions::TICKETS_SELF) => Ok(Scope::Customer(own)),
        _ => Err(denied(staff_permission.name())),
    }
}

impl Scope {
    /// The customer every ticket of this scope belongs to, if limited to one.
    pub fn customer(self) -> Option<Uuid> {
        match self {
            Self::All => None,
            Self::Customer(own) => Some(own),
        }
    }

    /// NOT_FOUND unless `row` is in scope.
    pub fn ensure_reaches(self, row: &Ticket) -> Result<(), Error> {
        match self {
            Self::All => Ok(()),
            Self::Customer(own) if row.customer_id == own && row.delete_time.is_none() => Ok(()),
            Self::Customer(_) => Err(TICKET.not_found(row.id)),
        }
    }

    /// A customer opens tickets for itself only, and describes its problem:
    /// subject, description, type and channel. Triage — priority, category,
    /// tags, assignee, team — is the staff's and the intake rules' job, so
    /// setting any of them is PERMISSION_DENIED naming the field (refused
    /// rather than silently dropped, so that an app learns its form is wrong).
    pub fn check_new_ticket(self, input: &pb::Ticket) -> Result<(), Error> {
        let Self::Customer(own) = self else { return Ok(()) };
        if CUSTOMER.id_of(&input.customer) != Some(own) {
            return Err(denied("tickets.create.customer"));
        }
        let triage = [
            ("priority", input.priority != 0),
            ("category", !input.category.trim().is_empty()),
            ("tags", !input.tags.is_empty()),
            ("assignee", !input.assignee.trim().is_empty()),
            ("team", !input.team.trim().is_empty()),
        ];
        match triage.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(denied(&format!("tickets.create.{field}"))),
            None => Ok(()),
        }
    }

    /// A customer writes public replies only; an internal note is staff talk.
    pub fn check_comment(self, public: bool) -> Result<(), Error> {
        match self {
            Self::Customer(_) if !public => Err(denied(permissions::TICKETS_WRITE.name())),
            _ => Ok(()),
        }
    }
}

fn denied(permission: &str) -> Error {
    Error::PermissionDenied { permission: permission.to_owned() }
}

#[cfg(test)]
mod tests {
    use crm_kit::auth::Role;

    use super::*;

    fn principal(subject: String, roles: &[Role]) -> Principal {
        Principal { subject, tenant: Uuid::nil(), roles: roles.iter().copied().collect() }
    }

    #[test]
    fn staff_reach_all_and_a_customer_only_itself() {
        let own = Uuid::now_v7();
        let customer = principal(format!("customers/{own}"), &[Role::Customer]);
        assert_eq!(scope(&customer, permissions::TICKETS_READ).unwrap(), Scope::Customer(own));
        assert_eq!(scope(&principal("u".into(), &[Role::Agent]), permissions::TICKETS_WRITE).unwrap(), Scope::All);
        assert_eq!(scope(&principal("u".into(), &[Role::Readonly]), permissions::TICKETS_WRITE).unwrap_err().reason(), "PERMISSION_DENIED");
        assert!(scope(&principal("u".into(), &[Role::Marketer]), permissions::TICKETS_READ).is_err());
    }

    #[test]
    fn a_customer_opens_tickets_for_itself_without_triage() {
        let own = Uuid::now_v7();
        let scope = Scope::Customer(own);
        let ticket = pb::Ticket { customer: format!("customers/{own}"), subject: "Help".into(), ..Default::default() };
        assert!(scope.check_new_ticket(&ticket).is_ok());
        let other = pb::Ticket { customer: format!("customers/{}", Uuid::now_v7()), ..ticket.clone() };
        assert!(scope.check_new_ticket(&other).is_err());
        for triaged in [
            pb::Ticket { priority: pb::Priority::Urgent as i32, ..ticket.clone() },
            pb::Ticket { team: "teams/x".into(), ..ticket.clone() },
            pb::Ticket { assignee: "agent-1".into(), ..ticket.clone() },
            pb::Ticket { tags: vec!["vip".into()], ..ticket.clone() },
            pb::Ticket { category: "billing".into(), ..ticket.clone() },
        ] {
            assert!(scope.check_new_ticket(&triaged).is_err(), "{triaged:?}");
            assert!(Scope::All.check_new_ticket(&triaged).is_ok());
        }
        assert!(scope.check_comment(true).is_ok() && scope.check_comment(false).is_err() && Scope::All.check_comment(false).is_ok());
    }
}
