//! What callers of the campaigns service may do, and which roles grant it
//! (`admin` holds everything; see `crm_kit::auth::Permission`). The customer
//! role holds none of these: it registers, reads and removes its own devices
//! (DeviceService checks that itself) and follows its unsubscribe links.

use crm_kit::auth::{Permission, Role};

/// Read templates and render previews.
pub const TEMPLATES_READ: Permission =
    Permission::new("templates.read", &[Role::Service, Role::Marketer, Role::Agent, Role::Analyst, Role::Readonly]);
/// Create, change and delete templates.
pub const TEMPLATES_WRITE: Permission = Permission::new("templates.write", &[Role::Marketer]);
/// Read campaigns and their counts.
pub const CAMPAIGNS_READ: Permission = Permission::new("campaigns.read", &[Role::Service, Role::Marketer, Role::Analyst, Role::Readonly]);
/// Create, edit, start, pause, resume, cancel and delete campaigns.
pub const CAMPAIGNS_RUN: Permission = Permission::new("campaigns.run", &[Role::Marketer]);
/// Configure the tenant's delivery providers and their credentials.
pub const PROVIDERS_CONFIGURE: Permission = Permission::new("providers.configure", &[]);
/// Set the tenant's contact rules (frequency caps, quiet hours, time zone).
pub const CONTACT_POLICY_CONFIGURE: Permission = Permission::new("contact_policy.configure", &[]);
/// Send transactional notices.
pub const NOTICES_SEND: Permission = Permission::new("notices.send", &[Role::Service, Role::Agent]);
/// Read the sent log.
pub const DELIVERIES_READ: Permission =
    Permission::new("deliveries.read", &[Role::Service, Role::Marketer, Role::Agent, Role::Analyst, Role::Readonly]);
/// Read customers' registered devices (tokens masked without `pii`).
pub const DEVICES_READ: Permission =
    Permission::new("devices.read", &[Role::Service, Role::Marketer, Role::Agent, Role::Analyst, Role::Readonly]);
/// Register and remove any customer's devices (a customer registers their own without it).
pub const DEVICES_WRITE: Permission = Permission::new("devices.write", &[Role::Service, Role::Agent]);
/// Read journeys.
pub const JOURNEYS_READ: Permission = Permission::new("journeys.read", &[Role::Service, Role::Marketer, Role::Analyst, Role::Readonly]);
/// Create, edit, publish, pause, resume and delete journeys.
pub const JOURNEYS_RUN: Permission = Permission::new("journeys.run", &[Role::Marketer]);
/// Start a customer on a journey (EnterJourney): backend systems and marketers.
pub const JOURNEYS_ENTER: Permission = Permission::new("journeys.enter", &[Role::Service, Role::Marketer]);
/// Read customers' points accounts (a customer reads their own without it).
pub const LOYALTY_READ: Permission =
    Permission::new("loyalty.read", &[Role::Service, Role::Marketer, Role::Agent, Role::Analyst, Role::Readonly]);
/// Grant and redeem points.
pub const LOYALTY_WRITE: Permission = Permission::new("loyalty.write", &[Role::Service, Role::Marketer, Role::Agent]);
/// Change the loyalty programme (earning rate, member tiers).
pub const LOYALTY_CONFIGURE: Permission = Permission::new("loyalty.configure", &[Role::Marketer]);
/// Record customers' custom goals (RecordConversion): backend systems and marketers.
pub const CONVERSIONS_WRITE: Permission = Permission::new("conversions.write", &[Role::Service, Role::Marketer]);
/// Read customers' coupons.
pub const COUPONS_READ: Permission =
    Permission::new("coupons.read", &[Role::Service, Role::Marketer, Role::Agent, Role::Analyst, Role::Readonly]);
/// Issue and redeem coupons (a till, a service desk, a backend).
pub const COUPONS_WRITE: Permission = Permission::new("coupons.write", &[Role::Service, Role::Marketer, Role::Agent]);
/// Read the holiday calendar.
pub const HOLIDAYS_READ: Permission =
    Permission::new("holidays.read", &[Role::Service, Role::Marketer, Role::Agent, Role::Analyst, Role::Readonly]);
/// Add, rename, disable and delete holidays of the tenant's calendar.
pub const HOLIDAYS_WRITE: Permission = Permission::new("holidays.write", &[Role::Marketer]);
/// See recipients' addresses and rendered messages unmasked, and filter by address.
pub const PII: Permission = Permission::new("pii", &[Role::Service, Role::Marketer, Role::Agent]);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crm_kit::auth::held_by;

    use super::*;

    const ALL: [Permission; 22] = [
        TEMPLATES_READ,
        TEMPLATES_WRITE,
        CAMPAIGNS_READ,
        CAMPAIGNS_RUN,
        PROVIDERS_CONFIGURE,
        CONTACT_POLICY_CONFIGURE,
        NOTICES_SEND,
        DELIVERIES_READ,
        DEVICES_READ,
        DEVICES_WRITE,
        HOLIDAYS_READ,
        HOLIDAYS_WRITE,
        JOURNEYS_READ,
        JOURNEYS_RUN,
        JOURNEYS_ENTER,
        LOYALTY_READ,
        LOYALTY_WRITE,
        LOYALTY_CONFIGURE,
        COUPONS_READ,
        COUPONS_WRITE,
        CONVERSIONS_WRITE,
        PII,
    ];

    #[test]
    fn each_role_holds_exactly_its_permissions() {
        assert_eq!(held_by(Role::Admin, &ALL).len(), ALL.len());
        assert_eq!(
            held_by(Role::Marketer, &ALL),
            BTreeSet::from([
                "templates.read",
                "templates.write",
                "campaigns.read",
                "campaigns.run",
                "deliveries.read",
                "devices.read",
                "holidays.read",
                "holidays.write",
                "journeys.read",
                "journeys.run",
                "journeys.enter",
                "loyalty.read",
                "loyalty.write",
                "loyalty.configure",
                "coupons.read",
                "coupons.write",
                "conversions.write",
                "pii"
            ])
        );
        assert_eq!(
            held_by(Role::Agent, &ALL),
            BTreeSet::from([
                "templates.read",
                "notices.send",
                "deliveries.read",
                "devices.read",
                "devices.write",
                "holidays.read",
                "loyalty.read",
                "loyalty.write",
                "coupons.read",
                "coupons.write",
                "pii"
            ])
        );
        let reader = BTreeSet::from([
            "templates.read",
            "campaigns.read",
            "deliveries.read",
            "devices.read",
            "holidays.read",
            "journeys.read",
            "loyalty.read",
            "coupons.read",
        ]);
        assert_eq!(held_by(Role::Analyst, &ALL), reader);
        assert_eq!(held_by(Role::Readonly, &ALL), reader);
        assert!(held_by(Role::Customer, &ALL).is_empty(), "a customer holds nothing here");
    }
}
