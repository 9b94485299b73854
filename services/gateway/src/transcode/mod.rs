//! JSON ⇄ protobuf for one route: the request message is assembled from the
//! body, the path variables and the query parameters as one proto3-JSON
//! object and then parsed once by prost-reflect (so well-known types, enums by
//! name, 64-bit integers as strings and unknown-field rejection behave exactly
//! as the proto3 JSON mapping says); responses are printed the same way.
//!
//! Also owns the `etag` conventions: which field of a response is "the
//! resource" (for the `ETag` header) and where `If-Match` goes in a request.
//!
//! # Layout
//! - `object`: where a field path's value goes in the JSON object being assembled.
//! - `query`: query parameters → request fields.

mod object;
mod query;

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, SerializeOptions, Value as ProtoValue,
};
use serde_json::{Map, Value, json};

use self::object::set_path;
use crate::{
    errors::ApiError,
    routes::{BodyBinding, Route},
};

/// Builds the request message of `route` from the path variables, the raw
/// query string and the body bytes.
pub fn request_message(
    route: &Route,
    vars: &[(Vec<String>, String)],
    query: Option<&str>,
    body: &[u8],
    content_type: Option<&str>,
) -> Result<DynamicMessage, ApiError> {
    let input = route.rpc.input();
    let body_is_empty = body.iter().all(u8::is_ascii_whitespace);
    let mut root = Map::new();
    // Top-level fields the body or the path already set; the query may not set them again.
    let mut bound: Vec<Vec<String>> = Vec::new();
    match &route.body {
        BodyBinding::None if !body_is_empty => {
            return Err(ApiError::bad_request("BODY_NOT_ALLOWED", format!("{} {} takes no request body", route.method, route.template)));
        }
        BodyBinding::None => {}
        BodyBinding::Whole => {
            if !body_is_empty {
                match parse_json(body)? {
                    Value::Object(map) => root = map,
                    _ => return Err(ApiError::bad_request("INVALID_JSON", "the request body must be a JSON object")),
                }
            }
        }
        BodyBinding::Field(name) => {
            let field = input.get_field_by_name(name).expect("checked when the route was built");
            if !body_is_empty {
                root.insert(field.json_name().to_owned(), parse_json(body)?);
            }
            bound.push(vec![name.clone()]);
        }
        BodyBinding::Raw(name) => {
            let field = input.get_field_by_name(name).expect("checked when the route was built");
            let http_body = json!({ "contentType": content_type.unwrap_or_default(), "data": STANDARD.encode(body) });
            root.insert(field.json_name().to_owned(), http_body);
            bound.push(vec![name.clone()]);
        }
    }
    for (path, value) in vars {
        set_path(&mut root, &input, path, Value::String(value.clone()))?;
        bound.push(path.clone());
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        if route.body == BodyBinding::Whole {
            return Err(ApiError::bad_request(
                "QUERY_NOT_ALLOWED",
                format!("{} {} takes every field from the body; query parameters are not accepted", route.method, route.template),
            ));
        }
        query::apply(&mut root, &input, query, &bound)?;
    }
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(input, Value::Object(root), &options)
        .map_err(|e| ApiError::bad_request("INVALID_ARGUMENT", format!("invalid request: {e}")))
}

/// The response as JSON bytes (proto3 JSON: lowerCamel names, enums as names,
/// 64-bit integers as strings, default values omitted), or only its
/// `response_body` field when the rule names one.
pub fn response_json(route: &Route, message: &DynamicMessage) -> Vec<u8> {
    let options = SerializeOptions::new();
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    let field = route.response_body.as_deref().and_then(|name| route.rpc.output().get_field_by_name(name));
    match field {
        None => message.serialize_with_options(&mut serializer, &options).expect("a dynamic message always serialises"),
        // The resource itself, serialised directly (not the whole response, re-parsed and cut).
        Some(field) if !message.has_field(&field) => out.extend_from_slice(b"null"),
        Some(field) => match message.get_field(&field).as_ref() {
            ProtoValue::Message(resource) => {
                resource.serialize_with_options(&mut serializer, &options).expect("a dynamic message always serialises")
            }
            _ => {
                // A scalar response_body (none in the suite's protos): cut it from the whole response.
                message.serialize_with_options(&mut serializer, &options).expect("a dynamic message always serialises");
                let value: Value = serde_json::from_slice(&out).expect("just serialised");
                return serde_json::to_vec(value.get(field.json_name()).unwrap_or(&Value::Null)).expect("JSON");
            }
        },
    }
    out
}

