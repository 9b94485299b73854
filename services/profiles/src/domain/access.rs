//! Which fields each role may write. Reads are governed by the kit's role →
//! permission table; writes are further limited here per field, because an
//! agent and a marketer edit different parts of the same customer.

use crm_kit::auth::{Principal, Role};

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

/// Whether `principal` may change `path` of an existing customer.
pub fn may_write(principal: &Principal, path: &str) -> bool {
    principal.has_role(Role::Admin)
        || principal.has_role(Role::Service)
        || (principal.has_role(Role::Agent) && WRITABLE_PATHS.contains(&path) && !NOT_FOR_AGENTS.contains(&path))
        || (principal.has_role(Role::Marketer) && MARKETER_PATHS.contains(&path))
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
    }
}
