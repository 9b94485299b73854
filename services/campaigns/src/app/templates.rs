//! Templates: creation with request-id replay, updates under an etag,
//! deletion, and reads; each change with its event.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    idempotency::{self, IdempotencyKey},
};
use crm_proto::crm::campaigns::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    domain::template::{self, TemplateDraft},
    resources::TEMPLATE,
    store::templates::{self as store, TEMPLATES, TemplateRow},
    wire::template_to,
};

impl App {
    /// Checks and stores a new template, writing `TemplateCreated`. With a
    /// request id, a retry returns the first response (built by `respond`).
    pub async fn create_template<R: Message + Default>(
        &self,
        tenant: Uuid,
        draft: TemplateDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&TemplateRow) -> R,
    ) -> Result<R, Error> {
        let variables = template::check(&draft, "template").map_err(|violations| Error::InvalidArgument { violations })?;
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let row = store::insert(&mut tx, tenant, &draft, &variables, now).await?;
        emit(&mut tx, tenant, &TEMPLATE.name(row.id), &pb::TemplateCreated { template: Some(template_to(&row)) }).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Replaces template `id` with what `edit` makes of the stored one (after
    /// the etag check), checked again; writes `TemplateUpdated`.
    pub async fn update_template(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&TemplateRow) -> Result<TemplateDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<TemplateRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before: TemplateRow = TEMPLATES.lock_for_change(&mut tx, tenant, id, &TEMPLATE, etag, "template.etag").await?;
        let draft = edit(&before)?;
        if draft == before.draft() {
            tx.commit().await?;
            return Ok(before);
        }
        let variables = template::check(&draft, "template").map_err(|violations| Error::InvalidArgument { violations })?;
        let row = store::update(&mut tx, tenant, id, &draft, &variables, now).await?;
        emit(&mut tx, tenant, &TEMPLATE.name(id), &pb::TemplateUpdated { template: Some(template_to(&row)) }).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes template `id` (etag checked when given); writes `TemplateDeleted`.
    /// Deliveries rendered from it keep their text.
    pub async fn delete_template(&self, tenant: Uuid, id: Uuid, etag: &str) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let _: TemplateRow = TEMPLATES.lock_for_change(&mut tx, tenant, id, &TEMPLATE, etag, "etag").await?;
        if crate::store::campaigns::template_in_use(&mut tx, tenant, id).await? {
            return Err(Error::FailedPrecondition {
                reason: "TEMPLATE_IN_USE",
                message: "a campaign that has not finished sends this template; cancel or delete it first".into(),
                subject: TEMPLATE.name(id),
            });
        }
        store::delete(&mut tx, tenant, id).await?;
        emit(&mut tx, tenant, &TEMPLATE.name(id), &pb::TemplateDeleted { template: TEMPLATE.name(id) }).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Template `id`, or NOT_FOUND.
    pub async fn template(&self, tenant: Uuid, id: Uuid) -> Result<TemplateRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = TEMPLATES.find(&mut tx, tenant, id, false).await?.ok_or_else(|| TEMPLATE.not_found(id))?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of templates by (display name, id), after `after`.
    pub async fn templates(&self, tenant: Uuid, after: Option<(String, Uuid)>, limit: i64) -> Result<Vec<TemplateRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = TEMPLATES.page_by_display_name(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
