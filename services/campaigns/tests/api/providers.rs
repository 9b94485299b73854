//! Providers: write-only credentials sealed at rest, one per channel, SSRF-safe hosts, admins only.

use crm_proto::crm::campaigns::v1 as pb;
use sqlx::{Connection, PgConnection};
use tonic::Code;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, violations};

fn relay(host: &str, password: &str) -> pb::Provider {
    pb::Provider {
        display_name: "Relay".into(),
        channel: pb::Channel::Email as i32,
        max_per_second: 50,
        settings: Some(pb::provider::Settings::Smtp(pb::SmtpSettings {
            host: host.into(),
            port: 0,
            security: pb::SmtpSecurity::Starttls as i32,
            username: "crm".into(),
            password: password.into(),
            from_address: "notices@crm.example".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn smtp(p: &pb::Provider) -> &pb::SmtpSettings {
    match p.settings.as_ref().unwrap() {
        pb::provider::Settings::Smtp(s) => s,
        other => panic!("not an SMTP provider: {other:?}"),
    }
}

#[tokio::test]
async fn credentials_are_write_only_and_sealed_at_rest() {
    let app = spawn_app().await;
    let request = pb::CreateProviderRequest { provider: Some(relay("127.0.0.1", "hunter2-secret")), request_id: String::new() };
    let created = app.providers.clone().create_provider(app.admin(request)).await.unwrap().into_inner().provider.unwrap();
    assert_eq!(smtp(&created).password, "", "never returned");
    assert!(smtp(&created).password_set);
    assert_eq!(smtp(&created).port, 587, "STARTTLS's default port");

    let mut owner = PgConnection::connect(&app.db.owner_url).await.unwrap();
    // FORCE ROW LEVEL SECURITY binds the owner too: look as the tenant.
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut owner).await.unwrap();
    let stored: (serde_json::Value, Vec<u8>) =
        sqlx::query_as("SELECT settings, credentials FROM providers").fetch_one(&mut owner).await.unwrap();
    assert!(!stored.0.to_string().contains("hunter2"), "settings hold no secret: {}", stored.0);
    assert!(!stored.1.windows(7).any(|w| w == b"hunter2"), "the credential is encrypted");

    // An update without a password keeps the stored one.
    let mut edit = created.clone();
    edit.display_name = "Main relay".into();
    let request = pb::UpdateProviderRequest {
        provider: Some(edit),
        update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
    };
    let updated = app.providers.clone().update_provider(app.admin(request)).await.unwrap().into_inner().provider.unwrap();
    assert!(smtp(&updated).password_set);
    let after: Vec<u8> = sqlx::query_scalar("SELECT credentials FROM providers").fetch_one(&mut owner).await.unwrap();
    assert_eq!(after, stored.1);

    let again = pb::CreateProviderRequest { provider: Some(relay("127.0.0.1", "")), request_id: String::new() };
    assert_error(app.providers.clone().create_provider(app.admin(again)).await, Code::AlreadyExists, "PROVIDER_EXISTS");
}

#[tokio::test]
async fn only_administrators_configure_providers() {
    let app = spawn_app().await;
    for role in ["marketer", "agent", "analyst"] {
        let request = app.as_roles(pb::ListProvidersRequest::default(), &[role]);
        assert_error(app.providers.clone().list_providers(request).await, Code::PermissionDenied, "PERMISSION_DENIED");
    }
}

#[tokio::test]
async fn relays_on_internal_addresses_are_refused_in_production() {
    let app = spawn_app_with(|c| c.kit.outbound_allow_private = false).await;
    for host in ["127.0.0.1", "10.0.0.7", "169.254.169.254", "localhost"] {
        let request = pb::CreateProviderRequest { provider: Some(relay(host, "")), request_id: String::new() };
        let status =
            assert_error(app.providers.clone().create_provider(app.admin(request)).await, Code::InvalidArgument, "HOST_NOT_ALLOWED");
        assert_eq!(violations(&status), vec![("provider.smtp.host".to_owned(), "HOST_NOT_ALLOWED".to_owned())], "{host}");
    }
}