/// The content type and bytes of the `google.api.HttpBody` in `route`'s
/// `response_body` field (empty when unset or not a valid header value).
/// Takes the message so that the bytes are moved out, not copied: a streamed
/// file passes through chunk by chunk.
pub fn response_http_body(route: &Route, mut message: DynamicMessage) -> (http::HeaderValue, Bytes) {
    let body = route.response_body.as_deref().and_then(|name| message.take_field_by_name(name));
    let Some(ProtoValue::Message(mut body)) = body else { return (http::HeaderValue::from_static(""), Bytes::new()) };
    let content_type = match body.get_field_by_name("content_type").as_deref() {
        Some(ProtoValue::String(s)) => http::HeaderValue::from_str(s).unwrap_or(http::HeaderValue::from_static("")),
        _ => http::HeaderValue::from_static(""),
    };
    let data = match body.take_field_by_name("data") {
        Some(ProtoValue::Bytes(b)) => b,
        _ => Bytes::new(),
    };
    (content_type, data)
}

/// A stream item as one NDJSON line.
pub fn stream_line(message: &DynamicMessage) -> Vec<u8> {
    let mut out = Vec::new();
    message.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &SerializeOptions::new()).expect("serialises");
    out.push(b'\n');
    out
}

/// The resource field of a message: its single singular message field whose
/// type has a string `etag` (e.g. `customer` in `UpdateCustomerResponse`).
pub fn resource_field(message: &MessageDescriptor) -> Option<FieldDescriptor> {
    let mut candidates = message.fields().filter(|f| {
        !f.is_list()
            && !f.is_map()
            && matches!(f.kind(), Kind::Message(m) if m.get_field_by_name("etag").is_some_and(|e| e.kind() == Kind::String))
    });
    let first = candidates.next()?;
    candidates.next().is_none().then_some(first)
}

/// The etag of the response's resource, for the `ETag` header.
pub fn response_etag(message: &DynamicMessage) -> Option<String> {
    let field = resource_field(&message.descriptor())?;
    if !message.has_field(&field) {
        return None;
    }
    let resource = message.get_field(&field);
    let etag = resource.as_message()?.get_field_by_name("etag")?;
    etag.as_str().filter(|e| !e.is_empty()).map(str::to_owned)
}

/// Puts an `If-Match` value into the request: into its own `etag` field when
/// it has one (Delete, Undelete, custom methods), else into the resource's
/// (Update). Returns whether the request had a place for it.
pub fn apply_if_match(message: &mut DynamicMessage, etag: &str) -> bool {
    let desc = message.descriptor();
    if desc.get_field_by_name("etag").is_some_and(|f| f.kind() == Kind::String) {
        message.set_field_by_name("etag", ProtoValue::String(etag.to_owned()));
        return true;
    }
    let Some(field) = resource_field(&desc) else { return false };
    match message.get_field_mut(&field) {
        ProtoValue::Message(resource) => {
            resource.set_field_by_name("etag", ProtoValue::String(etag.to_owned()));
            true
        }
        _ => false,
    }
}

/// Lowers a request's `page_size` to `max` (AIP-158 lets a server coerce a
/// too-large page size); mobile clients get pages the gateway can afford.
pub fn cap_page_size(message: &mut DynamicMessage, max: i32) {
    let desc = message.descriptor();
    let Some(field) = desc.get_field_by_name("page_size").filter(|f| f.kind() == Kind::Int32) else { return };
    if message.get_field(&field).as_i32().is_some_and(|size| size > max) {
        message.set_field(&field, ProtoValue::I32(max));
    }
}

