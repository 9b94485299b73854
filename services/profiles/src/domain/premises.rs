//! Premises and occupancy (房产客户关系): a unit's writable data after
//! validation, and who pays for it — the billing party is the resident,
//! else the tenant, else the owner, else nobody (vacant).

use chrono::NaiveDate;

/// Premises as a request describes them, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PremisesDraft {
    pub unit_code: String,
    pub building: String,
    pub floor: String,
    /// Square metres; 0 when unknown.
    pub area: f64,
    /// "", APARTMENT, HOUSE, SHOP, OFFICE, PARKING, STORAGE or OTHER.
    pub kind: String,
}

/// Roles in the order the billing party is chosen.
pub const BILLING_ORDER: [&str; 3] = ["RESIDENT", "TENANT", "OWNER"];

/// The billing party among the current `holders` (role, customer): the
/// first role of [`BILLING_ORDER`] that has one.
pub fn billing_party<C: Copy>(holders: &[(String, C)]) -> Option<(&'static str, C)> {
    BILLING_ORDER.iter().find_map(|role| holders.iter().find(|(r, _)| r == role).map(|(_, c)| (*role, *c)))
}

/// Why a move-in cannot happen on `move_in` given the role's current
/// holder, who moved in on `current_since`: not on or before that day.
pub fn move_in_allowed(move_in: NaiveDate, current_since: Option<NaiveDate>) -> bool {
    current_since.is_none_or(|since| move_in > since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_pays_else_the_tenant_else_the_owner() {
        let holders = |roles: &[&str]| roles.iter().enumerate().map(|(i, r)| ((*r).to_owned(), i)).collect::<Vec<_>>();
        assert_eq!(billing_party(&holders(&["OWNER", "TENANT", "RESIDENT"])), Some(("RESIDENT", 2)));
        assert_eq!(billing_party(&holders(&["OWNER", "TENANT"])), Some(("TENANT", 1)));
        assert_eq!(billing_party(&holders(&["OWNER"])), Some(("OWNER", 0)));
        assert_eq!(billing_party::<usize>(&[]), None, "vacant");
    }

    #[test]
    fn a_move_in_must_come_after_the_current_holders() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert!(move_in_allowed(day(2), None));
        assert!(move_in_allowed(day(2), Some(day(1))));
        assert!(!move_in_allowed(day(1), Some(day(1))), "the same day: one of two concurrent move-ins wins");
        assert!(!move_in_allowed(day(1), Some(day(2))));
    }
}
