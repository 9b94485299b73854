//! Client-streaming RPCs whose `body` is a `google.api.HttpBody` field (a
//! spreadsheet upload): the HTTP request body is streamed into the call as it
//! arrives, never held whole, so files of hundreds of MB pass through in
//! constant memory. The gateway's body size limit does not apply: the
//! backend, which knows what a file of its kind may weigh, enforces its own.
//!
//! The body is either the file itself (any content type, passed on as
//! `file.content_type`) or a `multipart/form-data` form whose file part is
//! streamed the same way. The first message carries the query and path
//! parameters; see [`messages`] for the split and [`chunks`] for the sizes.
//!
//! An upload that does not finish (the client goes away, a malformed form,
//! nothing arrives for the request timeout, the client's deadline passes)
//! fails the call's request stream, so the backend's stream fails too: a
//! truncated upload must never reach it as a complete file. That is why the
//! call runs on a task of its own and is never dropped midway (hyper would
//! reset it with CANCEL, which a tonic server reads as a clean end), and why
//! the client's deadline is kept by the gateway rather than passed on as a
//! gRPC deadline (tonic enforces those by the same cancellation).
//!
//! # Layout
//! - `chunks`: HTTP frames regrouped into message-sized chunks.
//! - `messages`: chunks → the RPC's messages.
//! - `multipart`: the file part of a multipart form.

mod chunks;
mod messages;
mod multipart;

use std::time::Duration;

use axum::{body::Body, response::Response};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use http::header;
use prost_reflect::{DynamicMessage, Kind, ReflectMessage, Value};
use tokio::{sync::oneshot, time::Instant};
use tonic::{Code, Status};

use self::{
    chunks::{CHUNK_BYTES, coalesce},
    messages::{UploadMessages, into_messages},
};
use crate::{
    errors::{ApiError, error_info},
    forward::service_label,
    handler::{backend_request, client_timeout, json_response, raw_response},
    routes::{BodyBinding, Route},
    state::Gateway,
};

/// The request field that takes a multipart part's filename when the query gives none.
const FILE_NAME_FIELD: &str = "file_name";

impl Gateway {
    /// Streams the body of `route`'s request into its client-streaming RPC
    /// and answers with the RPC's response.
    pub(crate) async fn upload(
        &self,
        route: &Route,
        vars: &[(Vec<String>, String)],
        parts: &http::request::Parts,
        body: Body,
        request_id: &str,
    ) -> Result<Response, ApiError> {
        let BodyBinding::Raw(field) = &route.body else { unreachable!("client streams are routed only with an HttpBody body") };
        // The parameters first: a bad query is refused before any byte is read.
        let mut first = self.request_message(route, vars, parts, b"", None)?;
        // No deadline unless the client sets one (a large file on a slow link
        // takes minutes); a stalled client is cut off by `stall_limit` instead.
        let deadline = client_timeout(&parts.headers)?.map(|timeout| Instant::now() + timeout);
        let frames = stall_limit(body.into_data_stream().map_err(read_failed), self.request_timeout);
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let (file, content_type) = if multipart::is_multipart(content_type) {
            let part = multipart::file_part(frames, content_type, field).await?;
            if let Some(name) = &part.file_name {
                default_file_name(&mut first, name);
            }
            (part.data, part.content_type.unwrap_or_default())
        } else {
            (frames.boxed(), content_type.to_owned())
        };
        let outbound = into_messages(coalesce(file, CHUNK_BYTES), UploadMessages::new(first, field, &content_type));

        let (failed, mut body_failed) = oneshot::channel();
        // Dropped when this request ends, however it ends: an unfinished upload then fails.
        let (_abort_on_drop, aborted) = oneshot::channel::<()>();
        let request = backend_request(route, fail_on_error(outbound, failed, aborted), parts, request_id, None);
        let call = self.backends.spawn_client_streaming(route, request);
        let result = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, call).await.map_err(|_| deadline_exceeded(route))?,
            None => call.await,
        };
        // The body's own error explains a failed call best (the call failed because of it).
        if let Ok(error) = body_failed.try_recv() {
            return Err(error);
        }
        let response = result
            .unwrap_or_else(|e| Err(Status::internal(format!("the upload call failed: {e}"))))
            .map_err(|s| self.backend_error(route, s))?;
        if route.raw_response() {
            return Ok(raw_response(route, response));
        }
        Ok(json_response(route, response.get_ref()))
    }
}

/// 504: the upload and the backend's answer took longer than the client allowed.
fn deadline_exceeded(route: &Route) -> ApiError {
    ApiError::Backend {
        code: Code::DeadlineExceeded,
        message: format!("the upload to the {} backend did not finish within the deadline", service_label(route)),
        details: vec![error_info("DEADLINE_EXCEEDED")],
    }
}

/// The body's frames, failing with [`ApiError::BodyStalled`] when none arrives for `idle`.
fn stall_limit<S>(frames: S, idle: Duration) -> impl Stream<Item = Result<Bytes, ApiError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, ApiError>> + Send + 'static,
{
    stream::unfold(Box::pin(frames), move |mut frames| async move {
        match tokio::time::timeout(idle, frames.next()).await {
            Ok(frame) => frame.map(|frame| (frame, frames)),
            Err(_) => Some((Err(ApiError::BodyStalled { idle }), frames)),
        }
    })
}

fn read_failed(error: axum::Error) -> ApiError {
    ApiError::bad_request("INVALID_BODY", format!("reading the request body failed: {error}"))
}

