//! The OpenAPI 3.1 document of the REST/JSON API, generated once at start-up
//! from the same descriptor pool and route table that serve requests, so it
//! cannot drift from what the gateway accepts. Pure: no I/O.
//!
//! # Path parameters
//! A variable that spans several segments (`{name=customers/*}`) becomes one
//! OpenAPI path parameter per wildcard, with the template's literals kept in
//! the path: `/v1/{name=customers/*}` is `/v1/customers/{customer}` (the
//! parameter named after the collection, singular), and
//! `/v1/{name=teams/*/members/*}` is `/v1/teams/{team}/members/{member}`.
//! That is how Google's gnostic generator writes resource names, and every
//! client (and fuzzer) fills such a path correctly, where a single `{name}`
//! parameter holding `customers/abc` would need its `/` left unescaped, which
//! OpenAPI cannot express for path parameters. The gateway rebuilds `name`
//! (`customers/abc`) from the path as always. A variable bound to a single
//! wildcard (`{ticket_id}`) keeps its field's name; a `**` becomes one
//! parameter whose value may contain `/`.
//!
//! # Layout
//! - [`document`]: the whole document.
//! - `schema`: messages → JSON Schema (proto3 JSON mapping), field behaviour.
//! - `comments`: the proto comments.
//! - `ids`: which collections' ids are UUIDs, and the forms of resource names.

mod comments;
mod ids;
mod schema;

use std::collections::{BTreeMap, HashMap, HashSet};

use http::Method;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use self::{
    comments::Comments,
    ids::{UUID_BODY, UuidCollections},
    schema::Schemas,
};
use crate::{
    routes::{BodyBinding, PathTemplate, Route, RouteTable, Segment},
    transcode,
};

/// Name of the shared error schema in `components/schemas`.
pub const ERROR_SCHEMA: &str = "Error";
/// Name of the bearer-token security scheme.
pub const SECURITY_SCHEME: &str = "bearerAuth";

/// Nested messages below this depth are not offered as dotted query parameters
/// (recursive messages would otherwise never end).
const MAX_QUERY_DEPTH: usize = 4;

/// The OpenAPI 3.1 document of every route in `routes`; `public_methods` are
/// the gRPC paths that take no bearer token (`security: []`).
pub fn document(pool: &DescriptorPool, routes: &RouteTable, public_methods: &HashSet<String>) -> Value {
    let comments = Comments::new(pool);
    let uuid_collections = UuidCollections::new(pool, &comments);
    let requests = routes.routes().iter().map(|r| r.rpc.input().full_name().to_owned()).collect();
    let mut schemas = Schemas::new(pool, &comments, &uuid_collections, requests);
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut operation_ids: HashMap<String, usize> = HashMap::new();
    let mut tags: BTreeMap<String, Value> = BTreeMap::new();

    for route in routes.routes() {
        let Some(verb) = openapi_verb(&route.method) else {
            tracing::warn!(method = %route.method, template = %route.template, "custom HTTP verb left out of the OpenAPI document");
            continue;
        };
        let (path, path_params) = openapi_path(&route.template, &route.rpc.input());
        let item = paths.entry(path.clone()).or_default();
        if item.contains_key(verb) {
            tracing::warn!(%path, verb, "two bindings share an OpenAPI path and verb; the second is left out");
            continue;
        }
        let service = route.rpc.parent_service();
        tags.entry(service.name().to_owned()).or_insert_with(|| {
            let mut tag = json!({ "name": service.name() });
            if let Some(comment) = comments.get(service.parent_file().name(), service.path()) {
                tag["description"] = Value::String(comment.to_owned());
            }
            tag
        });
        let base_id = format!("{}_{}", service.name(), route.rpc.name());
        let seen = operation_ids.entry(base_id.clone()).or_insert(0);
        *seen += 1;
        // Additional bindings of one RPC: Service_Method, Service_Method2, … (grpc-gateway's convention).
        let operation_id = if *seen == 1 { base_id } else { format!("{base_id}{seen}") };
        let comment = comments.get(route.rpc.parent_file().name(), route.rpc.path());
        let operation = operation(route, operation_id, comment, path_params, public_methods, &uuid_collections, &mut schemas);
        item.insert(verb.to_owned(), operation);
    }

    let mut components = schemas.into_components();
    components.insert(ERROR_SCHEMA.to_owned(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "CRM API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST/JSON API of the CRM suite, served by crm-gateway from the services' \
                `google.api.http` rules. Bodies and responses use the proto3 JSON mapping: lowerCamel \
                names, enums by name, 64-bit integers as strings, default values left out. Errors use \
                the Google JSON error format.",
        },
        "tags": tags.into_values().collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT signed with the suite's key (`CRM_JWT_SECRET` or `CRM_JWT_PUBLIC_KEY_FILE`).",
                },
            },
        },
        "security": [{ SECURITY_SCHEME: [] }],
    })
}

