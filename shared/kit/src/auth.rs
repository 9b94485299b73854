//! Bearer-JWT authentication and role-based permissions.
//!
//! Tokens are validated with one pinned algorithm (HS256 with a shared
//! secret, or RS256 with a public key), audience `crm`, a configured issuer,
//! and the claims `sub`, `tenant` (UUID), `roles`, `exp`. A valid token
//! becomes a [`Principal`] that handlers read from the request extensions.

use std::{collections::HashSet, path::Path};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;

/// The audience every token must carry.
pub const AUDIENCE: &str = "crm";

/// Claims of a CRM access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// Subject: the user id, or for the `customer` role the customer's resource name.
    pub sub: String,
    /// Tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Role names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Audience.
    pub aud: String,
    /// Issuer.
    pub iss: String,
}

/// A role a caller may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, in the caller's tenant.
    Admin,
    /// Customer-service agent: reads and edits customers' contact data.
    Agent,
    /// Marketer: reads customers, edits segmentation and consent data.
    Marketer,
    /// Analyst: reads, with PII masked.
    Analyst,
    /// Read-only user: reads, with PII masked.
    Readonly,
    /// Another CRM service calling on a user's behalf or for its own jobs.
    Service,
    /// A customer in a customer-facing app, acting for itself only: the token's
    /// `sub` is its own `customers/{id}` (see [`Principal::customer`]). It holds
    /// only the `*.self` permissions; each service decides which records are its own.
    Customer,
}

impl Role {
    /// Parses a role claim; unknown roles are ignored by the caller.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "admin" => Self::Admin,
            "agent" => Self::Agent,
            "marketer" => Self::Marketer,
            "analyst" => Self::Analyst,
            "readonly" => Self::Readonly,
            "service" => Self::Service,
            "customer" => Self::Customer,
            _ => return None,
        })
    }
}

/// Something a caller may be allowed to do. Each service declares its own
/// permissions with the roles that grant them (e.g. tickets' `tickets.write`
/// for agents and services); the kit knows the mechanism and the roles, not
/// the domains. `admin` holds every permission in its tenant; a permission
/// not granted to `customer` is refused to every customer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    name: &'static str,
    granted_to: &'static [Role],
}

impl Permission {
    /// The permission `name` (stable, shown in error details), held by `admin` and `granted_to`.
    pub const fn new(name: &'static str, granted_to: &'static [Role]) -> Self {
        Self { name, granted_to }
    }

    /// Stable name used in error details, e.g. `tickets.write`.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// Whether `role` holds this permission.
    pub fn granted_to(self, role: Role) -> bool {
        role == Role::Admin || self.granted_to.contains(&role)
    }
}

/// The names of those of `permissions` that `role` holds: what a service's
/// permission table grants each role, for its tests and docs.
pub fn held_by(role: Role, permissions: &[Permission]) -> std::collections::BTreeSet<&'static str> {
    permissions.iter().filter(|p| p.granted_to(role)).map(|p| p.name()).collect()
}

/// Subscribe to a service's event stream (the kit serves it for every service).
pub const EVENTS_READ: Permission = Permission::new("events.read", &[Role::Service]);

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject.
    pub subject: String,
    /// The tenant every query of this request is scoped to.
    pub tenant: Uuid,
    /// Recognised roles.
    pub roles: HashSet<Role>,
}

impl Principal {
    /// Whether any of the caller's roles grants `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        self.roles.iter().any(|r| permission.granted_to(*r))
    }

    /// Whether the caller holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// For a `customer` token, the id of the customer the caller is (its
    /// `sub` is `customers/{id}`); `None` for every other caller, whatever
    /// its subject looks like.
    pub fn customer(&self) -> Option<Uuid> {
        if !self.has_role(Role::Customer) {
            return None;
        }
        crate::resource::parse_id(&self.subject, "customers", "sub", "INVALID_SUBJECT").ok()
    }

    /// PERMISSION_DENIED unless the caller may do `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        if self.can(permission) { Ok(()) } else { Err(Error::PermissionDenied { permission: permission.name().to_owned() }) }
    }
}

