//! Server streams whose `response_body` is a `google.api.HttpBody` (a CSV of
//! an import's refused rows, say), answered as a plain HTTP body: a file
//! download, not NDJSON.
//!
//! The gateway waits for the first message before answering, so that an
//! error the backend raises at once (no such job, no permission) is still a
//! proper HTTP status with the JSON error body. From then on the status is
//! sent: every message's bytes are written as they arrive (chunked, never
//! compressed by the gateway), and a later error can only abort the transfer,
//! which the client sees as a truncated download rather than a
//! complete-looking file.

use axum::{body::Body, response::Response};
use bytes::Bytes;
use futures::{StreamExt, stream};
use http::{HeaderValue, StatusCode, header};
use prost_reflect::DynamicMessage;
use tonic::{Status, codec::Streaming};

use crate::{routes::Route, transcode};

/// A response extension that keeps the compression layer off the response:
/// a streamed file, whose bytes go out as they arrive (and whose abort the
/// client must see as such, not as a compressed stream that never started).
#[derive(Debug, Clone, Copy)]
pub struct Uncompressed;

/// The file the backend streams: 200 with the first message's content type,
/// then the bytes of each message. `Err` only when the stream fails before
/// its first message (answered as the backend's error).
pub(crate) async fn http_body_stream(route: &Route, response: tonic::Response<Streaming<DynamicMessage>>) -> Result<Response, Status> {
    let (metadata, mut messages, _) = response.into_parts();
    let (content_type, first) = match messages.message().await? {
        Some(message) => transcode::response_http_body(route, message),
        // An empty file: the backend ended the stream without a message.
        None => (HeaderValue::from_static(""), Bytes::new()),
    };
    let route_for_rest = route.clone();
    let rest = messages.map(move |item| match item {
        Ok(message) => Ok(transcode::response_http_body(&route_for_rest, message).1),
        Err(status) => {
            // Nothing can be said to the client any more: the body is cut short.
            tracing::warn!(code = ?status.code(), error = %status.message(), "download aborted by the backend");
            Err(status)
        }
    });
    // No shutdown cut-off here (unlike NDJSON): ending the body cleanly at
    // shutdown would make a partial file look complete.
    let chunks = stream::once(async { Ok(first) }).chain(rest).filter(|chunk| std::future::ready(!matches!(chunk, Ok(b) if b.is_empty())));

    let mut http = Response::builder().status(StatusCode::OK).header(header::CACHE_CONTROL, "no-store, private");
    if !content_type.is_empty() {
        http = http.header(header::CONTENT_TYPE, content_type);
    }
    // The backend may name the file for browsers (`attachment; filename=…`).
    if let Some(disposition) = metadata.get("content-disposition").and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
        http = http.header(header::CONTENT_DISPOSITION, disposition);
    }
    let mut response = http.body(Body::from_stream(chunks)).expect("valid response parts");
    response.extensions_mut().insert(Uncompressed);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use prost::Message;
    use prost_reflect::DescriptorPool;
    use tonic::codec::Codec;

    use super::*;
    use crate::{
        forward::DynamicCodec,
        routes::{BackendMap, Lookup, RouteTable},
    };

    const CSV: &str = "text/csv; charset=utf-8";

    fn routes() -> RouteTable {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        RouteTable::from_pool(&pool, &BackendMap::parse("crm.profiles.v1=http://p:1").unwrap()).unwrap()
    }

    /// One DownloadImportErrors message as a gRPC frame on the wire.
    fn grpc_frame(data: &str) -> Frame<Bytes> {
        let chunk =
            crm_proto::google::api::HttpBody { content_type: CSV.to_owned(), data: data.as_bytes().to_vec(), extensions: Vec::new() };
        let message = crm_proto::crm::profiles::v1::DownloadImportErrorsResponse { chunk: Some(chunk) }.encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&message);
        Frame::data(Bytes::from(frame))
    }

    /// The trailers of a call that ended with `code`.
    fn ended_with(code: tonic::Code) -> Frame<Bytes> {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from(code as i32));
        trailers.insert("grpc-message", HeaderValue::from_static("the store went away"));
        Frame::trailers(trailers)
    }

    /// The backend's response stream, as it arrives in `frames`.
    fn backend_stream(route: &Route, frames: Vec<Result<Frame<Bytes>, std::io::Error>>) -> tonic::Response<Streaming<DynamicMessage>> {
        let decoder = DynamicCodec::new(route.rpc.output()).decoder();
        tonic::Response::new(Streaming::new_response(decoder, StreamBody::new(stream::iter(frames)), StatusCode::OK, None, None))
    }

    #[tokio::test]
    async fn a_failure_after_the_first_bytes_aborts_the_body() {
        let routes = routes();
        let Lookup::Found(route, _) = routes.lookup(&http::Method::GET, "/v1/importJobs/j1/errors:download") else { panic!("no route") };
        let endings = [Ok(ended_with(tonic::Code::Internal)), Err(std::io::Error::other("connection reset"))];
        for ending in endings {
            // The backend sends a first chunk, then fails (or the connection to it breaks).
            let frames = vec![Ok(grpc_frame("\u{feff}name,email\r\n")), ending];
            let response = http_body_stream(route, backend_stream(route, frames)).await.expect("answered after the first message");

            // The status and the first bytes went out; the body then fails instead of ending like a whole file.
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CONTENT_TYPE], CSV);
            let mut body = response.into_body();
            let first = body.frame().await.expect("a first frame").expect("the first chunk");
            assert_eq!(first.into_data().unwrap(), "\u{feff}name,email\r\n");
            assert!(matches!(body.frame().await, Some(Err(_))), "a download that failed midway must not end cleanly");
        }
    }

    #[tokio::test]
    async fn a_failure_before_the_first_message_is_the_backends_error() {
        let routes = routes();
        let Lookup::Found(route, _) = routes.lookup(&http::Method::GET, "/v1/importJobs/j1/errors:download") else { panic!("no route") };

        let result = http_body_stream(route, backend_stream(route, vec![Ok(ended_with(tonic::Code::NotFound))])).await;

        assert_eq!(result.err().map(|s| s.code()), Some(tonic::Code::NotFound));
    }

    #[tokio::test]
    async fn a_complete_download_ends_cleanly() {
        let routes = routes();
        let Lookup::Found(route, _) = routes.lookup(&http::Method::GET, "/v1/importJobs/j1/errors:download") else { panic!("no route") };
        let frames = vec![Ok(grpc_frame("name,email\r\n")), Ok(grpc_frame("Bob,bob@example\r\n")), Ok(ended_with(tonic::Code::Ok))];

        let response = http_body_stream(route, backend_stream(route, frames)).await.unwrap();

        let body = response.into_body().collect().await.expect("a whole body").to_bytes();
        assert_eq!(body, "name,email\r\nBob,bob@example\r\n");
    }
}