fn openapi_verb(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "get",
        Method::PUT => "put",
        Method::POST => "post",
        Method::DELETE => "delete",
        Method::PATCH => "patch",
        Method::HEAD => "head",
        Method::OPTIONS => "options",
        Method::TRACE => "trace",
        _ => return None,
    })
}

/// A path parameter of an OpenAPI path: its name and what it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathParam {
    /// The parameter's name in the OpenAPI path.
    pub name: String,
    /// The request field (proto names, dotted) the variable fills.
    pub field: String,
    /// The variable's pattern, e.g. `customers/*`.
    pub pattern: String,
    /// Whether the value may contain `/` (a `**` wildcard).
    pub multi_segment: bool,
    /// The collection whose id the parameter is (`customers` for `{customer}`),
    /// when it is named after one.
    pub collection: Option<String>,
}

/// The OpenAPI path of `template` and its parameters (see the module docs).
pub fn openapi_path(template: &PathTemplate, input: &MessageDescriptor) -> (String, Vec<PathParam>) {
    let segments = template.segments();
    let mut parts: Vec<String> = Vec::with_capacity(segments.len());
    let mut params: Vec<PathParam> = Vec::new();
    let mut variables = template.variables().iter().peekable();
    let mut i = 0;
    while i < segments.len() {
        let Some(var) = variables.peek().filter(|v| v.span().start == i).copied() else {
            parts.push(match &segments[i] {
                Segment::Literal(l) => l.clone(),
                // A wildcard outside any variable binds nothing; it still needs a value.
                Segment::Any | Segment::Rest => format!("{{{}}}", unique(&mut params, "segment", "", "*", false, None)),
            });
            i += 1;
            continue;
        };
        variables.next();
        let field = var.field_path.join(".");
        let json_field = json_field_path(input, &var.field_path);
        let span = var.span();
        let pattern = segments[span.clone()].iter().map(segment_text).collect::<Vec<_>>().join("/");
        // `{name}` alone keeps the field's name; `{name=customers/*}` is named after `customers`.
        let only_wildcard = span.len() == 1;
        for j in span.clone() {
            match &segments[j] {
                Segment::Literal(l) => parts.push(l.clone()),
                wildcard @ (Segment::Any | Segment::Rest) => {
                    let multi = *wildcard == Segment::Rest;
                    let collection = match j.checked_sub(1).map(|k| &segments[k]) {
                        Some(Segment::Literal(collection)) if !only_wildcard && !multi => Some(collection.clone()),
                        _ => None,
                    };
                    let name = collection.as_deref().map_or_else(|| json_field.clone(), singular);
                    let name = unique(&mut params, &name, &field, &pattern, multi, collection);
                    parts.push(format!("{{{name}}}"));
                }
            }
        }
        i = span.end;
    }
    let mut path = format!("/{}", parts.join("/"));
    if let Some(verb) = template.verb() {
        path.push(':');
        path.push_str(verb);
    }
    (path, params)
}

