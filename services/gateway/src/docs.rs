//! `GET /openapi.json` (the document [`crate::openapi`] generated at start-up,
//! serialised once) and `GET /docs`, an API reference page that renders it
//! with Redoc. Redoc is vendored (`assets/`, MIT, see `assets/redoc.LICENSE`)
//! and compiled into the binary: the page loads nothing from elsewhere. All
//! three are public: no token.

use axum::{Router, body::Bytes, response::IntoResponse, routing::get};
use http::{HeaderValue, header};
use serde_json::Value;

/// Redoc's standalone bundle (redoc 2.5.4 from npm, `bundles/redoc.standalone.js`).
const REDOC_JS: &[u8] = include_bytes!("../assets/redoc.standalone.js");
/// The licences of what the bundle contains.
const REDOC_LICENSES: &str = include_str!("../assets/redoc.standalone.js.LICENSE.txt");

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where the reference page is served.
pub const DOCS_PATH: &str = "/docs";

/// Relative URLs, so that the page also works behind a path prefix.
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>CRM API reference</title>
  <style>body { margin: 0; padding: 0; }</style>
</head>
<body>
  <redoc spec-url="openapi.json" hide-download-button="false"></redoc>
  <script src="docs/redoc.standalone.js"></script>
</body>
</html>
"#;

/// Redoc needs inline styles (styled-components), `blob:` workers and data: fonts/images;
/// nothing may come from another origin.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The routes of the document, the page and its script; `document` is
/// serialised here, once.
pub fn router<S: Clone + Send + Sync + 'static>(document: &Value) -> Router<S> {
    let json = Bytes::from(serde_json::to_vec(document).expect("a JSON value serialises"));
    Router::new()
        .route(
            OPENAPI_PATH,
            get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json) }
            }),
        )
        .route(DOCS_PATH, get(page))
        .route("/docs/redoc.standalone.js", get(script))
        .route("/docs/redoc.standalone.js.LICENSE.txt", get(licenses))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP)),
        ],
        PAGE,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            // Same binary, same bytes: a day is safe; a new build may change it.
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        REDOC_JS,
    )
}

async fn licenses() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], REDOC_LICENSES)
}
