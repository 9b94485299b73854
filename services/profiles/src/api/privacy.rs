//! ExportCustomerData and EraseCustomer (of CustomerService): GDPR / PIPL.
//! `privacy.manage` (administrators) for both; a customer also exports
//! their own data — without the staff names in its field history.

use chrono::Utc;
use crm_kit::{Error, auth::Principal, time};
use crm_proto::crm::profiles::v1 as pb;

use super::authorization::authorize;
use crate::{
    app::{
        App, archive::ArchiveRecord, communications::Communications, occurrences::Occurrences, payment_accounts::PaymentAccounts,
        privacy::CustomerData, related_persons::RelatedPersons,
    },
    domain::fields,
    permissions,
    resources::CUSTOMER,
    wire::{changes, customer_to_proto, premises::occupancy_to, rename, transactions},
};

/// The export of the customer `request` names.
pub(super) async fn export(
    app: &App,
    principal: &Principal,
    request: &pb::ExportCustomerDataRequest,
) -> Result<pb::ExportCustomerDataResponse, Error> {
    let id = CUSTOMER.parse(&request.name, "name")?;
    authorize(principal, id, permissions::PRIVACY_MANAGE)?;
    let data = app.customer_data(principal.tenant, id).await?;
    Ok(pb::ExportCustomerDataResponse { export: Some(document(&data, principal.customer().is_none())) })
}

/// Erases the customer `request` names.
pub(super) async fn erase(
    app: &App,
    principal: &Principal,
    request: &pb::EraseCustomerRequest,
) -> Result<pb::EraseCustomerResponse, Error> {
    principal.require(permissions::PRIVACY_MANAGE)?;
    let id = CUSTOMER.parse(&request.name, "name")?;
    let reason = match fields::short_text(&request.reason, 500) {
        Ok(reason) if !reason.is_empty() => reason,
        Ok(_) => return Err(Error::invalid("reason", "REQUIRED", "why the data is erased, e.g. the request's reference")),
        Err((code, message)) => return Err(Error::invalid("reason", code, message)),
    };
    let row = app.erase_customer(principal.tenant, id, &request.etag, &reason, Utc::now()).await?;
    Ok(pb::EraseCustomerResponse { customer: Some(customer_to_proto(&row)) })
}

/// `data` as one document; `staff`: with who made each change.
fn document(data: &CustomerData, staff: bool) -> pb::CustomerDataExport {
    pb::CustomerDataExport {
        customer: Some(customer_to_proto(&data.customer)),
        related_persons: data.related_persons.iter().map(RelatedPersons::to_proto).collect(),
        payment_accounts: data.payment_accounts.iter().map(PaymentAccounts::to_proto).collect(),
        communications: data.communications.iter().map(Communications::to_proto).collect(),
        occurrences: data.occurrences.iter().map(Occurrences::to_proto).collect(),
        occupancies: data.occupancies.iter().map(occupancy_to).collect(),
        transactions: data.transactions.iter().map(transactions::to_proto).collect(),
        spending: Some(transactions::spending_to_proto(data.customer.id, &data.spending)),
        rename_requests: data.rename_requests.iter().map(rename::to_proto).collect(),
        changes: data
            .changes
            .iter()
            .map(|c| {
                let change = changes::to_proto(c, false);
                if staff { change } else { pb::CustomerChange { actor: String::new(), ..change } }
            })
            .collect(),
        export_time: Some(time::to_timestamp(Utc::now())),
    }
}