/// The call's request stream: the messages, until the body fails or the
/// request is `aborted` (its sender dropped). Then the failure is handed to
/// the handler (`failed`) and the stream yields one `Err`, which fails the
/// call; it never ends after that, as an end would tell the backend that the
/// upload is complete.
fn fail_on_error<S>(
    messages: S,
    failed: oneshot::Sender<ApiError>,
    aborted: oneshot::Receiver<()>,
) -> impl Stream<Item = Result<DynamicMessage, Status>> + Send + 'static
where
    S: Stream<Item = Result<DynamicMessage, ApiError>> + Send + 'static,
{
    stream::unfold(Some((Box::pin(messages), failed, aborted)), |state| async move {
        let Some((mut messages, failed, mut aborted)) = state else { return std::future::pending().await };
        let error = tokio::select! {
            biased;
            _ = &mut aborted => None,
            next = messages.next() => match next {
                Some(Ok(message)) => return Some((Ok(message), Some((messages, failed, aborted)))),
                Some(Err(error)) => Some(error),
                None => return None,
            },
        };
        tracing::info!(error = error.as_ref().map(tracing::field::display), "upload not finished; failing the call");
        if let Some(error) = error {
            let _ = failed.send(error);
        }
        Some((Err(Status::aborted("the upload did not finish")), None))
    })
}

/// Sets the request's `file_name` to a multipart part's filename, unless the
/// query already set it (the query is the explicit choice).
fn default_file_name(message: &mut DynamicMessage, file_name: &str) {
    let Some(field) = message.descriptor().get_field_by_name(FILE_NAME_FIELD).filter(|f| f.kind() == Kind::String && !f.is_list()) else {
        return;
    };
    if message.get_field(&field).as_str().is_some_and(str::is_empty) {
        message.set_field(&field, Value::String(file_name.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use prost_reflect::DescriptorPool;

    use super::*;

    fn upload_request(file_name: &str) -> DynamicMessage {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut message = DynamicMessage::new(pool.get_message_by_name("crm.profiles.v1.UploadImportFileRequest").unwrap());
        if !file_name.is_empty() {
            message.set_field_by_name("file_name", Value::String(file_name.to_owned()));
        }
        message
    }

    #[test]
    fn a_parts_filename_is_the_default_file_name() {
        let mut unnamed = upload_request("");
        default_file_name(&mut unnamed, "customers.csv");
        assert_eq!(unnamed.get_field_by_name("file_name").unwrap().as_str(), Some("customers.csv"));

        let mut named = upload_request("from-query.csv");
        default_file_name(&mut named, "customers.csv");
        assert_eq!(named.get_field_by_name("file_name").unwrap().as_str(), Some("from-query.csv"));
    }

    #[tokio::test]
    async fn a_stalled_body_fails_after_the_idle_limit() {
        let body = stream::iter([Ok(Bytes::from_static(b"a,b\n"))]).chain(stream::pending());
        let mut frames = Box::pin(stall_limit(body, Duration::from_millis(50)));
        assert_eq!(frames.next().await.unwrap().unwrap(), "a,b\n");
        assert!(matches!(frames.next().await, Some(Err(ApiError::BodyStalled { .. }))));
    }

    /// What `fail_on_error` yields for `messages`, polled until it has nothing ready.
    fn outbound(
        messages: Vec<Result<DynamicMessage, ApiError>>,
        abort: bool,
    ) -> (Vec<Result<DynamicMessage, Status>>, Result<ApiError, oneshot::error::TryRecvError>) {
        let (failed, mut body_failed) = oneshot::channel();
        let (abort_on_drop, aborted) = oneshot::channel::<()>();
        let pending = if abort { None } else { Some(stream::pending()) };
        let messages = stream::iter(messages).chain(stream::iter(pending).flatten());
        let mut outbound = Box::pin(fail_on_error(messages, failed, aborted));
        let mut yielded = Vec::new();
        if abort {
            yielded.extend(block_on(outbound.next()));
            drop(abort_on_drop);
        }
        while let Some(Some(item)) = futures::FutureExt::now_or_never(outbound.next()) {
            yielded.push(item);
        }
        (yielded, body_failed.try_recv())
    }

    #[test]
    fn a_body_error_fails_the_call_and_never_ends_the_stream() {
        let (yielded, failure) = outbound(vec![Ok(upload_request("a.csv")), Err(ApiError::bad_request("INVALID_BODY", "reset"))], false);

        assert_eq!(yielded.len(), 2, "{yielded:?}");
        assert!(yielded[0].is_ok());
        assert_eq!(yielded[1].as_ref().unwrap_err().code(), Code::Aborted);
        // Nothing after the error, not even an end (`outbound` stopped at Pending),
        // and the handler has the body's error.
        assert!(matches!(failure, Ok(ApiError::BadRequest { reason: "INVALID_BODY", .. })));
    }

    #[test]
    fn an_abandoned_upload_fails_the_call() {
        // The body would go on, but the request is gone (client away, deadline passed).
        let first = upload_request("a.csv");
        let (yielded, failure) = outbound(vec![Ok(first.clone()), Ok(first)], true);

        assert_eq!(yielded.len(), 2, "{yielded:?}");
        assert_eq!(yielded[1].as_ref().unwrap_err().code(), Code::Aborted);
        assert!(failure.is_err(), "no body error to report");
    }
}