/// Validates bearer tokens.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8], issuer: &str) -> Self {
        Self { key: DecodingKey::from_secret(secret), validation: validation(Algorithm::HS256, issuer) }
    }

    /// The validator the `CRM_JWT_*` settings ask for, for every process of the
    /// suite alike: RS256 when a public key file is given, else HS256 with a
    /// secret of at least 16 characters.
    pub fn from_settings(secret: Option<&str>, public_key_file: Option<&Path>, issuer: &str) -> anyhow::Result<Self> {
        match (public_key_file, secret) {
            (Some(path), _) => Self::rs256_from_pem_file(path, issuer),
            (None, Some(secret)) if secret.len() >= 16 => Ok(Self::hs256(secret.as_bytes(), issuer)),
            (None, Some(_)) => anyhow::bail!("CRM_JWT_SECRET must be at least 16 characters"),
            (None, None) => anyhow::bail!("set CRM_JWT_SECRET (HS256) or CRM_JWT_PUBLIC_KEY_FILE (RS256)"),
        }
    }

    /// RS256 with a PEM public key.
    pub fn rs256_from_pem_file(path: &Path, issuer: &str) -> anyhow::Result<Self> {
        let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading JWT public key {}: {e}", path.display()))?;
        Ok(Self { key: DecodingKey::from_rsa_pem(&pem)?, validation: validation(Algorithm::RS256, issuer) })
    }

    /// Validates the `authorization` header value and returns the caller.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, Error> {
        let header = authorization.ok_or_else(|| unauthenticated("MISSING_CREDENTIALS", "send `authorization: Bearer <token>`"))?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| unauthenticated("MISSING_CREDENTIALS", "the authorization header must use the Bearer scheme"))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| {
                let (reason, message) = match e.kind() {
                    ErrorKind::ExpiredSignature => ("TOKEN_EXPIRED", "the token has expired"),
                    ErrorKind::InvalidAudience => ("INVALID_AUDIENCE", "the token's audience is not `crm`"),
                    ErrorKind::InvalidIssuer => ("INVALID_ISSUER", "the token's issuer is not trusted"),
                    ErrorKind::InvalidAlgorithm => ("INVALID_ALGORITHM", "the token's algorithm is not accepted"),
                    ErrorKind::InvalidSignature => ("INVALID_SIGNATURE", "the token's signature is invalid"),
                    ErrorKind::MissingRequiredClaim(_) => ("MISSING_CLAIM", "the token lacks a required claim"),
                    _ => ("INVALID_TOKEN", "the token is malformed"),
                };
                unauthenticated(reason, message)
            })?
            .claims;
        let tenant = claims.tenant.as_deref().ok_or_else(|| unauthenticated("MISSING_TENANT", "the token lacks the `tenant` claim"))?;
        let tenant = Uuid::parse_str(tenant).map_err(|_| unauthenticated("INVALID_TENANT", "the `tenant` claim is not a UUID"))?;
        let roles: HashSet<Role> = claims
            .roles
            .ok_or_else(|| unauthenticated("MISSING_CLAIM", "the token lacks the `roles` claim"))?
            .iter()
            .filter_map(|r| Role::parse(r))
            .collect();
        if claims.sub.is_empty() {
            return Err(unauthenticated("MISSING_CLAIM", "the token's `sub` claim is empty"));
        }
        if roles.contains(&Role::Customer) {
            // A customer token is scoped to one customer: mixing in a staff role
            // would make "whose data is this" ambiguous, so such a token is refused.
            if roles.len() > 1 {
                return Err(unauthenticated("INVALID_ROLES", "the `customer` role cannot be combined with other roles"));
            }
            if crate::resource::parse_id(&claims.sub, "customers", "sub", "INVALID_SUBJECT").is_err() {
                return Err(unauthenticated("INVALID_SUBJECT", "a `customer` token's `sub` must be its customers/{id} name"));
            }
        }
        Ok(Principal { subject: claims.sub, tenant, roles })
    }
}

fn validation(algorithm: Algorithm, issuer: &str) -> Validation {
    let mut v = Validation::new(algorithm);
    v.algorithms = vec![algorithm];
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    v.leeway = 30;
    v
}

fn unauthenticated(reason: &'static str, message: &str) -> Error {
    Error::Unauthenticated { reason, message: message.to_owned() }
}

/// The authenticated caller of a request (placed there by the kit's middleware).
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Principal, Error> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| unauthenticated("MISSING_CREDENTIALS", "send `authorization: Bearer <token>`"))
}

/// Tokens a service mints for its own calls to other services when no
/// inbound caller's token can be forwarded (background jobs: a campaign's
/// audience read at its schedule time, say): role `service`, subject
/// `service:<name>`, one tenant, five minutes. Minted with the shared HS256
/// secret, which every service of the suite already holds to validate tokens;
/// a deployment with RS256 public keys only has no secret to mint with, and
/// the job's call fails with FAILED_PRECONDITION `SERVICE_IDENTITY_UNAVAILABLE`.
#[derive(Clone)]
pub struct ServiceTokens {
    secret: Option<Vec<u8>>,
    issuer: String,
    subject: String,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens").field("subject", &self.subject).field("can_mint", &self.secret.is_some()).finish()
    }
}

