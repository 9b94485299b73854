//! The gRPC status of a response that is not trailers-only — every call that
//! succeeds, and errors raised after the first message — arrives in the
//! trailers, after the handler returned. [`StatusFromTrailers`] passes the
//! body through and reports the code once: from the trailers, as UNKNOWN
//! when the body ends without them or fails, as CANCELLED when the client
//! goes away first.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{Code, body::Body};

/// Called once with the call's gRPC code.
pub(crate) type OnStatus = Box<dyn FnOnce(i32) + Send>;

/// A response body that reports its gRPC status (see the module docs).
pub(crate) struct StatusFromTrailers {
    inner: Body,
    on_status: Option<OnStatus>,
}

impl StatusFromTrailers {
    pub(crate) fn new(inner: Body, on_status: OnStatus) -> Self {
        Self { inner, on_status: Some(on_status) }
    }

    fn report(&mut self, code: i32) {
        if let Some(on_status) = self.on_status.take() {
            on_status(code);
        }
    }
}

/// The code in `grpc-status` of `trailers`; UNKNOWN when missing or malformed.
fn code_of(trailers: &http::HeaderMap) -> i32 {
    trailers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok()).unwrap_or(Code::Unknown as i32)
}

impl HttpBody for StatusFromTrailers {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = code_of(trailers);
                    self.report(code);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => self.report(Code::Unknown as i32),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for StatusFromTrailers {
    fn drop(&mut self) {
        // Dropped before its trailers: the client cancelled (or the connection went).
        self.report(Code::Cancelled as i32);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::BodyExt;

    use super::*;

    fn watched(body: Body) -> (StatusFromTrailers, Arc<Mutex<Vec<i32>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        (StatusFromTrailers::new(body, Box::new(move |code| sink.lock().unwrap().push(code))), seen)
    }

    #[tokio::test]
    async fn the_code_in_the_trailers_is_reported_once() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "13".parse().unwrap());
        let frames = vec![Ok::<_, tonic::Status>(Frame::data(Bytes::from_static(b"msg"))), Ok(Frame::trailers(trailers))];
        let inner = Body::new(http_body_util::StreamBody::new(futures::stream::iter(frames)));
        let (body, seen) = watched(inner);
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().and_then(|t| t.get("grpc-status")).unwrap(), "13");
        assert_eq!(*seen.lock().unwrap(), vec![13]);
    }

    #[tokio::test]
    async fn a_body_dropped_early_is_a_cancelled_call_and_one_without_trailers_unknown() {
        let (body, seen) = watched(Body::new(http_body_util::Full::new(Bytes::from_static(b"x"))));
        drop(body);
        assert_eq!(*seen.lock().unwrap(), vec![Code::Cancelled as i32]);
        let (body, seen) = watched(Body::new(http_body_util::Full::new(Bytes::from_static(b"x"))));
        body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![Code::Unknown as i32]);
    }
}
