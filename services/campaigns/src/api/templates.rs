//! `crm.campaigns.v1.TemplateService`.

use chrono::Utc;
use crm_kit::{
    auth::caller,
    client::Caller,
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::campaigns::v1::{self as pb, template_service_server::TemplateService};
use tonic::{Request, Response, Status};

use crate::{
    app::App,
    domain::{
        policy,
        template::{self, Problem},
    },
    permissions,
    profiles::ProfilesClient,
    resources::{CUSTOMER, TEMPLATE},
    wire::{preview_to, template_draft, template_to},
};

const WRITABLE: &[&str] = &["display_name", "purpose", "contents", "default_locale", "locked_variables"];

crm_kit::mask_fields!(pb::Template;
    "display_name" => display_name,
    "purpose" => purpose,
    "contents" => contents,
    "default_locale" => default_locale,
    "locked_variables" => locked_variables,
);

/// Handlers of TemplateService.
#[derive(Clone)]
pub struct TemplateApi {
    app: App,
    page_tokens: PageTokenCodec,
    profiles: ProfilesClient,
}

impl TemplateApi {
    /// Handlers over `app`, reading customers for previews from `profiles`.
    pub fn new(app: App, page_tokens: PageTokenCodec, profiles: ProfilesClient) -> Self {
        Self { app, page_tokens, profiles }
    }
}

#[tonic::async_trait]
impl TemplateService for TemplateApi {
    #[tracing::instrument(skip_all)]
    async fn create_template(&self, request: Request<pb::CreateTemplateRequest>) -> Result<Response<pb::CreateTemplateResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TEMPLATES_WRITE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateTemplate",
                &request.request_id,
                &pb::CreateTemplateRequest { request_id: String::new(), ..request.clone() },
            )?;
            let draft = template_draft(&required(request.template, "template")?, None)?;
            self.app
                .create_template(principal.tenant, draft, key.as_ref(), Utc::now(), |row| pb::CreateTemplateResponse {
                    template: Some(template_to(row)),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_template(&self, request: Request<pb::GetTemplateRequest>) -> Result<Response<pb::GetTemplateResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TEMPLATES_READ)?;
            let id = TEMPLATE.parse(&request.get_ref().name, "name")?;
            let row = self.app.template(principal.tenant, id).await?;
            Ok(pb::GetTemplateResponse { template: Some(template_to(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_templates(&self, request: Request<pb::ListTemplatesRequest>) -> Result<Response<pb::ListTemplatesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TEMPLATES_READ)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(request.page_size, &request.page_token, &["ListTemplates", &principal.tenant.to_string()])?;
            let rows = self.app.templates(principal.tenant, page.after.clone(), page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |t| (t.display_name.clone(), t.id));
            Ok(pb::ListTemplatesResponse { templates: rows.iter().map(template_to).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_template(&self, request: Request<pb::UpdateTemplateRequest>) -> Result<Response<pb::UpdateTemplateResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TEMPLATES_WRITE)?;
            let pb::UpdateTemplateRequest { template, update_mask } = request.into_inner();
            let input = required(template, "template")?;
            let id = TEMPLATE.parse(&input.name, "template.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            let edit = |stored: &crate::store::templates::TemplateRow| {
                let mut merged = template_to(stored);
                for path in &paths {
                    copy_field(&mut merged, &input, path);
                }
                template_draft(&merged, Some(stored.channel))
            };
            let row = self.app.update_template(principal.tenant, id, &input.etag, edit, Utc::now()).await?;
            Ok(pb::UpdateTemplateResponse { template: Some(template_to(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_template(&self, request: Request<pb::DeleteTemplateRequest>) -> Result<Response<pb::DeleteTemplateResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TEMPLATES_WRITE)?;
            let id = TEMPLATE.parse(&request.get_ref().name, "name")?;
            self.app.delete_template(principal.tenant, id, &request.get_ref().etag).await?;
            Ok(pb::DeleteTemplateResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn render_preview(&self, request: Request<pb::RenderPreviewRequest>) -> Result<Response<pb::RenderPreviewResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TEMPLATES_READ)?;
            let from = Caller::of(&request);
            let request = request.into_inner();
            let id = TEMPLATE.parse(&request.template, "template")?;
            let customer = match request.customer.as_str() {
                "" => None,
                name => Some(CUSTOMER.parse(name, "customer")?),
            };
            if request.variables.len() > 100 || request.variables.iter().any(|(k, v)| k.len() > 64 || v.len() > 10_000) {
                return Err(crm_kit::Error::invalid(
                    "variables",
                    "TOO_MANY",
                    "at most 100 variables, names of 64 and values of 10 000 bytes",
                ));
            }
            let stored = self.app.template(principal.tenant, id).await?;
            let customer = match customer {
                Some(id) => Some(self.profiles.customer(&from, id, "customer").await?),
                None => None,
            };
            let draft = stored.draft();
            let (rendered, mut problems) =
                template::render(&draft, request.locale.trim(), customer.as_ref().map(|c| &c.fields), &request.variables, None);
            if let Some(c) = &customer {
                let complaint = self.app.has_open_complaint(principal.tenant, c.id).await?;
                let verdict =
                    policy::address(c, draft.channel, draft.purpose).and_then(|_| policy::marketing_allowed(draft.purpose, complaint));
                if let Err(reason) = verdict {
                    problems.push(Problem {
                        field: "customer".into(),
                        reason: reason.as_str(),
                        description: "the contact policy would skip this customer on this channel".into(),
                    });
                }
            }
            Ok(preview_to(draft.channel, rendered, problems))
        })
        .await
    }
}
