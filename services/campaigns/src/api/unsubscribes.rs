//! `crm.campaigns.v1.UnsubscribeService`: the links in marketing messages,
//! followed without a login (the kit lets these two methods through without
//! a bearer token; the signed link is the credential, and names one delivery).

use chrono::Utc;
use crm_kit::{respond, time::to_timestamp};
use crm_proto::crm::campaigns::v1::{self as pb, unsubscribe_service_server::UnsubscribeService};
use tonic::{Request, Response, Status};

use crate::{
    app::App,
    jobs::unsubscribes::OptOuts,
    store::{deliveries::DeliveryRow, unsubscribes::UnsubscribeRow},
    wire::{channel_to, masked_recipient},
};

/// Handlers of UnsubscribeService.
#[derive(Clone)]
pub struct UnsubscribeApi {
    app: App,
    opt_outs: OptOuts,
}

impl UnsubscribeApi {
    /// Handlers over `app`, carrying opt-outs to profiles with `opt_outs`.
    pub fn new(app: App, opt_outs: OptOuts) -> Self {
        Self { app, opt_outs }
    }
}

fn link_to(name: String, delivery: &DeliveryRow, followed: Option<&UnsubscribeRow>) -> pb::UnsubscribeLink {
    let channel = channel_to(delivery.channel);
    pb::UnsubscribeLink {
        name,
        channel: channel.into(),
        // Always masked: whoever holds the link is not known to be the recipient.
        recipient: masked_recipient(channel, &delivery.recipient),
        unsubscribed: followed.is_some(),
        unsubscribe_time: followed.map(|f| to_timestamp(f.create_time)),
    }
}

#[tonic::async_trait]
impl UnsubscribeService for UnsubscribeApi {
    #[tracing::instrument(skip_all)]
    async fn get_unsubscribe_link(
        &self,
        request: Request<pb::GetUnsubscribeLinkRequest>,
    ) -> Result<Response<pb::GetUnsubscribeLinkResponse>, Status> {
        respond(async move {
            let name = request.into_inner().name;
            let (tenant, delivery) = self.app.links().resolve_unsubscribe(&name)?;
            let (row, followed) = self.app.unsubscribe_link(tenant, delivery).await?;
            Ok(pb::GetUnsubscribeLinkResponse { link: Some(link_to(name, &row, followed.as_ref())) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn unsubscribe(&self, request: Request<pb::UnsubscribeRequest>) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        respond(async move {
            let name = request.into_inner().name;
            let (tenant, delivery) = self.app.links().resolve_unsubscribe(&name)?;
            let (row, followed) = self.app.unsubscribe(tenant, delivery, Utc::now()).await?;
            if followed.apply_time.is_none()
                && let Err(err) = self.opt_outs.apply(&followed).await
            {
                // Recorded and honoured at dispatch already; the job carries it to profiles later.
                tracing::warn!(error = %crm_kit::error::cause_chain(&err), "profiles did not take the opt-out yet; it stays pending");
            }
            Ok(pb::UnsubscribeResponse { link: Some(link_to(name, &row, Some(&followed))) })
        })
        .await
    }
}
