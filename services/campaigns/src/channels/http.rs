//! HTTP plumbing shared by the HTTP providers: one client per provider whose
//! host is resolved once, checked and pinned (`crm_kit::egress`); the
//! providers' timeout; and what an HTTP answer means for a message.

use std::time::Duration;

use reqwest::{Client, StatusCode, Url, header::HeaderMap};

use crate::domain::delivery::Outcome;

/// Longest a provider call may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait after a 429 that names no Retry-After.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

pub use crm_kit::egress::{HttpSetupError, parse_url};

/// A client that reaches `base`'s host only at the address checked now (see [`crm_kit::egress::pinned_client`]).
pub async fn pinned_client(base: &Url, allow_private: bool) -> Result<Client, HttpSetupError> {
    crm_kit::egress::pinned_client(base, allow_private, TIMEOUT).await
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
}
