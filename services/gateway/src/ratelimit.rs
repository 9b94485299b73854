//! Rate limits (OWASP API4): token buckets per caller (`sub`, or the client
//! address for token-less methods) and per tenant, by route class. A request
//! must find a token in both of its buckets; when one is empty it is refused
//! with the time until that bucket refills, and neither bucket is charged.
//!
//! Buckets live in memory per gateway replica, so the effective limit scales
//! with the replica count; that is the usual trade for no shared store on the
//! hot path (state it when sizing limits).

use std::{
    collections::HashMap,
    fmt,
    str::FromStr,
    sync::Mutex,
    time::{Duration, Instant},
};

use http::Method;

use crate::routes::Route;

/// What a route costs: reads, writes, or searches (which are expensive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Read,
    Write,
    Search,
}

impl RouteClass {
    /// The class of `route`: Search*/Suggest* RPCs are searches, GETs reads, the rest writes.
    pub fn of(route: &Route) -> Self {
        Self::of_method(route.rpc.name(), Some(&route.method))
    }

    /// The class of RPC `name`, called with HTTP `verb` (REST) or none (gRPC,
    /// gRPC-Web: reads are then told by their Get/List/Subscribe names).
    pub fn of_method(name: &str, verb: Option<&Method>) -> Self {
        let reads = ["Get", "List", "Subscribe"];
        if name.starts_with("Search") || name.starts_with("Suggest") {
            Self::Search
        } else if verb.map_or_else(|| reads.iter().any(|r| name.starts_with(r)), |v| v == Method::GET) {
            Self::Read
        } else {
            Self::Write
        }
    }

    /// Name in settings and error details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Search => "search",
        }
    }
}

/// A sustained rate and the burst a full bucket allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
    burst: f64,
}

/// Rates per class; a class without a rate is unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    read: Option<Rate>,
    write: Option<Rate>,
    search: Option<Rate>,
}

impl Limits {
    fn rate(&self, class: RouteClass) -> Option<Rate> {
        match class {
            RouteClass::Read => self.read,
            RouteClass::Write => self.write,
            RouteClass::Search => self.search,
        }
    }
}

/// `read=50/100,write=10/20,search=5/10`: per-second rate / burst per class
/// (burst defaults to twice the rate); `off` or empty = unlimited.
impl FromStr for Limits {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut limits = Limits::default();
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("off") {
            return Ok(limits);
        }
        for part in text.split(',') {
            let (class, value) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected class=rate[/burst]"))?;
            let (rate, burst) = value.split_once('/').map_or((value, None), |(r, b)| (r, Some(b)));
            let number = |s: &str| s.trim().parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0);
            let per_second = number(rate).ok_or_else(|| format!("{part:?}: the rate must be a positive number per second"))?;
            let burst = match burst {
                Some(b) => number(b).filter(|b| *b >= 1.0).ok_or_else(|| format!("{part:?}: the burst must be at least 1"))?,
                None => (per_second * 2.0).max(1.0),
            };
            let slot = match class.trim() {
                "read" => &mut limits.read,
                "write" => &mut limits.write,
                "search" => &mut limits.search,
                other => return Err(format!("unknown route class {other:?} (read, write, search)")),
            };
            *slot = Some(Rate { per_second, burst });
        }
        Ok(limits)
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [RouteClass::Read, RouteClass::Write, RouteClass::Search]
            .into_iter()
            .filter_map(|c| self.rate(c).map(|r| format!("{}={}/{}", c.as_str(), r.per_second, r.burst)))
            .collect();
        if parts.is_empty() { f.write_str("off") } else { f.write_str(&parts.join(",")) }
    }
}

/// Which of a request's buckets ran dry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The caller's own bucket.
    Subject,
    /// The tenant's shared bucket.
    Tenant,
}

impl Scope {
    /// Name in error details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Tenant => "tenant",
        }
    }
}

/// A refusal: which bucket, which class, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limited {
    pub scope: Scope,
    pub class: RouteClass,
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refilled(self, rate: Rate, now: Instant) -> Self {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        Self { tokens: (self.tokens + elapsed * rate.per_second).min(rate.burst), updated: now }
    }
}

/// Above this many buckets, full (idle) ones are dropped…
const PRUNE_ABOVE: usize = 100_000;
/// …at most this often, so that a map of busy buckets is not rescanned on every request.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

type Buckets = HashMap<(Scope, RouteClass, String), Bucket>;

struct State {
    buckets: Buckets,
    pruned: Instant,
}

/// The buckets of every caller and tenant seen.
pub struct RateLimiter {
    per_subject: Limits,
    per_tenant: Limits,
    state: Mutex<State>,
}

impl RateLimiter {
    /// Limits per caller and per tenant.
    pub fn new(per_subject: Limits, per_tenant: Limits) -> Self {
        Self { per_subject, per_tenant, state: Mutex::new(State { buckets: HashMap::new(), pruned: Instant::now() }) }
    }

    /// Takes a token from `subject`'s and `tenant`'s buckets for `class`, or says which is empty.
    pub fn check(&self, subject: &str, tenant: &str, class: RouteClass) -> Result<(), Limited> {
        self.check_at(subject, tenant, class, Instant::now())
    }