/// Adds a parameter named `base` (or `base2`, … when taken) and returns the name.
fn unique(params: &mut Vec<PathParam>, base: &str, field: &str, pattern: &str, multi_segment: bool, collection: Option<String>) -> String {
    let mut name = base.to_owned();
    let mut n = 1;
    while params.iter().any(|p| p.name == name) {
        n += 1;
        name = format!("{base}{n}");
    }
    params.push(PathParam { name: name.clone(), field: field.to_owned(), pattern: pattern.to_owned(), multi_segment, collection });
    name
}

fn segment_text(segment: &Segment) -> String {
    match segment {
        Segment::Literal(l) => l.clone(),
        Segment::Any => "*".into(),
        Segment::Rest => "**".into(),
    }
}

/// `customers` → `customer`, `slaPolicies` → `slaPolicy`; anything else as is.
fn singular(collection: &str) -> String {
    if let Some(stem) = collection.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = collection.strip_suffix('s').filter(|s| !s.is_empty() && !s.ends_with('s')) {
        stem.to_owned()
    } else {
        collection.to_owned()
    }
}

/// The lowerCamel (JSON) spelling of a proto field path, e.g. `ticket.name`.
fn json_field_path(input: &MessageDescriptor, path: &[String]) -> String {
    let mut message = Some(input.clone());
    let mut out = Vec::with_capacity(path.len());
    for part in path {
        let field = message.as_ref().and_then(|m| m.get_field_by_name(part));
        out.push(field.as_ref().map_or_else(|| part.clone(), |f| f.json_name().to_owned()));
        message = field.and_then(|f| match f.kind() {
            Kind::Message(m) => Some(m),
            _ => None,
        });
    }
    out.join(".")
}