/// `If-Match: "abc"` / `W/"abc"` / `abc` → `abc`; `*` (any version) → None.
pub fn parse_if_match(header: &str) -> Option<String> {
    let value = header.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    (value != "*" && !value.is_empty()).then(|| value.to_owned())
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("INVALID_JSON", format!("the request body is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use http::Method;
    use prost_reflect::DescriptorPool;

    use super::*;
    use crate::routes::{BackendMap, Lookup, RouteTable};

    fn table() -> RouteTable {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let backends = "crm.profiles.v1=http://p:1,crm.tickets.v1=http://t:2,crm.campaigns.v1=http://c:3";
        RouteTable::from_pool(&pool, &BackendMap::parse(backends).unwrap()).unwrap()
    }

    fn build(method: Method, path: &str, query: Option<&str>, body: &str) -> Result<Value, ApiError> {
        let table = table();
        let Lookup::Found(route, vars) = table.lookup(&method, path) else { panic!("no route for {path}") };
        let message = request_message(route, &vars, query, body.as_bytes(), None)?;
        Ok(serde_json::to_value(&message).unwrap())
    }

    fn reason(result: Result<Value, ApiError>) -> &'static str {
        match result.expect_err("should fail") {
            ApiError::BadRequest { reason, .. } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn path_body_and_query_fill_one_message() {
        let json = build(
            Method::PATCH,
            "/v1/customers/c1",
            Some("updateMask=displayName,emails"),
            r#"{"displayName":"Ada","etag":"e1","category":"CUSTOMER_CATEGORY_VIP"}"#,
        )
        .unwrap();
        assert_eq!(json["customer"]["name"], "customers/c1");
        assert_eq!(json["customer"]["displayName"], "Ada");
        assert_eq!(json["customer"]["category"], "CUSTOMER_CATEGORY_VIP");
        assert_eq!(json["updateMask"], "displayName,emails");
    }

    #[test]
    fn query_parameters_take_either_case_and_convert_types() {
        let json =
            build(Method::GET, "/v1/customers", Some("page_size=20&pageToken=abc&filter=tags%3Agold&orderBy=display_name"), "").unwrap();
        assert_eq!(json["pageSize"], 20);
        assert_eq!(json["pageToken"], "abc");
        assert_eq!(json["filter"], "tags:gold");
        let json = build(Method::GET, "/v1/customers:batchGet", Some("names=customers/a&names=customers/b"), "").unwrap();
        assert_eq!(json["names"], serde_json::json!(["customers/a", "customers/b"]));
    }

    #[test]
    fn client_mistakes_are_bad_requests() {
        assert_eq!(reason(build(Method::POST, "/v1/customers", None, "{not json")), "INVALID_JSON");
        assert!(matches!(
            build(Method::POST, "/v1/customers", None, r#"{"displayName":"A","bogus":1}"#),
            Err(ApiError::BadRequest { ref message, .. }) if message.contains("bogus")
        ));
        assert_eq!(reason(build(Method::POST, "/v1/customers", None, r#"{"displayName":42}"#)), "INVALID_ARGUMENT");
        assert_eq!(reason(build(Method::GET, "/v1/customers", Some("pageSize=abc"), "")), "INVALID_ARGUMENT");
        assert_eq!(reason(build(Method::GET, "/v1/customers", Some("nope=1"), "")), "UNKNOWN_QUERY_PARAMETER");
        assert_eq!(reason(build(Method::GET, "/v1/customers/c1", None, "{}")), "BODY_NOT_ALLOWED");
        assert_eq!(reason(build(Method::POST, "/v1/customers/c1:undelete", Some("etag=x"), "{}")), "QUERY_NOT_ALLOWED");
        assert_eq!(reason(build(Method::GET, "/v1/customers/c1", Some("name=customers/other"), "")), "FIELD_BOUND_TWICE");
    }

    #[test]
    fn an_http_body_field_takes_the_body_as_sent() {
        let table = table();
        let Lookup::Found(route, vars) = table.lookup(&Method::POST, "/v1/unsubscribeLinks/t0k3n:unsubscribe") else { panic!() };
        assert_eq!(route.body, BodyBinding::Raw("form".into()));
        let form = "application/x-www-form-urlencoded";
        let message = request_message(route, &vars, None, b"List-Unsubscribe=One-Click", Some(form)).unwrap();
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["name"], "unsubscribeLinks/t0k3n");
        assert_eq!(json["form"]["contentType"], form);
        assert_eq!(json["form"]["data"], STANDARD.encode("List-Unsubscribe=One-Click"));
        // Not JSON, and not refused for it; an empty body is an empty HttpBody.
        let empty = request_message(route, &vars, None, b"", None).unwrap();
        assert_eq!(serde_json::to_value(&empty).unwrap()["name"], "unsubscribeLinks/t0k3n");
    }

    #[test]
    fn if_match_lands_in_the_request_or_its_resource() {
        let table = table();
        let Lookup::Found(route, vars) = table.lookup(&Method::PATCH, "/v1/customers/c1") else { panic!() };
        let mut update = request_message(route, &vars, Some("updateMask=displayName"), br#"{"displayName":"A"}"#, None).unwrap();
        assert!(apply_if_match(&mut update, "e7"));
        assert_eq!(serde_json::to_value(&update).unwrap()["customer"]["etag"], "e7");
        let Lookup::Found(route, vars) = table.lookup(&Method::DELETE, "/v1/customers/c1") else { panic!() };
        let mut delete = request_message(route, &vars, None, b"", None).unwrap();
        assert!(apply_if_match(&mut delete, "e8"));
        assert_eq!(serde_json::to_value(&delete).unwrap()["etag"], "e8");
        assert_eq!(parse_if_match("\"abc\""), Some("abc".into()));
        assert_eq!(parse_if_match("W/\"abc\""), Some("abc".into()));
        assert_eq!(parse_if_match("*"), None);
    }
}