impl ServiceTokens {
    /// Tokens of service `name` under `config`'s JWT settings.
    pub fn new(config: &crate::config::KitConfig, name: &str) -> Self {
        Self {
            secret: config.jwt_secret.as_ref().map(|s| s.expose().as_bytes().to_vec()),
            issuer: config.jwt_issuer.clone(),
            subject: format!("service:{name}"),
        }
    }

    /// A fresh token for `tenant`.
    pub fn mint(&self, tenant: Uuid) -> Result<String, Error> {
        let secret = self.secret.as_ref().ok_or_else(|| Error::FailedPrecondition {
            reason: "SERVICE_IDENTITY_UNAVAILABLE",
            message: "this service has no HS256 secret (CRM_JWT_SECRET) to mint its own tokens for background calls".into(),
            subject: self.subject.clone(),
        })?;
        let claims = Claims {
            sub: self.subject.clone(),
            tenant: Some(tenant.to_string()),
            roles: Some(vec!["service".into()]),
            exp: u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0) + 300,
            aud: AUDIENCE.to_owned(),
            iss: self.issuer.clone(),
        };
        Ok(mint_hs256(secret, &claims))
    }
}

/// Mints an HS256 token: for `make run`'s dev token, service tokens and tests.
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).expect("HS256 encoding cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";

    #[test]
    fn service_tokens_carry_the_service_role_for_one_tenant() {
        let config = crate::config::KitConfig::for_tests("postgres://x", "postgres://y", "test-secret-0123456789");
        let tenant = Uuid::now_v7();
        let token = ServiceTokens::new(&config, "campaigns").mint(tenant).unwrap();
        let principal = Authenticator::hs256(b"test-secret-0123456789", "crm").authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!((principal.tenant, principal.subject.as_str()), (tenant, "service:campaigns"));
        assert!(principal.has_role(Role::Service));
        let keyless = crate::config::KitConfig { jwt_secret: None, ..config };
        assert_eq!(ServiceTokens::new(&keyless, "campaigns").mint(tenant).unwrap_err().reason(), "SERVICE_IDENTITY_UNAVAILABLE");
    }

    fn claims() -> Claims {
        Claims {
            sub: "user-1".into(),
            tenant: Some(Uuid::nil().to_string()),
            roles: Some(vec!["agent".into(), "unknown".into()]),
            exp: (chrono::Utc::now().timestamp() + 600) as u64,
            aud: AUDIENCE.into(),
            iss: "crm".into(),
        }
    }

    const AGENTS_AND_SERVICES: Permission = Permission::new("test.write", &[Role::Agent, Role::Service]);
    const ADMINS_ONLY: Permission = Permission::new("test.delete", &[]);
    const CUSTOMERS_ONLY: Permission = Permission::new("test.self", &[Role::Customer]);

    #[test]
    fn admins_hold_every_permission_and_other_roles_what_they_are_granted() {
        let principal = |roles: &[Role]| Principal { subject: "s".into(), tenant: Uuid::nil(), roles: roles.iter().copied().collect() };
        assert!(principal(&[Role::Admin]).can(ADMINS_ONLY) && principal(&[Role::Admin]).can(CUSTOMERS_ONLY));
        assert!(principal(&[Role::Readonly, Role::Agent]).can(AGENTS_AND_SERVICES), "any role may grant it");
        assert!(!principal(&[Role::Readonly]).can(AGENTS_AND_SERVICES));
        let denied = principal(&[Role::Marketer]).require(ADMINS_ONLY).unwrap_err();
        assert!(matches!(denied, Error::PermissionDenied { ref permission } if permission == "test.delete"));
    }

    fn reason(result: Result<Principal, Error>) -> &'static str {
        result.expect_err("should be rejected").reason()
    }

    #[test]
    fn a_valid_token_yields_the_principal() {
        let auth = Authenticator::hs256(SECRET, "crm");
        let p = auth.authenticate(Some(&format!("Bearer {}", mint_hs256(SECRET, &claims())))).unwrap();
        assert_eq!(p.subject, "user-1");
        assert!(p.has_role(Role::Agent));
        assert_eq!(p.roles.len(), 1);
        assert!(p.can(AGENTS_AND_SERVICES));
        assert!(!p.can(ADMINS_ONLY));
        assert!(!p.can(EVENTS_READ));
    }

    #[test]
    fn bad_tokens_are_rejected_with_a_precise_reason() {
        let auth = Authenticator::hs256(SECRET, "crm");
        let bearer = |c: &Claims| format!("Bearer {}", mint_hs256(SECRET, c));
        assert_eq!(reason(auth.authenticate(None)), "MISSING_CREDENTIALS");
        assert_eq!(reason(auth.authenticate(Some("Basic abc"))), "MISSING_CREDENTIALS");
        assert_eq!(reason(auth.authenticate(Some(&bearer(&Claims { exp: 1, ..claims() })))), "TOKEN_EXPIRED");
        assert_eq!(reason(auth.authenticate(Some(&bearer(&Claims { aud: "x".into(), ..claims() })))), "INVALID_AUDIENCE");
        assert_eq!(reason(auth.authenticate(Some(&bearer(&Claims { iss: "evil".into(), ..claims() })))), "INVALID_ISSUER");
        assert_eq!(reason(auth.authenticate(Some(&bearer(&Claims { tenant: None, ..claims() })))), "MISSING_TENANT");
        assert_eq!(reason(auth.authenticate(Some(&bearer(&Claims { tenant: Some("x".into()), ..claims() })))), "INVALID_TENANT");
        let wrong_key = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(b"other")).unwrap();
        assert_eq!(reason(auth.authenticate(Some(&format!("Bearer {wrong_key}")))), "INVALID_SIGNATURE");
        let hs384 = jsonwebtoken::encode(&Header::new(Algorithm::HS384), &claims(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(reason(auth.authenticate(Some(&format!("Bearer {hs384}")))), "INVALID_ALGORITHM");
    }

    #[test]
    fn rs256_tokens_are_checked_against_the_public_key_and_hs256_is_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let auth = Authenticator::rs256_from_pem_file(&dir.join("rs256-test-public.pem"), "crm").unwrap();
        let private = std::fs::read(dir.join("rs256-test-private.pem")).unwrap();
        let signed =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims(), &EncodingKey::from_rsa_pem(&private).unwrap()).unwrap();
        assert_eq!(auth.authenticate(Some(&format!("Bearer {signed}"))).unwrap().subject, "user-1");
        // An HS256 token "signed" with the public key must not pass (algorithm confusion).
        let public = std::fs::read(dir.join("rs256-test-public.pem")).unwrap();
        let confused = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(&public)).unwrap();
        assert_eq!(reason(auth.authenticate(Some(&format!("Bearer {confused}")))), "INVALID_ALGORITHM");
        assert!(Authenticator::rs256_from_pem_file(&dir.join("missing.pem"), "crm").is_err());
    }

    #[test]
    fn settings_pick_rs256_over_a_secret_and_refuse_weak_or_missing_ones() {
        let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rs256-test-public.pem");
        let rs256 = Authenticator::from_settings(Some("a-long-enough-secret"), Some(&key), "crm").unwrap();
        let hs256 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(b"a-long-enough-secret")).unwrap();
        assert_eq!(reason(rs256.authenticate(Some(&format!("Bearer {hs256}")))), "INVALID_ALGORITHM", "the key file wins");
        let err = |secret| Authenticator::from_settings(secret, None, "crm").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(Some("short")).contains("at least 16"));
        assert!(err(None).contains("CRM_JWT_SECRET"));
        assert!(Authenticator::from_settings(Some("a-long-enough-secret"), None, "crm").is_ok());
    }

    #[test]
    fn a_customer_token_is_scoped_to_its_subject_and_holds_only_self_permissions() {
        let auth = Authenticator::hs256(SECRET, "crm");
        let id = Uuid::now_v7();
        let bearer = |c: &Claims| format!("Bearer {}", mint_hs256(SECRET, c));
        let customer = Claims { sub: format!("customers/{id}"), roles: Some(vec!["customer".into()]), ..claims() };
        let p = auth.authenticate(Some(&bearer(&customer))).unwrap();
        assert_eq!(p.customer(), Some(id));
        assert!(p.can(CUSTOMERS_ONLY));
        for permission in [AGENTS_AND_SERVICES, ADMINS_ONLY, EVENTS_READ] {
            assert!(!p.can(permission), "{permission:?}");
        }
        assert_eq!(reason(auth.authenticate(Some(&bearer(&Claims { sub: "user-1".into(), ..customer.clone() })))), "INVALID_SUBJECT");
        let mixed = Claims { roles: Some(vec!["customer".into(), "admin".into()]), ..customer.clone() };
        assert_eq!(reason(auth.authenticate(Some(&bearer(&mixed)))), "INVALID_ROLES");
        // A staff token whose subject happens to look like a customer name is not a customer.
        let agent = auth.authenticate(Some(&bearer(&Claims { sub: format!("customers/{id}"), ..claims() }))).unwrap();
        assert_eq!(agent.customer(), None);
    }

    #[test]
    fn alg_none_is_rejected() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(serde_json::to_vec(&claims()).unwrap());
        let auth = Authenticator::hs256(SECRET, "crm");
        let err = auth.authenticate(Some(&format!("Bearer {header}.{payload}."))).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }
}