fn operation(
    route: &Route,
    operation_id: String,
    comment: Option<&str>,
    path_params: Vec<PathParam>,
    public_methods: &HashSet<String>,
    uuid_collections: &UuidCollections,
    schemas: &mut Schemas<'_>,
) -> Value {
    let input = route.rpc.input();
    let mut op = Map::new();
    op.insert("operationId".into(), Value::String(operation_id));
    op.insert("tags".into(), json!([route.rpc.parent_service().name()]));
    let rpc_line = format!("gRPC: `{}`", route.grpc_path().trim_start_matches('/'));
    match comment {
        Some(text) => {
            let summary = summary(text);
            // A one-sentence comment is the summary; Redoc would show it twice.
            let description = if summary == text { rpc_line } else { format!("{text}\n\n{rpc_line}") };
            op.insert("summary".into(), Value::String(summary));
            op.insert("description".into(), Value::String(description));
        }
        None => {
            op.insert("summary".into(), Value::String(route.rpc.name().to_owned()));
            op.insert("description".into(), Value::String(rpc_line));
        }
    }

    let mut parameters: Vec<Value> = path_params
        .iter()
        .map(|p| {
            let mut description = if p.field.is_empty() {
                "A path segment (matches any value).".to_owned()
            } else {
                format!("Part of `{}` (`{}`).", p.field, p.pattern)
            };
            description.push_str(if p.multi_segment { " May contain `/`." } else { " One path segment: no `/`." });
            let comment = crate::routes::resolve_field_path(&input, &split(&p.field)).ok().and_then(|f| schemas.comment_of_field(&f));
            if let Some(text) = comment {
                description = format!("{description} {text}");
            }
            // No `pattern: ^[^/]+$` on the others: a fuzzer cannot negate it (a `/`
            // would change the path), so it reports the operation as untestable with
            // invalid data. A UUID's pattern it can negate without a `/`.
            let uuid_collection = p.collection.as_deref().filter(|c| uuid_collections.contains(c));
            let schema = match uuid_collection {
                // AIP-159: `-` for "every parent", where the field's comment offers it ("customers/-").
                Some(c) if comment.is_some_and(|text| text.contains(&format!("{c}/-"))) => {
                    description.push_str(" A UUID (the services assign UUIDv7s), or `-` for any.");
                    json!({ "type": "string", "pattern": format!("^(?:-|{UUID_BODY})$") })
                }
                Some(_) => {
                    description.push_str(" A UUID (the services assign UUIDv7s).");
                    json!({ "type": "string", "format": "uuid", "pattern": format!("^{UUID_BODY}$") })
                }
                None => json!({ "type": "string", "minLength": 1 }),
            };
            json!({ "name": p.name, "in": "path", "required": true, "description": description, "schema": schema })
        })
        .collect();

    let path_fields: Vec<Vec<String>> = route.template.variables().iter().map(|v| v.field_path.clone()).collect();
    match &route.body {
        BodyBinding::Whole => {
            // Top-level fields bound by the path are not part of the body.
            let skip: Vec<&str> = path_fields.iter().filter(|p| p.len() == 1).map(|p| p[0].as_str()).collect();
            let body = if skip.is_empty() { schemas.message(&input) } else { schemas.object(&input, &skip, true) };
            op.insert("requestBody".into(), json!({ "required": true, "content": { "application/json": { "schema": body } } }));
        }
        BodyBinding::Field(name) => {
            let field = input.get_field_by_name(name).expect("checked when the route was built");
            let mut schema = schemas.field(&field);
            // A resource's REQUIRED fields bind on create (and other whole-resource
            // writes), not on a PATCH that names its fields in the update mask.
            if route.method != Method::PATCH
                && !field.is_list()
                && !field.is_map()
                && let Kind::Message(resource) = field.kind()
            {
                let required = schemas.required_fields(&resource);
                if !required.is_empty() {
                    let properties = schemas.non_blank_required(&resource);
                    schema = json!({ "allOf": [schema], "required": required, "properties": properties });
                }
            }
            if let Some(text) = schemas.comment_of_field(&field) {
                schema["description"] = Value::String(text.to_owned());
            }
            let required = schemas.is_required(&field);
            op.insert("requestBody".into(), json!({ "required": required, "content": { "application/json": { "schema": schema } } }));
        }
        BodyBinding::Raw(name) if route.streams_request_body() => {
            let field = input.get_field_by_name(name).expect("checked when the route was built");
            op.insert("requestBody".into(), streamed_request_body(&field));
        }
        BodyBinding::Raw(name) => {
            let field = input.get_field_by_name(name).expect("checked when the route was built");
            let description = schemas.comment_of_field(&field).unwrap_or("The request body, passed on as sent.");
            // Any media type is passed on; a form is what clients send in practice (RFC 8058's one-click POST).
            let form = json!({ "schema": { "type": "object", "additionalProperties": { "type": "string" } } });
            op.insert(
                "requestBody".into(),
                json!({ "required": false, "description": description, "content": { "application/x-www-form-urlencoded": form } }),
            );
        }
        BodyBinding::None => {}
    }
    if route.body != BodyBinding::Whole {
        let mut bound = path_fields.clone();
        if let BodyBinding::Field(name) | BodyBinding::Raw(name) = &route.body {
            bound.push(vec![name.clone()]);
        }
        query_parameters(&input, &mut Vec::new(), &mut Vec::new(), &bound, schemas, &mut parameters);
        if let BodyBinding::Field(name) = &route.body
            && let Some(Kind::Message(resource)) = input.get_field_by_name(name).map(|f| f.kind())
        {
            constrain_update_mask(&mut parameters, &resource, schemas);
        }
    }
    if takes_if_match(route) && has_etag(&input) {
        parameters.push(json!({
            "name": "If-Match",
            "in": "header",
            "required": false,
            "description": "The resource's `ETag`: the call fails with 409 `ABORTED` if the resource changed since.",
            "schema": { "type": "string" },
        }));
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }

    let output = route.rpc.output();
    let response_schema = match &route.response_body {
        Some(name) => schemas.field(&output.get_field_by_name(name).expect("checked when the route was built")),
        None => schemas.message(&output),
    };
    let ok = if route.raw_response() {
        let field = output.get_field_by_name(route.response_body.as_deref().unwrap_or_default()).expect("an HttpBody field");
        let description = if route.rpc.is_server_streaming() {
            "The file as the service streams it, in its own media type, sent as it arrives (chunked). An error \
                before the first byte is answered as usual; a later one aborts the transfer, so a download that \
                ends early is never a complete-looking file."
        } else {
            "The body as the service sends it, in its own media type (see the description)."
        };
        json!({ "description": description, "content": raw_content(&field, schemas) })
    } else if route.rpc.is_server_streaming() {
        json!({
            "description": "A stream of newline-delimited JSON messages, one per line (an error after the first \
                message ends the stream with one `{\"error\": …}` line).",
            "content": { "application/x-ndjson": { "schema": response_schema } },
        })
    } else {
        let mut ok = json!({ "description": "OK", "content": { "application/json": { "schema": response_schema } } });
        if transcode::resource_field(&output).is_some() {
            ok["headers"] = json!({ "ETag": { "description": "The returned resource's etag, quoted.", "schema": { "type": "string" } } });
        }
        ok
    };
    let mut responses = json!({
        "200": ok,
        "default": {
            "description": "An error in the Google JSON error format.",
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{ERROR_SCHEMA}") } } },
        },
    });
    if route.raw_response() && !route.rpc.is_server_streaming() {
        // A backend's `location` metadata turns the answer into a redirect (a tracked link).
        responses["302"] = json!({
            "description": "A redirect to `Location`, with the same body for clients that do not follow it.",
            "headers": { "Location": { "description": "Where to go.", "schema": { "type": "string" } } },
            "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } },
        });
    }
    op.insert("responses".into(), responses);
    if public_methods.contains(route.grpc_path()) {
        op.insert("security".into(), json!([]));
    }
    Value::Object(op)
}

