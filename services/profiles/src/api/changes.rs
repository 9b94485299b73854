//! `ListCustomerChanges` (of CustomerService): the field history of a
//! customer and its archive records, for staff with `archive.read` — values
//! masked for callers without `pii`. Customers do not read it: it names the
//! staff who made each change.

use crm_kit::{
    Error,
    auth::Principal,
    pagination::{PageTokenCodec, Pager},
};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use crate::{
    app::App,
    domain::access::sees_pii,
    permissions,
    resources::{CUSTOMER, OCCUPANCY},
    wire::changes::to_proto,
};

/// A page of the changes `request` asks for.
pub(super) async fn list(
    app: &App,
    page_tokens: &PageTokenCodec,
    principal: &Principal,
    request: &pb::ListCustomerChangesRequest,
) -> Result<pb::ListCustomerChangesResponse, Error> {
    principal.require(permissions::ARCHIVE_READ)?;
    let customer = CUSTOMER.parse(&request.parent, "parent")?;
    let own_record = request.record == request.parent || request.record.starts_with(&format!("{}/", request.parent));
    if !request.record.is_empty() && !own_record && OCCUPANCY.parse(&request.record, "record").is_err() {
        return Err(Error::invalid(
            "record",
            "INVALID_RECORD",
            format!("the customer's name, one of its records' (under {}) or one of its occupancies'", request.parent),
        ));
    }
    let filter = (
        (!request.record.is_empty()).then_some(request.record.as_str()),
        (!request.field_path.is_empty()).then_some(request.field_path.as_str()),
    );
    let pager = Pager::new(page_tokens);
    let page = pager.start::<Uuid>(
        request.page_size,
        &request.page_token,
        &["ListCustomerChanges", &request.parent, &request.record, &request.field_path],
    )?;
    let rows = app.customer_changes(principal.tenant, customer, filter, page.after, page.fetch_limit()).await?;
    let (rows, next_page_token) = pager.finish(&page, rows, |r| r.id);
    let masked = !sees_pii(principal, customer);
    Ok(pb::ListCustomerChangesResponse { changes: rows.iter().map(|r| to_proto(r, masked)).collect(), next_page_token })
}
