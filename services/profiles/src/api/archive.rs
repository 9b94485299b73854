//! What the handlers of every archive record share: who may read, list and
//! remove one — decided before anything is read — and the paging of a
//! customer's records. Each service adds its own conversions.

use crm_kit::{
    Error,
    auth::Principal,
    db::ChildRow,
    pagination::{PageTokenCodec, Pager},
};
use uuid::Uuid;

use super::customers::authorize;
use crate::{
    app::{App, archive::ArchiveRecord},
    permissions,
    resources::CUSTOMER,
};

/// The record named `name` (request field `name`), for a caller who may read its customer's archive.
pub(super) async fn get<R: ArchiveRecord>(app: &App, principal: &Principal, name: &str) -> Result<R::Row, Error> {
    let (customer, id) = R::RESOURCE.parse(name, "name")?;
    authorize(principal, customer, permissions::ARCHIVE_READ)?;
    app.record::<R>(principal.tenant, customer, id).await
}

/// A page of the records under `parent`, and the next page's token; `method` binds the token to the List method.
pub(super) async fn list<R: ArchiveRecord>(
    app: &App,
    page_tokens: &PageTokenCodec,
    principal: &Principal,
    method: &str,
    (parent, page_size, page_token): (&str, i32, &str),
) -> Result<(Vec<R::Row>, String), Error> {
    let customer = CUSTOMER.parse(parent, "parent")?;
    authorize(principal, customer, permissions::ARCHIVE_READ)?;
    let pager = Pager::new(page_tokens);
    let page = pager.start::<Uuid>(page_size, page_token, &[method, parent])?;
    let rows = app.records::<R>(principal.tenant, customer, page.after, page.fetch_limit()).await?;
    Ok(pager.finish(&page, rows, |r| r.id()))
}

/// Removes the record named `name` (etag checked when given), for staff with `archive.write`.
pub(super) async fn delete<R: ArchiveRecord>(app: &App, principal: &Principal, name: &str, etag: &str) -> Result<(), Error> {
    principal.require(permissions::ARCHIVE_WRITE)?;
    let (customer, id) = R::RESOURCE.parse(name, "name")?;
    app.delete_record::<R>(principal.tenant, customer, id, etag).await
}
