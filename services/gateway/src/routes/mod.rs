//! The route table: every `google.api.http` binding of every routed gRPC
//! method, built once at start-up from a descriptor pool, and the lookup of
//! an HTTP request (verb + path) in it. Pure: no I/O.
//!
//! Services the gateway serves itself ([`LOCAL_SERVICES`], e.g. the customer
//! 360) are routed like the others, to the [`LOCAL`] backend.
//!
//! The table keeps what OpenAPI generation needs (method descriptors,
//! templates, body fields) so that it can be generated from the same source.

pub mod template;

use std::collections::BTreeSet;

use crm_proto::google::api::{HttpRule, http_rule::Pattern};
use http::Method;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, ServiceDescriptor, Value};

pub use self::template::{Bindings, PathTemplate, Segment, TemplateError};

/// `Route::backend` of the services the gateway serves itself.
pub const LOCAL: &str = "gateway";
/// The services the gateway serves itself (they need no `CRM_BACKENDS` entry).
pub const LOCAL_SERVICES: &[&str] = &["crm.gateway.v1.OverviewService"];

/// Packages every service serves about itself (the kit's webhooks): routed
/// once per backend package, under `/v1/{source}/…` — e.g.
/// `/v1/profiles/webhooks` — unless a `CRM_BACKENDS` entry names the package
/// itself. (The kit's event stream, `crm.events.v1`, is for services and is
/// not routed: an endless stream has no place in a REST API.)
pub const PER_SOURCE_PACKAGES: &[&str] = &["crm.webhooks.v1"];

/// Where the HTTP body goes in the request message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyBinding {
    /// No body (`body` unset): every field not in the path comes from the query.
    None,
    /// `body: "*"`: the body is the request message (minus path fields).
    Whole,
    /// `body: "field"`: the body is that top-level field.
    Field(String),
    /// `body: "field"` naming a `google.api.HttpBody`: the body is passed as
    /// sent, any content type (a form POST from a mail client, say), in that field.
    Raw(String),
}

/// The message that carries a raw HTTP body.
pub const HTTP_BODY: &str = "google.api.HttpBody";

/// One HTTP binding of one gRPC method.
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP verb.
    pub method: Method,
    /// Path template.
    pub template: PathTemplate,
    /// Where the body goes.
    pub body: BodyBinding,
    /// `response_body`: the response field sent instead of the whole message.
    pub response_body: Option<String>,
    /// The gRPC method.
    pub rpc: MethodDescriptor,
    /// The backend URL that serves it.
    pub backend: String,
    /// The gRPC path, built once (every request uses it).
    path: http::uri::PathAndQuery,
    /// The template as text, for spans and metrics (`http.route`).
    http_route: String,
}

impl Route {
    /// The gRPC path, e.g. `/crm.profiles.v1.CustomerService/GetCustomer`.
    pub fn grpc_path(&self) -> &str {
        self.path.as_str()
    }

    /// The gRPC path as the client API takes it.
    pub fn path_and_query(&self) -> http::uri::PathAndQuery {
        self.path.clone()
    }

    /// The template as written in the rule, e.g. `/v1/{name=customers/*}`.
    pub fn http_route(&self) -> &str {
        &self.http_route
    }

    /// Whether the HTTP body is streamed into a client-streaming RPC (only
    /// routed when it binds a `google.api.HttpBody`, see [`crate::upload`]).
    pub fn streams_request_body(&self) -> bool {
        self.rpc.is_client_streaming()
    }

    /// Whether `response_body` names a `google.api.HttpBody`: the answer is
    /// its bytes with its content type (a tracking pixel, a redirect page), not JSON.
    pub fn raw_response(&self) -> bool {
        self.response_body
            .as_deref()
            .and_then(|name| self.rpc.output().get_field_by_name(name))
            .is_some_and(|field| matches!(field.kind(), Kind::Message(m) if m.full_name() == HTTP_BODY))
    }
}

/// Whether REST can carry the route's RPC: unary and server-streaming RPCs
/// always; a client-streaming one only when its body is a `google.api.HttpBody`
/// (the HTTP body, streamed in as chunks: [`crate::upload`]), since nothing
/// else in one HTTP request splits naturally into a stream of messages; a
/// bidirectional one never (a client's next message cannot wait for the
/// server's answer within one HTTP request).
fn servable(route: &Route) -> bool {
    !route.rpc.is_client_streaming() || (matches!(route.body, BodyBinding::Raw(_)) && !route.rpc.is_server_streaming())
}

