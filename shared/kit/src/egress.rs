//! Outbound connections to addresses that tenants configure (SMTP relays,
//! SMS and push providers, webhooks), safe from server-side request forgery:
//! a host is resolved once, every address it resolves to must be public, and
//! the connection then goes to that checked address — so a name cannot
//! resolve to a public address when checked and to an internal one when
//! used (DNS rebinding).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use reqwest::{Client, Url};

/// Longest a host's DNS lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an outbound address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The host did not resolve.
    #[error("{host} does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
    /// The host resolves to an address inside a private, loopback,
    /// link-local or otherwise non-public range.
    #[error("{host} resolves to the non-public address {address}; outbound connections go to public addresses only")]
    NotPublic { host: String, address: IpAddr },
}

/// Resolves `host:port` and returns the address to connect to: the first
/// one, after checking that every address the host resolves to is public
/// (unless `allow_private`, for local development and tests).
pub async fn resolve(host: &str, port: u16, allow_private: bool) -> Result<SocketAddr, EgressError> {
    let host_only = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match host_only.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        // Bounded: a resolver that does not answer must not hold a request (or a delivery) for long.
        Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host_only, port)))
            .await
            .map_err(|_| EgressError::Unresolvable { host: host.to_owned(), reason: "the DNS lookup timed out".into() })?
            .map_err(|e| EgressError::Unresolvable { host: host.to_owned(), reason: e.to_string() })?
            .collect(),
    };
    let first = *addresses.first().ok_or_else(|| EgressError::Unresolvable { host: host.to_owned(), reason: "no addresses".into() })?;
    if !allow_private && let Some(bad) = addresses.iter().find(|a| !is_public(a.ip())) {
        return Err(EgressError::NotPublic { host: host.to_owned(), address: bad.ip() });
    }
    Ok(first)
}

/// Settings that cannot make an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// Not a URL, no host, or credentials in it.
    #[error("invalid URL {0:?}")]
    Url(String),
    /// Not https (and plain http is not allowed here).
    #[error("{0} URLs are refused: use https")]
    Scheme(String),
    /// The host is not a public address.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// The client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// `url` parsed and checked: https, or plain http only where private peers
/// are allowed (local development and tests); a host and no credentials.
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

/// An outbound URL a caller configures (a webhook's target, a provider's
/// endpoint), checked as a write API checks it: `url` parsed as
/// [`parse_url`] does and its host resolved to public addresses now; the
/// violation of `field` otherwise (`URL_NOT_ALLOWED`, `HOST_NOT_ALLOWED`).
/// Every later connection checks the host again ([`pinned_client`]).
pub async fn check_target(field: &str, url: &str, allow_private: bool) -> Result<Url, crate::FieldViolation> {
    let parsed = parse_url(url, allow_private).map_err(|e| crate::FieldViolation::new(field, "URL_NOT_ALLOWED", e.to_string()))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    resolve(parsed.host_str().unwrap_or_default(), port, allow_private)
        .await
        .map_err(|e| crate::FieldViolation::new(field, "HOST_NOT_ALLOWED", e.to_string()))?;
    Ok(parsed)
}

/// An HTTP client that reaches `base`'s host only at the address checked
/// now (whatever DNS says later), follows no redirects (a redirect could
/// point inside), and gives up on a request after `timeout`.
pub async fn pinned_client(base: &Url, allow_private: bool, timeout: Duration) -> Result<Client, HttpSetupError> {
    let host = base.host_str().ok_or_else(|| HttpSetupError::Url(base.to_string()))?;
    let port = base.port_or_known_default().unwrap_or(443);
    let address = resolve(host, port, allow_private).await?;
    Client::builder()
        .resolve(host, address)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(32)
        .build()
        .map_err(|e| HttpSetupError::Client(e.to_string()))
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10: carrier-grade NAT, often a cluster's pod network.
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 (IETF protocol assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4 (reserved).
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // 64:ff9b::/96 NAT64 can reach IPv4 inside; ::/96 IPv4-compatible.
        || (first == 0x64 && ip.segments()[1] == 0xff9b)
        || ip.segments()[..6].iter().all(|s| *s == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must not count as public");
        }
        for ip in ["8.8.8.8", "203.0.114.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn plain_http_only_where_private_peers_are_allowed() {
        assert!(parse_url("https://api.twilio.com", false).is_ok());
        assert!(matches!(parse_url("http://api.twilio.com", false), Err(HttpSetupError::Scheme(_))));
        assert!(parse_url("http://127.0.0.1:9000", true).is_ok());
        assert!(parse_url("https://user:pw@example.com", false).is_err());
        assert!(parse_url("ftp://example.com", true).is_err());
    }

    #[tokio::test]
    async fn a_loopback_relay_is_refused_unless_allowed() {
        let refused = resolve("127.0.0.1", 25, false).await.unwrap_err();
        assert!(matches!(refused, EgressError::NotPublic { .. }), "{refused:?}");
        assert_eq!(resolve("localhost", 25, true).await.unwrap().port(), 25);
        assert!(matches!(resolve("localhost", 25, false).await, Err(EgressError::NotPublic { .. })));
    }
}