/// The request body of an upload (a client stream of `google.api.HttpBody`):
/// the file as sent, any media type, or a multipart form with a `file` part.
/// (The field's own comment speaks of one gRPC message's chunk, not of the HTTP body.)
fn streamed_request_body(field: &FieldDescriptor) -> Value {
    let binary = json!({ "type": "string", "format": "binary" });
    let description = "The file, streamed to the service as it arrives (no size limit at the gateway; the service \
        has its own). Sent as is, its `Content-Type` is passed on; or as `multipart/form-data`, whose first part \
        with a filename (or else the part named after this field) is the file, its filename the default file name.";
    json!({
        "required": true,
        "description": description,
        "content": {
            "application/octet-stream": { "schema": binary },
            "multipart/form-data": {
                "schema": { "type": "object", "required": [field.name()], "properties": { field.name(): binary } },
            },
        },
    })
}

/// The content of a `google.api.HttpBody` response: binary, in the media
/// types its field's comment names (`// text/csv; charset=utf-8 bytes`), else any.
fn raw_content(field: &FieldDescriptor, schemas: &Schemas<'_>) -> Value {
    let binary = json!({ "schema": { "type": "string", "format": "binary" } });
    let mut types = schemas.comment_of_field(field).map(media_types_named_in).unwrap_or_default();
    if types.is_empty() {
        types.push("*/*".to_owned());
    }
    Value::Object(types.into_iter().map(|t| (t, binary.clone())).collect())
}

/// The media types (`image/gif`, `text/csv`) a comment names, in order.
fn media_types_named_in(comment: &str) -> Vec<String> {
    const TOP_LEVEL: [&str; 6] = ["application", "audio", "font", "image", "text", "video"];
    let mut found: Vec<String> = Vec::new();
    for word in comment.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '`' | '"')) {
        let word = word.trim_end_matches(['.', ':']).to_ascii_lowercase();
        let Some((top, sub)) = word.split_once('/') else { continue };
        let sub_ok = !sub.is_empty() && sub.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
        if TOP_LEVEL.contains(&top) && sub_ok && !found.contains(&word) {
            found.push(word);
        }
    }
    found
}