/// Which backend serves which proto package (or single service).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendMap {
    entries: Vec<(String, String)>,
}

impl BackendMap {
    /// Parses `crm.profiles.v1=http://127.0.0.1:50051,crm.tickets.v1=http://…`.
    /// A key is a proto package or a fully-qualified service name.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut entries: Vec<(String, String)> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, url) = item.split_once('=').ok_or_else(|| format!("backend {item:?} is not `package=url`"))?;
            let (key, url) = (key.trim(), url.trim());
            if key.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("backend {item:?} needs a package and an http(s) URL"));
            }
            if entries.iter().any(|(k, _)| k == key) {
                return Err(format!("backend {key:?} is configured twice"));
            }
            entries.push((key.to_owned(), url.trim_end_matches('/').to_owned()));
        }
        Ok(Self { entries })
    }

    /// The backend of `service`: its own entry, else its package's.
    pub fn backend_for(&self, service: &ServiceDescriptor) -> Option<&str> {
        let find = |key: &str| self.entries.iter().find(|(k, _)| k == key).map(|(_, url)| url.as_str());
        find(service.full_name()).or_else(|| find(service.package_name()))
    }

    /// `(source, url)` of every backend keyed by a domain package
    /// `crm.<source>.v1` (profiles, tickets, …): where each source's
    /// [`PER_SOURCE_PACKAGES`] are routed.
    pub fn sources(&self) -> Vec<(&str, &str)> {
        self.entries
            .iter()
            .filter(|(key, _)| !PER_SOURCE_PACKAGES.contains(&key.as_str()))
            .filter_map(|(key, url)| match key.split('.').collect::<Vec<_>>()[..] {
                ["crm", source, "v1"] => Some((source, url.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Every distinct backend URL with the keys that point at it.
    pub fn urls(&self) -> BTreeSet<&str> {
        self.entries.iter().map(|(_, url)| url.as_str()).collect()
    }

    /// The configured `(key, url)` pairs.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

/// A proto annotation the gateway cannot serve; start-up fails on it.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The path template does not parse.
    #[error("{method}: {source}")]
    Template {
        /// The gRPC method.
        method: String,
        /// The parse error.
        source: TemplateError,
    },
    /// The rule names a field the request message lacks, or one that cannot be bound.
    #[error("{method}: {message}")]
    Field {
        /// The gRPC method.
        method: String,
        /// What is wrong.
        message: String,
    },
    /// A custom HTTP verb that is not a valid method token.
    #[error("{method}: invalid HTTP method {verb:?}")]
    Verb {
        /// The gRPC method.
        method: String,
        /// The verb.
        verb: String,
    },
}

/// The result of looking a request up.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route, with the path variables as (field path, value).
    Found(&'a Route, Bindings),
    /// The path is known, but not with this verb: the verbs it takes.
    MethodNotAllowed(Vec<Method>),
    /// No template matches the path.
    NotFound,
}

/// Every route of every routed service.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Reads the `google.api.http` rule of every method of every service in
    /// `pool` whose package (or name) has a backend in `backends`, and the
    /// [`PER_SOURCE_PACKAGES`] once per source. Methods without a rule, and
    /// services without a backend, are not routed.
    pub fn from_pool(pool: &DescriptorPool, backends: &BackendMap) -> Result<Self, RouteError> {
        let Some(extension) = pool.get_extension_by_name("google.api.http") else {
            return Ok(Self::default());
        };
        let mut routes: Vec<Route> = Vec::new();
        for service in pool.services() {
            // Services the gateway composes itself need no backend entry.
            let local = LOCAL_SERVICES.contains(&service.full_name()).then_some(LOCAL);
            match backends.backend_for(&service).or(local) {
                Some(backend) => add_routes(&mut routes, &extension, &service, backend, None)?,
                None if PER_SOURCE_PACKAGES.contains(&service.package_name()) => {
                    for (source, backend) in backends.sources() {
                        add_routes(&mut routes, &extension, &service, backend, Some(source))?;
                    }
                }
                None => {}
            }
        }
        Ok(Self { routes })
    }

    /// Every route, in proto order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for `method` and the raw `path`.
    ///
    /// A template with a custom verb outranks one without when both match
    /// (so `/v1/customers/x:undelete` is never read as a name ending in
    /// `:undelete`); among the rest the most specific template wins.
    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let mut matched: Vec<(&Route, Bindings)> =
            self.routes.iter().filter_map(|r| r.template.matches(path).map(|vars| (r, vars))).collect();
        if matched.iter().any(|(r, _)| r.template.verb().is_some()) {
            matched.retain(|(r, _)| r.template.verb().is_some());
        }
        if matched.is_empty() {
            return Lookup::NotFound;
        }
        let allowed: BTreeSet<String> = matched.iter().map(|(r, _)| r.method.to_string()).collect();
        match matched.into_iter().filter(|(r, _)| r.method == *method).max_by_key(|(r, _)| r.template.specificity()) {
            Some((route, vars)) => Lookup::Found(route, vars),
            None => Lookup::MethodNotAllowed(allowed.iter().filter_map(|m| Method::from_bytes(m.as_bytes()).ok()).collect()),
        }
    }
}

/// Adds the routes of every method of `service` that `backend` serves, under
/// `/v1/{source}/…` when `source` is given (see [`PER_SOURCE_PACKAGES`]).
fn add_routes(
    routes: &mut Vec<Route>,
    extension: &prost_reflect::ExtensionDescriptor,
    service: &ServiceDescriptor,
    backend: &str,
    source: Option<&str>,
) -> Result<(), RouteError> {
    for rpc in service.methods() {
        let options = rpc.options();
        if !options.has_extension(extension) {
            continue;
        }
        let rule = match options.get_extension(extension).as_ref() {
            Value::Message(m) => m.transcode_to::<HttpRule>().map_err(|e| RouteError::Field {
                method: rpc.full_name().to_owned(),
                message: format!("unreadable google.api.http rule: {e}"),
            })?,
            _ => continue,
        };
        for binding in std::iter::once(&rule).chain(&rule.additional_bindings) {
            let route = route_for(&rpc, binding, backend, source)?;
            if !servable(&route) {
                tracing::warn!(rpc = rpc.full_name(), template = %route.template, "streaming RPC not served over REST: only client streams whose body is a google.api.HttpBody are");
                continue;
            }
            if routes.iter().any(|r| r.method == route.method && r.template == route.template) {
                tracing::warn!(method = %route.method, template = %route.template, rpc = rpc.full_name(), "duplicate HTTP binding ignored");
                continue;
            }
            routes.push(route);
        }
    }
    Ok(())
}

fn route_for(rpc: &MethodDescriptor, rule: &HttpRule, backend: &str, source: Option<&str>) -> Result<Route, RouteError> {
    let name = || rpc.full_name().to_owned();
    let (method, path) = match &rule.pattern {
        Some(Pattern::Get(p)) => (Method::GET, p.as_str()),
        Some(Pattern::Put(p)) => (Method::PUT, p.as_str()),
        Some(Pattern::Post(p)) => (Method::POST, p.as_str()),
        Some(Pattern::Delete(p)) => (Method::DELETE, p.as_str()),
        Some(Pattern::Patch(p)) => (Method::PATCH, p.as_str()),
        Some(Pattern::Custom(c)) => {
            let verb = Method::from_bytes(c.kind.as_bytes()).map_err(|_| RouteError::Verb { method: name(), verb: c.kind.clone() })?;
            (verb, c.path.as_str())
        }
        None => return Err(RouteError::Field { method: name(), message: "google.api.http rule without a pattern".into() }),
    };
    let path = match source {
        Some(source) => match path.strip_prefix("/v1/") {
            Some(rest) => format!("/v1/{source}/{rest}"),
            None => return Err(RouteError::Field { method: name(), message: format!("{path:?} does not start with /v1/") }),
        },
        None => path.to_owned(),
    };
    let template = PathTemplate::parse(&path).map_err(|source| RouteError::Template { method: name(), source })?;
    let input = rpc.input();
    for var in template.variables() {
        let field = resolve_field_path(&input, &var.field_path).map_err(|message| RouteError::Field { method: name(), message })?;
        if field.is_list() || field.is_map() || matches!(field.kind(), Kind::Message(_)) {
            return Err(RouteError::Field {
                method: name(),
                message: format!("path variable {} must be a singular scalar field", var.field_path.join(".")),
            });
        }
    }
    let body = match rule.body.as_str() {
        "" => BodyBinding::None,
        "*" => BodyBinding::Whole,
        field => {
            input.get_field_by_name(field).ok_or_else(|| RouteError::Field {
                method: name(),
                message: format!("body field {field:?} is not a field of {}", input.full_name()),
            })?;
            match input.get_field_by_name(field).map(|f| f.kind()) {
                Some(Kind::Message(m)) if m.full_name() == HTTP_BODY => BodyBinding::Raw(field.to_owned()),
                _ => BodyBinding::Field(field.to_owned()),
            }
        }
    };
    let response_body = match rule.response_body.as_str() {
        "" => None,
        field => {
            rpc.output().get_field_by_name(field).ok_or_else(|| RouteError::Field {
                method: name(),
                message: format!("response_body field {field:?} is not a field of {}", rpc.output().full_name()),
            })?;
            Some(field.to_owned())
        }
    };
    let path = format!("/{}/{}", rpc.parent_service().full_name(), rpc.name())
        .parse()
        .map_err(|e| RouteError::Field { method: rpc.full_name().to_owned(), message: format!("gRPC path: {e}") })?;
    let http_route = template.to_string();
    Ok(Route { method, template, body, response_body, rpc: rpc.clone(), backend: backend.to_owned(), path, http_route })
}

/// The field at `path` (proto names) below `message`; every step but the last
/// must be a singular message field.
pub fn resolve_field_path(message: &MessageDescriptor, path: &[String]) -> Result<FieldDescriptor, String> {
    let mut current = message.clone();
    let (last, parents) = path.split_last().ok_or("empty field path")?;
    for part in parents {
        let field = current.get_field_by_name(part).ok_or_else(|| format!("{part:?} is not a field of {}", current.full_name()))?;
        match field.kind() {
            Kind::Message(m) if !field.is_list() && !field.is_map() => current = m,
            _ => return Err(format!("{part:?} of {} is not a singular message field", current.full_name())),
        }
    }
    current.get_field_by_name(last).ok_or_else(|| format!("{last:?} is not a field of {}", current.full_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crm_table() -> RouteTable {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let backends = BackendMap::parse("crm.profiles.v1=http://p:1,crm.tickets.v1=http://t:2").unwrap();
        RouteTable::from_pool(&pool, &backends).unwrap()
    }

    fn found<'a>(table: &'a RouteTable, method: Method, path: &str) -> (&'a Route, Bindings) {
        match table.lookup(&method, path) {
            Lookup::Found(r, vars) => (r, vars),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn the_kits_services_are_routed_once_per_source() {
        let table = crm_table();
        let (route, _) = found(&table, Method::POST, "/v1/profiles/webhooks");
        assert_eq!(route.grpc_path(), "/crm.webhooks.v1.WebhookService/CreateWebhook");
        assert_eq!(route.backend, "http://p:1");
        let (route, vars) = found(&table, Method::GET, "/v1/tickets/webhooks/w1");
        assert_eq!((route.rpc.name(), route.backend.as_str()), ("GetWebhook", "http://t:2"));
        assert_eq!(vars, vec![(vec!["name".to_owned()], "webhooks/w1".to_owned())], "the name without the source");
        assert_eq!(route.http_route(), "/v1/tickets/{name=webhooks/*}");
        let (route, _) = found(&table, Method::GET, "/v1/profiles/webhooks/w1/deliveries");
        assert_eq!(route.rpc.name(), "ListWebhookDeliveries");
        assert!(table.routes().iter().all(|r| r.rpc.name() != "Subscribe"), "the event stream is not REST");
        assert!(matches!(table.lookup(&Method::POST, "/v1/webhooks"), Lookup::NotFound), "no unprefixed route: whose would it be?");
        assert!(matches!(table.lookup(&Method::GET, "/v1/campaigns/webhooks"), Lookup::NotFound), "campaigns has no backend here");
    }

    #[test]
    fn every_crm_rpc_with_a_backend_is_routed() {
        let table = crm_table();
        let (route, vars) = found(&table, Method::GET, "/v1/customers/abc");
        assert_eq!(route.grpc_path(), "/crm.profiles.v1.CustomerService/GetCustomer");
        assert_eq!(route.backend, "http://p:1");
        assert_eq!(vars, vec![(vec!["name".to_owned()], "customers/abc".to_owned())]);

        let (route, vars) = found(&table, Method::PATCH, "/v1/tickets/t1");
        assert_eq!(route.rpc.name(), "UpdateTicket");
        assert_eq!(route.body, BodyBinding::Field("ticket".into()));
        assert_eq!(vars[0].0, vec!["ticket".to_owned(), "name".to_owned()]);
        assert_eq!(route.backend, "http://t:2");

        let (route, _) = found(&table, Method::POST, "/v1/customers/abc:undelete");
        assert_eq!(route.rpc.name(), "UndeleteCustomer");
        assert_eq!(route.body, BodyBinding::Whole);
        assert_eq!(found(&table, Method::GET, "/v1/customers:batchGet").0.rpc.name(), "BatchGetCustomers");
        assert_eq!(found(&table, Method::GET, "/v1/customers").0.rpc.name(), "ListCustomers");
        assert_eq!(found(&table, Method::POST, "/v1/tickets/t1/comments").0.rpc.name(), "AddComment");
        assert_eq!(found(&table, Method::GET, "/v1/tickets/t1/comments").0.rpc.name(), "ListComments");
        // Every routed method is a method of a configured package, and the
        // events package (served by every service) has no backend by default.
        assert!(table.routes().iter().all(|r| r.rpc.parent_service().package_name() != "crm.events.v1"));
        assert!(table.routes().len() > 40, "{}", table.routes().len());
    }

    #[test]
    fn wrong_verbs_and_unknown_paths_are_told_apart() {
        let table = crm_table();
        match table.lookup(&Method::PUT, "/v1/customers/abc") {
            Lookup::MethodNotAllowed(allowed) => assert_eq!(allowed, vec![Method::DELETE, Method::GET, Method::PATCH]),
            other => panic!("{other:?}"),
        }
        match table.lookup(&Method::GET, "/v1/customers/abc:undelete") {
            Lookup::MethodNotAllowed(allowed) => assert_eq!(allowed, vec![Method::POST]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(table.lookup(&Method::GET, "/v1/nothing"), Lookup::NotFound));
        assert!(matches!(table.lookup(&Method::GET, "/v2/customers"), Lookup::NotFound));
    }

    #[test]
    fn backends_route_by_package_or_service() {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let backends = BackendMap::parse("crm.events.v1.EventService=http://e:3").unwrap();
        let table = RouteTable::from_pool(&pool, &backends).unwrap();
        let (route, _) = found(&table, Method::GET, "/v1/events:subscribe");
        assert!(route.rpc.is_server_streaming());
        // The event stream, plus the overview the gateway serves itself.
        assert_eq!(table.routes().len(), 2);
        assert!(table.routes().iter().any(|r| r.backend == LOCAL));
        assert!(BackendMap::parse("crm.x").is_err());
        assert!(BackendMap::parse("crm.x=ftp://h").is_err());
        assert!(BackendMap::parse("a=http://h,a=http://i").is_err());
    }

    /// Compiles `source` as `file` (with the repository's google/api protos on the path).
    fn compile(file: &str, source: &str) -> DescriptorPool {
        let dir = std::env::temp_dir().join(format!("crm-gateway-test-{}", uuid::Uuid::new_v4()));
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, source).unwrap();
        let protos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
        // protox's own pool keeps extension options (a prost-types round trip would drop them).
        let compiled = protox::Compiler::new([dir.as_path(), protos.as_path()])
            .unwrap()
            .include_imports(true)
            .open_file(file)
            .map(|c| c.descriptor_pool());
        std::fs::remove_dir_all(&dir).unwrap();
        compiled.unwrap()
    }

    /// A service added to the protos is routed without gateway changes: compile
    /// a proto at test time and build the table from it.
    #[test]
    fn a_new_proto_is_routed_without_code_changes() {
        let pool = compile(
            "acme/v1/shelf.proto",
            r#"syntax = "proto3";
package acme.v1;
import "google/api/annotations.proto";
service ShelfService {
  rpc MoveBook(MoveBookRequest) returns (MoveBookResponse) {
    option (google.api.http) = {
      post: "/v1/{book.name=shelves/*/books/*}:move"
      body: "*"
      additional_bindings { custom: {kind: "MOVE" path: "/v1/{book.name=books/**}"} }
    };
  }
  rpc Unrouted(MoveBookRequest) returns (MoveBookResponse);
}
message Book { string name = 1; }
message MoveBookRequest { Book book = 1; string target = 2; }
message MoveBookResponse {}
"#,
        );
        let table = RouteTable::from_pool(&pool, &BackendMap::parse("acme.v1=http://acme:9").unwrap()).unwrap();

        assert_eq!(table.routes().len(), 2);
        let (route, vars) = found(&table, Method::POST, "/v1/shelves/s1/books/b2:move");
        assert_eq!(route.grpc_path(), "/acme.v1.ShelfService/MoveBook");
        assert_eq!(route.backend, "http://acme:9");
        assert_eq!(vars, vec![(vec!["book".to_owned(), "name".to_owned()], "shelves/s1/books/b2".to_owned())]);
        let (route, vars) = found(&table, Method::from_bytes(b"MOVE").unwrap(), "/v1/books/a/b");
        assert_eq!(route.rpc.name(), "MoveBook");
        assert_eq!(vars[0].1, "books/a/b");
        // Without a backend for its package, the service is not routed.
        assert!(RouteTable::from_pool(&pool, &BackendMap::default()).unwrap().routes().is_empty());
    }

    #[test]
    fn import_files_stream_in_and_out() {
        let table = crm_table();
        let (upload, _) = found(&table, Method::POST, "/v1/importJobs:upload");
        assert_eq!(upload.rpc.name(), "UploadImportFile");
        assert_eq!(upload.body, BodyBinding::Raw("file".into()));
        assert!(upload.streams_request_body() && !upload.raw_response());
        let (download, vars) = found(&table, Method::GET, "/v1/importJobs/j1/errors:download");
        assert_eq!(download.rpc.name(), "DownloadImportErrors");
        assert!(download.rpc.is_server_streaming() && download.raw_response() && !download.streams_request_body());
        assert_eq!(vars[0].1, "importJobs/j1");
    }

    /// A client stream is routed only when its body is an HttpBody; bidirectional streams never.
    #[test]
    fn client_streams_are_routed_only_with_an_http_body_body() {
        let pool = compile(
            "acme/v1/files.proto",
            r#"syntax = "proto3";
package acme.v1;
import "google/api/annotations.proto";
import "google/api/httpbody.proto";
service FileService {
  rpc Upload(stream UploadRequest) returns (UploadResponse) {
    option (google.api.http) = { post: "/v1/files:upload" body: "file" };
  }
  rpc UploadJson(stream UploadRequest) returns (UploadResponse) {
    option (google.api.http) = { post: "/v1/files:uploadJson" body: "*" };
  }
  rpc UploadField(stream UploadRequest) returns (UploadResponse) {
    option (google.api.http) = { post: "/v1/files:uploadField" body: "name" };
  }
  rpc UploadQuery(stream UploadRequest) returns (UploadResponse) {
    option (google.api.http) = { post: "/v1/files:uploadQuery" };
  }
  rpc Echo(stream UploadRequest) returns (stream UploadResponse) {
    option (google.api.http) = { post: "/v1/files:echo" body: "file" };
  }
}
message UploadRequest { string name = 1; google.api.HttpBody file = 2; }
message UploadResponse { string name = 1; }
"#,
        );
        let table = RouteTable::from_pool(&pool, &BackendMap::parse("acme.v1=http://acme:9").unwrap()).unwrap();

        let routed: Vec<&str> = table.routes().iter().map(|r| r.rpc.name()).collect();
        assert_eq!(routed, vec!["Upload"]);
        let (route, _) = found(&table, Method::POST, "/v1/files:upload");
        assert_eq!(route.body, BodyBinding::Raw("file".into()));
        assert!(route.streams_request_body());
        assert!(matches!(table.lookup(&Method::POST, "/v1/files:uploadJson"), Lookup::NotFound));
    }

    #[test]
    fn bindings_to_missing_fields_fail_start_up() {
        let pool = compile(
            "bad.proto",
            r#"syntax = "proto3";
package bad.v1;
import "google/api/annotations.proto";
service BadService {
  rpc Get(Req) returns (Req) { option (google.api.http) = {get: "/v1/{missing=x/*}"}; }
}
message Req { string name = 1; }
"#,
        );
        let err = RouteTable::from_pool(&pool, &BackendMap::parse("bad.v1=http://b:1").unwrap()).unwrap_err();
        assert!(err.to_string().contains("\"missing\" is not a field of bad.v1.Req"), "{err}");
    }
}
