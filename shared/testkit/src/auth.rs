//! Tokens for tests, signed with the same secret the services under test use.

use crm_kit::auth::{AUDIENCE, Claims, mint_hs256};
use uuid::Uuid;

/// The HS256 secret: `CRM_JWT_SECRET` when set, else a fixed test secret.
pub fn jwt_secret() -> String {
    std::env::var("CRM_JWT_SECRET").unwrap_or_else(|_| "crm-test-secret-0123456789abcdef".to_owned())
}

/// Valid claims for `tenant` with `roles`, expiring in an hour.
pub fn claims(subject: &str, tenant: Uuid, roles: &[&str]) -> Claims {
    Claims {
        sub: subject.to_owned(),
        tenant: Some(tenant.to_string()),
        roles: Some(roles.iter().map(|r| r.to_string()).collect()),
        exp: chrono::Utc::now().timestamp() as u64 + 3600,
        aud: AUDIENCE.to_owned(),
        iss: "crm".to_owned(),
    }
}

/// A signed token for `claims`.
pub fn token_with(claims: &Claims) -> String {
    mint_hs256(jwt_secret().as_bytes(), claims)
}

/// A signed token for `tenant` with `roles`.
pub fn token(tenant: Uuid, roles: &[&str]) -> String {
    token_with(&claims("test-user", tenant, roles))
}

/// `message` as a request carrying `authorization: Bearer <token>`.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ASCII token"));
    request
}

/// A `customer` token for `tenant` whose subject is `customer` (`customers/{id}`).
pub fn customer_token(tenant: Uuid, customer: &str) -> String {
    token_with(&claims(customer, tenant, &["customer"]))
}
