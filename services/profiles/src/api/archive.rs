//! What the handlers of every archive record share: who may add, read,
//! list, change and remove one — decided before anything is read — the
//! paging of a customer's records, the merge of an update mask, and PII
//! masking of what goes out. Each service brings its conversions
//! ([`ArchiveWire`]) and its request and response types.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::Principal,
    db::ChildRow,
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required,
};
use prost::Message;
use uuid::Uuid;

use super::authorization::authorize;
use crate::{
    app::{App, archive::ArchiveRecord},
    domain::access::sees_pii,
    permissions,
    resources::CUSTOMER,
};

/// How one kind of archive record travels on the wire.
pub(super) trait ArchiveWire: ArchiveRecord {
    /// Its request field, e.g. `related_person` (violations are named under it).
    const FIELD: &'static str;
    /// Copies field `path` from `src` to `dst`.
    fn copy_field(dst: &mut Self::Proto, src: &Self::Proto, path: &str);
    /// The record's name and etag, from a request.
    fn name_and_etag(record: &Self::Proto) -> (&str, &str);
    /// The validated draft of `record`, sent by `principal`.
    fn draft(record: &Self::Proto, principal: &Principal) -> Result<Self::Draft, Error>;
}

/// `row` as `principal` may see it.
pub(super) fn shown<R: ArchiveWire>(principal: &Principal, row: &R::Row) -> R::Proto {
    let mut record = R::to_proto(row);
    if !sees_pii(principal, row.parent_id()) {
        R::mask_pii(&mut record);
    }
    record
}

/// PERMISSION_DENIED unless the caller is staff with `archive.write` (customers do not write here).
pub(super) fn require_writer(principal: &Principal) -> Result<(), Error> {
    principal.require(permissions::ARCHIVE_WRITE)
}

/// Adds `record` under `parent` (after [`require_writer`]); `respond` wraps
/// the stored record as the caller may see it.
pub(super) async fn create<R: ArchiveWire, Response: Message + Default>(
    app: &App,
    principal: &Principal,
    parent: &str,
    record: Option<R::Proto>,
    key: Option<&IdempotencyKey>,
    respond: impl FnOnce(R::Proto) -> Response + Send,
) -> Result<Response, Error> {
    let customer = CUSTOMER.parse(parent, "parent")?;
    let draft = R::draft(&required(record, R::FIELD)?, principal)?;
    app.create_record::<R, _>(principal.tenant, customer, draft, key, Utc::now(), |row| respond(shown::<R>(principal, row))).await
}

/// The record named `name` (request field `name`), for a caller who may read its customer's archive.
pub(super) async fn get<R: ArchiveWire>(app: &App, principal: &Principal, name: &str) -> Result<R::Proto, Error> {
    let (customer, id) = R::RESOURCE.parse(name, "name")?;
    authorize(principal, customer, permissions::ARCHIVE_READ)?;
    Ok(shown::<R>(principal, &app.record::<R>(principal.tenant, customer, id).await?))
}

/// A page of the records under `parent`, and the next page's token; `method` binds the token to the List method.
pub(super) async fn list<R: ArchiveWire>(
    app: &App,
    page_tokens: &PageTokenCodec,
    principal: &Principal,
    method: &str,
    (parent, page_size, page_token): (&str, i32, &str),
) -> Result<(Vec<R::Proto>, String), Error> {
    let customer = CUSTOMER.parse(parent, "parent")?;
    authorize(principal, customer, permissions::ARCHIVE_READ)?;
    let pager = Pager::new(page_tokens);
    let page = pager.start::<Uuid>(page_size, page_token, &[method, parent])?;
    let rows = app.records::<R>(principal.tenant, customer, page.after, page.fetch_limit()).await?;
    let (rows, token) = pager.finish(&page, rows, |r| r.id());
    Ok((rows.iter().map(|r| shown::<R>(principal, r)).collect(), token))
}

/// Changes the fields `mask` names of `record`, for staff with `archive.write`; the record as the caller may see it.
pub(super) async fn update<R: ArchiveWire>(
    app: &App,
    principal: &Principal,
    record: Option<R::Proto>,
    mask: Option<&prost_types::FieldMask>,
) -> Result<R::Proto, Error> {
    require_writer(principal)?;
    let input = required(record, R::FIELD)?;
    let (name, etag) = R::name_and_etag(&input);
    let (customer, id) = R::RESOURCE.parse(name, &format!("{}.name", R::FIELD))?;
    let paths = UpdateMask::parse(mask, R::WRITABLE)?.resolve(R::WRITABLE);
    let edit = |stored: &R::Row| {
        let mut merged = R::to_proto(stored);
        for path in &paths {
            R::copy_field(&mut merged, &input, path);
        }
        R::draft(&merged, principal)
    };
    let row = app.update_record::<R>(principal.tenant, (customer, id), etag, edit, Utc::now()).await?;
    Ok(shown::<R>(principal, &row))
}

/// Removes the record named `name` (etag checked when given), for staff with `archive.write`.
pub(super) async fn delete<R: ArchiveRecord>(app: &App, principal: &Principal, name: &str, etag: &str) -> Result<(), Error> {
    require_writer(principal)?;
    let (customer, id) = R::RESOURCE.parse(name, "name")?;
    app.delete_record::<R>(principal.tenant, customer, id, etag).await
}
