//! `crm.campaigns.v1.TrackingService`: the pixel and the links of tracked
//! emails, fetched by mail clients and recipients without a login (the kit
//! lets both methods through without a bearer token; the signed name is the
//! credential, and names one delivery).

use chrono::Utc;
use crm_kit::respond;
use crm_proto::{
    crm::campaigns::v1::{self as pb, tracking_service_server::TrackingService},
    google::api::HttpBody,
};
use tonic::{Request, Response, Status, metadata::MetadataValue};

use crate::app::App;

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// Handlers of TrackingService.
#[derive(Clone)]
pub struct TrackingApi {
    app: App,
}

impl TrackingApi {
    /// Handlers over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// A page that links to `url`, for clients that do not follow the redirect.
fn redirect_page(url: &str) -> HttpBody {
    let escaped = url.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;");
    let html = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Redirecting</title><p><a href=\"{escaped}\">Continue to {escaped}</a></p>\n"
    );
    HttpBody { content_type: "text/html; charset=utf-8".into(), data: html.into_bytes(), extensions: Vec::new() }
}

#[tonic::async_trait]
impl TrackingService for TrackingApi {
    #[tracing::instrument(skip_all)]
    async fn open_tracking_pixel(
        &self,
        request: Request<pb::OpenTrackingPixelRequest>,
    ) -> Result<Response<pb::OpenTrackingPixelResponse>, Status> {
        respond(async move {
            let (tenant, delivery) = self.app.links().resolve_tracking(&request.get_ref().name)?;
            self.app.record_open(tenant, delivery, Utc::now()).await?;
            let pixel = HttpBody { content_type: "image/gif".into(), data: PIXEL.to_vec(), extensions: Vec::new() };
            Ok(pb::OpenTrackingPixelResponse { pixel: Some(pixel) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn follow_tracked_link(
        &self,
        request: Request<pb::FollowTrackedLinkRequest>,
    ) -> Result<Response<pb::FollowTrackedLinkResponse>, Status> {
        let mut response = respond(async move {
            let (tenant, delivery) = self.app.links().resolve_tracking(&request.get_ref().name)?;
            let url = self.app.follow_link(tenant, delivery, request.get_ref().link, Utc::now()).await?;
            Ok(pb::FollowTrackedLinkResponse { page: Some(redirect_page(&url)), url })
        })
        .await?;
        // The gateway answers a `location` as a 302 redirect; the URL is ASCII (serialised by the URL parser).
        if let Ok(location) = MetadataValue::try_from(response.get_ref().url.as_str()) {
            response.metadata_mut().insert("location", location);
        }
        Ok(response)
    }
}
