//! What a REST call through the gateway returned, read the same way by every
//! test that speaks HTTP: status, headers, the JSON body and its google.rpc
//! error details.

use reqwest::{StatusCode, header::HeaderMap};
use serde_json::Value;

/// A REST reply.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The JSON body (`Null` when empty, a string when not JSON).
    pub body: Value,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Self { status, headers, body }
    }

    /// The `ErrorInfo` reason of an error reply.
    pub fn reason(&self) -> &str {
        self.detail("google.rpc.ErrorInfo")["reason"].as_str().unwrap_or_else(|| panic!("no ErrorInfo reason in {:#}", self.body))
    }

    /// The error detail of type `google.rpc.<kind>`.
    pub fn detail(&self, kind: &str) -> &Value {
        let url = format!("type.googleapis.com/{kind}");
        self.body["error"]["details"]
            .as_array()
            .and_then(|details| details.iter().find(|d| d["@type"] == url.as_str()))
            .unwrap_or_else(|| panic!("no {kind} in {:#}", self.body))
    }

    /// The `ETag` header without quotes.
    pub fn etag(&self) -> String {
        self.headers.get("etag").expect("an ETag header").to_str().expect("an ASCII ETag").trim_matches('"').to_owned()
    }
}
