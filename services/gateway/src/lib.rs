//! `crm-gateway`: REST/JSON in front of the CRM gRPC services, generated at
//! start-up from the `google.api.http` rules in `crm_proto::FILE_DESCRIPTOR_SET`.
//! Adding an RPC (or a whole service, given a `CRM_BACKENDS` entry for its
//! package) needs no gateway code.
//!
//! # Layout
//! - [`config`]: `CRM_*` settings (backends, limits, JWT, CORS).
//! - [`startup`]: `Application::build` / `run_until_stopped`, the HTTP stack.
//! - [`routes`]: path templates and the route table (pure).
//! - [`transcode`]: JSON/query/path ⇄ dynamic messages, etag conventions.
//! - [`forward`]: the dynamic-message codec and one channel per backend.
//! - [`state`]: [`state::Gateway`], what every request needs, and the admission
//!   check (token, rate limits) every protocol applies.
//! - [`handler`]: one REST request end to end (admission, body, deadline,
//!   metadata, streaming).
//! - [`upload`]: a request body streamed into a client-streaming RPC (file uploads).
//! - [`download`]: a server stream of `google.api.HttpBody` answered as a plain
//!   streamed body (file downloads).
//! - [`errors`]: the Google JSON error format and gRPC code → HTTP status.
//! - [`grpcweb`]: gRPC-Web (and native gRPC) proxied to the owning backend.
//! - [`health`]: `/healthz`, `/readyz`.
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the route table.
//! - [`docs`]: `/openapi.json` and the `/docs` reference page.
//! - [`overview`]: customer 360, composed by the gateway from profiles and tickets
//!   through the kit's outbound client.
//! - [`ratelimit`]: token buckets per caller and tenant by route class.

pub mod config;
pub mod docs;
pub mod download;
pub mod errors;
pub mod forward;
pub mod grpcweb;
pub mod handler;
pub mod health;
pub mod openapi;
pub mod overview;
pub mod ratelimit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod transcode;
pub mod upload;