/// The first sentence (or line) of a comment, for `summary`.
fn summary(comment: &str) -> String {
    let first_paragraph = comment.split("\n\n").next().unwrap_or_default().replace('\n', " ");
    match first_paragraph.find(". ") {
        Some(end) => first_paragraph[..=end].to_owned(),
        None => first_paragraph,
    }
}

fn split(field: &str) -> Vec<String> {
    field.split('.').map(str::to_owned).collect()
}

/// Whether `If-Match` lands somewhere: the request's `etag`, or its resource's.
fn has_etag(input: &MessageDescriptor) -> bool {
    input.get_field_by_name("etag").is_some_and(|f| f.kind() == Kind::String) || transcode::resource_field(input).is_some()
}

/// Same rule as the handler: updates, deletes and custom methods (`:verb`).
fn takes_if_match(route: &Route) -> bool {
    matches!(route.method, Method::PATCH | Method::PUT | Method::DELETE)
        || (route.method == Method::POST && route.template.verb().is_some())
}

/// Every field the query can set (what `transcode::query` accepts): scalars,
/// enums, scalar well-known types and repeated ones of those, nested fields
/// dotted; fields bound by the path or the body are left out.
fn query_parameters(
    message: &MessageDescriptor,
    proto_path: &mut Vec<String>,
    json_path: &mut Vec<String>,
    bound: &[Vec<String>],
    schemas: &mut Schemas<'_>,
    out: &mut Vec<Value>,
) {
    for field in message.fields() {
        proto_path.push(field.name().to_owned());
        json_path.push(field.json_name().to_owned());
        let is_bound = bound.iter().any(|b| b.starts_with(proto_path) || proto_path.starts_with(b));
        if !is_bound && !field.is_map() {
            match field.kind() {
                Kind::Message(m) => match schema::well_known(m.full_name()) {
                    Some(wkt) if is_scalar_json(&wkt) => out.push(query_parameter(&field, json_path, schemas)),
                    // Struct, Value, Any, …: settable in a body only.
                    Some(_) => {}
                    None if !field.is_list() && proto_path.len() < MAX_QUERY_DEPTH => {
                        query_parameters(&m, proto_path, json_path, bound, schemas, out);
                    }
                    None => {}
                },
                _ => out.push(query_parameter(&field, json_path, schemas)),
            }
        }
        proto_path.pop();
        json_path.pop();
    }
}

fn query_parameter(field: &FieldDescriptor, json_path: &[String], schemas: &mut Schemas<'_>) -> Value {
    let mut schema = schemas.field(field);
    match schema.get_mut("items") {
        Some(items) => strip_null(items),
        None => strip_null(&mut schema),
    }
    // AIP-158: a negative page size is refused (a large one is capped).
    if field.name() == "page_size" && json_path.len() == 1 {
        schema["minimum"] = json!(0);
    }
    // A REQUIRED field of the request itself must come in the query; one inside
    // an optional message (a dotted name) only when that message is sent.
    let required = json_path.len() == 1 && schemas.is_required(field);
    let mut param = json!({ "name": json_path.join("."), "in": "query", "required": required, "schema": schema });
    let mut description = Vec::new();
    if schemas.is_required(field) {
        description.push("Required.");
    }
    description.extend(schemas.comment_of_field(field));
    if field.is_list() {
        description.push("Repeat the parameter for several values.");
    }
    if !description.is_empty() {
        param["description"] = Value::String(description.join(" "));
    }
    param
}

