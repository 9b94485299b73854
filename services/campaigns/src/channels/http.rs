//! HTTP plumbing shared by the HTTP providers: one client per provider whose
//! host is resolved once and checked (`crm_kit::egress`) and then pinned, so
//! requests go to the checked address whatever DNS says later; timeouts; and
//! what an HTTP answer means for a message.

use std::time::Duration;

use reqwest::{Client, StatusCode, Url, header::HeaderMap};

use crate::domain::delivery::Outcome;

/// Longest a provider call may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait after a 429 that names no Retry-After.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Settings that cannot make a client.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("{0} URLs are refused: use https")]
    Scheme(String),
    #[error(transparent)]
    Egress(#[from] crm_kit::egress::EgressError),
    #[error("HTTP client: {0}")]
    Client(String),
}

/// `url` parsed and checked: https, or http only where private peers are
/// allowed (local development and tests).
pub fn parse_url(url: &str, allow_private: bool) -> Result<Url, HttpSetupError> {
    let parsed = Url::parse(url).map_err(|_| HttpSetupError::Url(url.to_owned()))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        other => return Err(HttpSetupError::Scheme(other.to_owned())),
    }
    if parsed.host_str().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(HttpSetupError::Url(url.to_owned()));
    }
    Ok(parsed)
}

/// A client that reaches `base`'s host only at the address checked now.
pub async fn pinned_client(base: &Url, allow_private: bool) -> Result<Client, HttpSetupError> {
    let host = base.host_str().ok_or_else(|| HttpSetupError::Url(base.to_string()))?;
    let port = base.port_or_known_default().unwrap_or(443);
    let address = crm_kit::egress::resolve(host, port, allow_private).await?;
    Client::builder()
        .resolve(host, address)
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(32)
        .build()
        .map_err(|e| HttpSetupError::Client(e.to_string()))
}

/// What a non-success HTTP status means: 429 throttles (after Retry-After),
/// 408 and 5xx are temporary, other 4xx permanent. `detail` is the
/// provider's own explanation (no recipient data).
pub fn failure(status: StatusCode, headers: &HeaderMap, detail: &str) -> Outcome {
    let error = crm_kit::mask::text(&format!("HTTP {}: {detail}", status.as_u16()));
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs);
        return Outcome::Throttled { error, retry_after };
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Outcome::Temporary { error }
    } else {
        Outcome::Permanent { error }
    }
}

/// A request that got no answer: temporary (the provider may have taken it;
/// reconciliation finds out before a re-send).
pub fn unanswered(err: &reqwest::Error) -> Outcome {
    Outcome::Temporary { error: crm_kit::mask::text(&crm_kit::error::cause_chain(err)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(
            failure(StatusCode::TOO_MANY_REQUESTS, &headers, "slow down"),
            Outcome::Throttled { error: "HTTP 429: slow down".into(), retry_after: Duration::from_secs(3) }
        );
        assert!(matches!(failure(StatusCode::BAD_GATEWAY, &HeaderMap::new(), ""), Outcome::Temporary { .. }));
        assert!(matches!(failure(StatusCode::BAD_REQUEST, &HeaderMap::new(), ""), Outcome::Permanent { .. }));
    }

    #[test]
    fn plain_http_only_where_private_peers_are_allowed() {
        assert!(parse_url("https://api.twilio.com", false).is_ok());
        assert!(matches!(parse_url("http://api.twilio.com", false), Err(HttpSetupError::Scheme(_))));
        assert!(parse_url("http://127.0.0.1:9000", true).is_ok());
        assert!(parse_url("https://user:pw@example.com", false).is_err());
        assert!(parse_url("ftp://example.com", true).is_err());
    }
}