    fn check_at(&self, subject: &str, tenant: &str, class: RouteClass, now: Instant) -> Result<(), Limited> {
        let wanted = [(Scope::Subject, subject, self.per_subject.rate(class)), (Scope::Tenant, tenant, self.per_tenant.rate(class))];
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.buckets.len() > PRUNE_ABOVE && now.saturating_duration_since(state.pruned) >= PRUNE_EVERY {
            Self::prune(&mut state.buckets, &self.per_subject, &self.per_tenant, now);
            state.pruned = now;
        }
        let buckets = &mut state.buckets;
        let mut charged = Vec::with_capacity(2);
        for (scope, key, rate) in wanted {
            let Some(rate) = rate else { continue };
            let id = (scope, class, key.to_owned());
            let bucket = buckets.get(&id).copied().unwrap_or(Bucket { tokens: rate.burst, updated: now }).refilled(rate, now);
            if bucket.tokens < 1.0 {
                let retry_after = Duration::from_secs_f64((1.0 - bucket.tokens) / rate.per_second);
                return Err(Limited { scope, class, retry_after });
            }
            charged.push((id, bucket));
        }
        for (id, bucket) in charged {
            buckets.insert(id, Bucket { tokens: bucket.tokens - 1.0, ..bucket });
        }
        Ok(())
    }

    /// Drops buckets that have refilled completely: forgetting them changes nothing.
    fn prune(buckets: &mut Buckets, subject: &Limits, tenant: &Limits, now: Instant) {
        buckets.retain(|(scope, class, _), bucket| {
            let limits = if *scope == Scope::Subject { subject } else { tenant };
            limits.rate(*class).is_some_and(|rate| bucket.refilled(rate, now).tokens < rate.burst)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(subject: &str, tenant: &str) -> RateLimiter {
        RateLimiter::new(subject.parse().unwrap(), tenant.parse().unwrap())
    }

    #[test]
    fn methods_are_classed_by_verb_or_name() {
        assert_eq!(RouteClass::of_method("SearchArticles", Some(&Method::GET)), RouteClass::Search);
        assert_eq!(RouteClass::of_method("GetServiceMetrics", Some(&Method::GET)), RouteClass::Read);
        assert_eq!(RouteClass::of_method("UndeleteCustomer", Some(&Method::POST)), RouteClass::Write);
        assert_eq!(RouteClass::of_method("ListTickets", None), RouteClass::Read);
        assert_eq!(RouteClass::of_method("CreateTicket", None), RouteClass::Write);
    }

    #[test]
    fn settings_parse_with_default_bursts_and_refuse_nonsense() {
        let limits: Limits = "read=50/100, write=10,search=0.5/2".parse().unwrap();
        assert_eq!(limits.to_string(), "read=50/100,write=10/20,search=0.5/2");
        assert_eq!("off".parse::<Limits>().unwrap(), Limits::default());
        for bad in ["read", "read=0", "read=-1", "read=5/0.5", "reads=5", "read=x"] {
            assert!(bad.parse::<Limits>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_the_bucket_refills() {
        let limits = limiter("write=2/3", "off");
        let start = Instant::now();
        for _ in 0..3 {
            limits.check_at("alice", "t1", RouteClass::Write, start).unwrap();
        }
        let refused = limits.check_at("alice", "t1", RouteClass::Write, start).unwrap_err();
        assert_eq!((refused.scope, refused.class), (Scope::Subject, RouteClass::Write));
        assert_eq!(refused.retry_after, Duration::from_millis(500), "one token at 2/s");
        // Other callers and classes are not affected; half a second later alice may go on.
        limits.check_at("bob", "t1", RouteClass::Write, start).unwrap();
        limits.check_at("alice", "t1", RouteClass::Read, start).unwrap();
        limits.check_at("alice", "t1", RouteClass::Write, start + Duration::from_millis(500)).unwrap();
    }

    #[test]
    fn the_tenant_bucket_caps_all_its_callers_and_a_refusal_charges_nothing() {
        let limits = limiter("read=100/100", "read=1/2");
        let now = Instant::now();
        limits.check_at("a", "t1", RouteClass::Read, now).unwrap();
        limits.check_at("b", "t1", RouteClass::Read, now).unwrap();
        let refused = limits.check_at("c", "t1", RouteClass::Read, now).unwrap_err();
        assert_eq!(refused.scope, Scope::Tenant);
        limits.check_at("c", "t2", RouteClass::Read, now).unwrap();
        let buckets = &limits.state.lock().unwrap().buckets;
        assert_eq!(buckets[&(Scope::Subject, RouteClass::Read, "c".to_owned())].tokens, 99.0, "charged once, not for the refusal");
    }

    #[test]
    fn full_buckets_are_pruned_and_busy_ones_kept() {
        let limits = limiter("read=10/10", "off");
        let start = Instant::now();
        limits.check_at("idle", "t", RouteClass::Read, start).unwrap();
        limits.check_at("busy", "t", RouteClass::Read, start + Duration::from_secs(5)).unwrap();
        let buckets = &mut limits.state.lock().unwrap().buckets;
        RateLimiter::prune(buckets, &limits.per_subject, &limits.per_tenant, start + Duration::from_millis(5050));
        let keys: Vec<&str> = buckets.keys().map(|(_, _, k)| k.as_str()).collect();
        assert_eq!(keys, ["busy"]);
    }
}