/// Gives an update's `updateMask` the paths it can name: `*`, or a comma
/// list of the body resource's fields that are not output only (the services
/// refuse other paths, and most updates refuse a missing mask).
fn constrain_update_mask(parameters: &mut [Value], resource: &MessageDescriptor, schemas: &Schemas<'_>) {
    let Some(mask) = parameters.iter_mut().find(|p| p["name"] == "updateMask" && p["schema"]["type"] == "string") else { return };
    let writable: Vec<String> = resource
        .fields()
        .filter(|f| f.name() != "name" && !schemas.behaviors(f).contains(&schema::OUTPUT_ONLY))
        .map(|f| f.json_name().to_owned())
        .collect();
    if writable.is_empty() {
        return;
    }
    let one = format!("(?:{})", writable.join("|"));
    mask["schema"]["pattern"] = Value::String(format!("^(?:\\*|{one}(?:,{one})*)$"));
}

/// Whether a well-known type's JSON form is a single scalar (settable from the query).
fn is_scalar_json(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t != "object" && t != "array",
        Value::Array(types) => types.iter().all(|t| t != "object" && t != "array"),
        _ => false,
    }
}

/// A query parameter cannot be JSON `null`: `["string", "null"]` → `"string"`.
fn strip_null(schema: &mut Value) {
    if let Some(Value::Array(types)) = schema.get("type") {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if kept.len() == 1 {
            schema["type"] = kept[0].clone();
        }
    }
}

/// The Google JSON error format every failure is answered in.
fn error_schema() -> Value {
    let statuses = [
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    json!({
        "title": "Error",
        "description": "The Google JSON error format: the HTTP status, the gRPC status name, a message for \
            developers and the typed details (`google.rpc.ErrorInfo` on every error; `BadRequest`, \
            `PreconditionFailure`, … where they apply).",
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "status"],
                "properties": {
                    "code": { "type": "integer", "description": "The HTTP status code." },
                    "message": { "type": "string" },
                    "status": { "type": "string", "enum": statuses, "description": "The gRPC status code's name." },
                    "details": {
                        "type": "array",
                        "items": schema::well_known("google.protobuf.Any").expect("Any is a well-known type"),
                    },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(template: &str) -> (String, Vec<String>) {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let input = pool.get_message_by_name("crm.profiles.v1.GetCustomerRequest").unwrap();
        let (path, params) = openapi_path(&PathTemplate::parse(template).unwrap(), &input);
        (path, params.into_iter().map(|p| p.name).collect())
    }

    #[test]
    fn resource_names_become_one_parameter_per_wildcard() {
        assert_eq!(path_of("/v1/{name=customers/*}"), ("/v1/customers/{customer}".into(), vec!["customer".into()]));
        assert_eq!(path_of("/v1/{name=customers/*}:undelete").0, "/v1/customers/{customer}:undelete");
        assert_eq!(path_of("/v1/{name=teams/*/members/*}").0, "/v1/teams/{team}/members/{member}");
        assert_eq!(path_of("/v1/{name=slaPolicies/*}").0, "/v1/slaPolicies/{slaPolicy}");
        assert_eq!(path_of("/v1/{name}").0, "/v1/{name}");
        assert_eq!(path_of("/v1/{name=things/**}").0, "/v1/things/{name}");
        assert_eq!(path_of("/v1/customers").0, "/v1/customers");
        assert_eq!(path_of("/v1/{name=a/*/a/*}").1, vec!["a".to_owned(), "a2".to_owned()]);
    }

    #[test]
    fn media_types_are_read_from_comments() {
        assert_eq!(media_types_named_in("text/csv; charset=utf-8 bytes, in order."), vec!["text/csv"]);
        assert_eq!(media_types_named_in("image/gif, 1×1, transparent."), vec!["image/gif"]);
        assert_eq!(media_types_named_in("A PDF (`application/pdf`) or image/png."), vec!["application/pdf", "image/png"]);
        assert!(media_types_named_in("A short HTML page, and/or a link.").is_empty());
    }

    #[test]
    fn summaries_are_the_first_sentence() {
        assert_eq!(summary("Gets a customer. Fails when deleted.\n\nMore."), "Gets a customer.");
        assert_eq!(summary("Lists tickets"), "Lists tickets");
    }
}
