//! The messages of a streamed upload, as a client-streaming RPC with a
//! `google.api.HttpBody` field expects them: the first carries the request's
//! parameters (path and query), the file's content type and the first bytes;
//! every later one only the next bytes, in that field's `data`. An empty file
//! is still one message: the backend needs the parameters to answer at all.

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};
use prost_reflect::{DynamicMessage, FieldDescriptor, ReflectMessage, Value};

/// Makes the upload's messages, one per chunk of bytes.
#[derive(Debug)]
pub(crate) struct UploadMessages {
    /// The first message until it is given out.
    first: Option<DynamicMessage>,
    /// The `google.api.HttpBody` field.
    field: FieldDescriptor,
}

impl UploadMessages {
    /// `first` is the request built from the path and query; `field` names its
    /// `google.api.HttpBody` field, which gets `content_type` in the first message.
    pub(crate) fn new(mut first: DynamicMessage, field: &str, content_type: &str) -> Self {
        let field = first.descriptor().get_field_by_name(field).expect("the route's body field");
        http_body(&mut first, &field).set_field_by_name("content_type", Value::String(content_type.to_owned()));
        Self { first: Some(first), field }
    }

    /// The next message, carrying `data`.
    pub(crate) fn next(&mut self, data: Bytes) -> DynamicMessage {
        let mut message = self.first.take().unwrap_or_else(|| DynamicMessage::new(self.field.parent_message().clone()));
        http_body(&mut message, &self.field).set_field_by_name("data", Value::Bytes(data));
        message
    }

    /// Whether the first message has been given out.
    fn started(&self) -> bool {
        self.first.is_none()
    }
}

/// The `google.api.HttpBody` in `message`'s `field`, created when unset.
fn http_body<'a>(message: &'a mut DynamicMessage, field: &FieldDescriptor) -> &'a mut DynamicMessage {
    match message.get_field_mut(field) {
        Value::Message(body) => body,
        _ => unreachable!("the route's body field is a google.api.HttpBody"),
    }
}

/// One message per chunk (at least one); an error is passed on and ends the stream.
pub(crate) fn into_messages<S, E>(chunks: S, messages: UploadMessages) -> impl Stream<Item = Result<DynamicMessage, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    stream::unfold((Box::pin(chunks), Some(messages)), |(mut chunks, messages)| async move {
        let mut messages = messages?;
        match chunks.next().await {
            Some(Ok(data)) => Some((Ok(messages.next(data)), (chunks, Some(messages)))),
            Some(Err(error)) => Some((Err(error), (chunks, None))),
            None if !messages.started() => Some((Ok(messages.next(Bytes::new())), (chunks, None))),
            None => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use http::Method;
    use prost_reflect::DescriptorPool;
    use serde_json::{Value as Json, json};

    use super::*;
    use crate::{
        routes::{BackendMap, Lookup, RouteTable},
        transcode,
    };

    /// The first message of `POST /v1/importJobs:upload?{query}`, as the gateway builds it.
    fn first_message(query: &str) -> DynamicMessage {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let table = RouteTable::from_pool(&pool, &BackendMap::parse("crm.profiles.v1=http://p:1").unwrap()).unwrap();
        let Lookup::Found(route, vars) = table.lookup(&Method::POST, "/v1/importJobs:upload") else { panic!("no upload route") };
        transcode::request_message(route, &vars, Some(query), b"", None).unwrap()
    }

    fn json(message: &DynamicMessage) -> Json {
        serde_json::to_value(message).unwrap()
    }

    fn upload(chunks: Vec<&'static [u8]>, query: &str, content_type: &str) -> Vec<DynamicMessage> {
        let splitter = UploadMessages::new(first_message(query), "file", content_type);
        let chunks = stream::iter(chunks.into_iter().map(|c| Ok::<_, ()>(Bytes::from_static(c))));
        block_on(into_messages(chunks, splitter).map(Result::unwrap).collect())
    }

    #[test]
    fn the_first_message_carries_the_parameters_and_later_ones_only_bytes() {
        let sent = upload(
            vec![b"name,email\n", b"Ada,ada@example.com\n", b"Bo,bo@example.com\n"],
            "fileName=x.csv&encoding=GBK&requestId=abc",
            "text/csv",
        );

        assert_eq!(sent.len(), 3);
        assert_eq!(
            json(&sent[0]),
            json!({
                "fileName": "x.csv",
                "encoding": "GBK",
                "requestId": "abc",
                "file": { "contentType": "text/csv", "data": "bmFtZSxlbWFpbAo=" },
            })
        );
        for (message, data) in sent[1..].iter().zip(["QWRhLGFkYUBleGFtcGxlLmNvbQo=", "Qm8sYm9AZXhhbXBsZS5jb20K"]) {
            assert_eq!(json(message), json!({ "file": { "data": data } }));
        }
    }

    #[test]
    fn an_empty_file_is_still_one_message() {
        let sent = upload(vec![], "fileName=empty.csv", "");
        assert_eq!(sent.len(), 1);
        assert_eq!(json(&sent[0]), json!({ "fileName": "empty.csv", "file": {} }));
    }

    #[test]
    fn a_body_error_is_passed_on_and_ends_the_messages() {
        let splitter = UploadMessages::new(first_message(""), "file", "text/csv");
        let chunks = stream::iter(vec![Ok(Bytes::from_static(b"a,b\n")), Err("reset"), Ok(Bytes::from_static(b"never sent"))]);
        let sent: Vec<Result<DynamicMessage, &str>> = block_on(into_messages(chunks, splitter).collect());
        assert_eq!(sent.len(), 2);
        assert!(sent[0].is_ok());
        assert_eq!(sent[1].as_ref().unwrap_err(), &"reset");
    }
}
