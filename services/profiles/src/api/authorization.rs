//! Who may reach a customer's data: staff by permission, a customer only
//! their own — decided before anything is read, for every service here.

use crm_kit::{
    Error,
    auth::{Permission, Principal},
};
use uuid::Uuid;

use crate::{
    domain::access::{Reach, reach},
    resources::CUSTOMER,
};

/// OK when `principal` may act on customer `id` with `staff_permission`
/// (see [`reach`]): PERMISSION_DENIED, or NOT_FOUND for another customer's record.
pub(super) fn authorize(principal: &Principal, id: Uuid, staff_permission: Permission) -> Result<(), Error> {
    match reach(principal, id, staff_permission) {
        Reach::Granted => Ok(()),
        Reach::Hidden => Err(CUSTOMER.not_found(id)),
        Reach::Denied(permission) => Err(Error::PermissionDenied { permission: permission.name().to_owned() }),
    }
}

/// PERMISSION_DENIED when `filter` compares emails or phones and `principal` lacks `pii`.
pub(super) fn allow_filter(principal: &Principal, filter: &crm_kit::filter::CheckedFilter) -> Result<(), Error> {
    if !principal.can(crate::permissions::PII)
        && let Some(field) = crate::store::customer_filter::PII_FILTER_FIELDS.iter().find(|f| filter.mentions(f))
    {
        return Err(Error::PermissionDenied { permission: format!("pii (to filter on {field})") });
    }
    Ok(())
}
