//! Mints an HS256 access token for local development and scripts.
//! Reads the secret from `CRM_JWT_SECRET`; never use it against production keys.

use clap::Parser;
use crm_kit::auth::{AUDIENCE, Claims, mint_hs256};

/// Mint a CRM access token.
#[derive(Parser)]
struct Args {
    /// Tenant id (UUID).
    #[arg(long)]
    tenant: uuid::Uuid,
    /// Comma-separated roles, e.g. "admin" or "agent,marketer".
    #[arg(long, default_value = "admin")]
    roles: String,
    /// Subject (user id).
    #[arg(long, default_value = "dev-admin")]
    subject: String,
    /// Lifetime in hours.
    #[arg(long, default_value_t = 24)]
    ttl_hours: u64,
    /// Issuer.
    #[arg(long, env = "CRM_JWT_ISSUER", default_value = "crm")]
    issuer: String,
    /// Signing secret.
    #[arg(long, env = "CRM_JWT_SECRET", hide_env_values = true)]
    secret: String,
}

fn main() {
    let args = Args::parse();
    let claims = Claims {
        sub: args.subject,
        tenant: Some(args.tenant.to_string()),
        roles: Some(args.roles.split(',').map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).collect()),
        exp: chrono::Utc::now().timestamp() as u64 + args.ttl_hours * 3600,
        aud: AUDIENCE.to_owned(),
        iss: args.issuer,
    };
    println!("{}", mint_hs256(args.secret.as_bytes(), &claims));
}
