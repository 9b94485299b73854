//! gRPC-Web (binary and `-text`) for browsers and mobile gRPC clients — and
//! native gRPC over h2c — on the gateway's port. A request whose
//! `Content-Type` is `application/grpc*` is proxied unchanged to the backend
//! that owns its service, over that backend's pooled channel; `tonic-web`
//! translates the gRPC-Web framing (base64 for `-text`, trailers in the body)
//! in both directions. The bearer token and the rate limits are checked here
//! first, as for REST, and answered as gRPC errors.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::header;
use tonic::{Status, body::Body as GrpcBody};
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::{Layer, Service, ServiceExt};

use crate::{errors::ApiError, ratelimit::RouteClass, state::Gateway};

/// Forwards a gRPC request to the backend of its service.
#[derive(Clone)]
pub struct GrpcProxy {
    gateway: Arc<Gateway>,
}

/// The gRPC-Web translation around the proxy.
pub type GrpcWeb = GrpcWebService<GrpcProxy>;

/// The proxy for `gateway`, wrapped for gRPC-Web.
pub fn service(gateway: Arc<Gateway>) -> GrpcWeb {
    GrpcWebLayer::new().layer(GrpcProxy { gateway })
}

impl Service<http::Request<GrpcBody>> for GrpcProxy {
    type Response = http::Response<GrpcBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<GrpcBody>) -> Self::Future {
        let gateway = self.gateway.clone();
        Box::pin(async move { Ok(proxy(&gateway, request).await.unwrap_or_else(Status::into_http)) })
    }
}

/// A refusal of the gateway as the gRPC status a gRPC(-Web) client reads.
fn status_of(refusal: ApiError) -> Status {
    match &refusal {
        ApiError::RateLimited(limited) => <Status as tonic_types::StatusExt>::with_error_details(
            refusal.code(),
            refusal.to_string(),
            tonic_types::ErrorDetails::with_retry_info(Some(limited.retry_after)),
        ),
        other => Status::new(other.code(), other.to_string()),
    }
}

async fn proxy(gateway: &Gateway, mut request: http::Request<GrpcBody>) -> Result<http::Response<GrpcBody>, Status> {
    // A gRPC-Web-text body shrinks when decoded, but its size hint still
    // claims the encoded length (HTTP/2 would send that as content-length and
    // the backend reset the stream): forward it as a stream of unknown length.
    request.headers_mut().remove(header::CONTENT_LENGTH);
    let request = request.map(|body| {
        use futures::StreamExt;
        use http_body_util::BodyExt;
        GrpcBody::new(http_body_util::StreamBody::new(body.into_data_stream().map(|chunk| chunk.map(http_body::Frame::data))))
    });
    let path = request.uri().path().to_owned();
    let unknown = || Status::unimplemented(format!("{path} is not served through this gateway"));
    let (service, method) = path.trim_start_matches('/').split_once('/').ok_or_else(unknown)?;
    let descriptor = gateway.pool.get_service_by_name(service).ok_or_else(unknown)?;
    let url = gateway.backend_map.backend_for(&descriptor).ok_or_else(unknown)?.to_owned();
    gateway.admit(&path, RouteClass::of_method(method, None), request.headers(), request.extensions()).map_err(status_of)?;
    let channel = gateway.backends.channel(&url);
    let unavailable = |e: tonic::transport::Error| Status::unavailable(format!("the {service} backend is unavailable: {e}"));
    channel.oneshot(request).await.map_err(unavailable)
}

/// Middleware: gRPC and gRPC-Web requests go to the proxy, everything else on to REST.
pub async fn route(State(grpc): State<GrpcWeb>, request: Request, next: Next) -> Response {
    let is_grpc =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("application/grpc"));
    if !is_grpc {
        return next.run(request).await;
    }
    match grpc.oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}
