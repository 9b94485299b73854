//! TLS to Postgres (a kit capability, exercised through profiles) against a
//! real TLS-only Postgres with certificates made for the test: the service
//! connects with `verify-full`, and refuses — at once, not after 30 s of
//! retries — a server whose certificate does not chain to its CA or does
//! not name the host.

use std::time::{Duration, Instant};

use crm_kit::{config::KitConfig, db};
use crm_proto::crm::profiles::v1 as pb;
use crm_testkit::{
    auth::{token, with_token},
    database::TestDb,
    postgres_tls::TlsPostgres,
    process::{binary, spawn_service},
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

fn config(url: &str, ca: Option<&std::path::Path>, sslmode: Option<&str>) -> KitConfig {
    let mut config = KitConfig::for_tests(url, url, "crm-test-secret-0123456789abcdef");
    config.database_ca_file = ca.map(Into::into);
    config.database_sslmode = sslmode.map(Into::into);
    config
}

/// Connects with `config`; the error's text when refused, and how long refusing took.
async fn refused(config: &KitConfig) -> (String, Duration) {
    let started = Instant::now();
    let err = db::connect(config).await.expect_err("refused");
    (format!("{err:#}"), started.elapsed())
}

#[tokio::test]
async fn the_kit_connects_with_verify_full_and_refuses_a_certificate_that_does_not_match() {
    let pg = TlsPostgres::start();

    // verify-full: the CA signed the server's certificate, which names localhost.
    let pool = db::connect(&config(&pg.url("localhost", "verify-full"), Some(&pg.ca_file), None)).await.expect("connects over TLS");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&pool).await.unwrap();
    assert!(ssl, "the session is encrypted");
    pool.close().await;
    // The same with the mode as a setting over a URL without one (as the Kubernetes overlays do).
    let bare = format!("postgres://postgres@localhost:{}/postgres", pg.port);
    db::connect(&config(&bare, Some(&pg.ca_file), Some("verify-full"))).await.expect("CRM_DATABASE_SSLMODE applies").close().await;

    // A CA that did not sign the server's certificate.
    let (err, took) = refused(&config(&pg.url("localhost", "verify-full"), Some(&pg.other_ca_file), None)).await;
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    assert!(took < Duration::from_secs(5), "refused at once, not retried: {took:?}: {err}");
    // A host name the certificate does not name.
    let (err, took) = refused(&config(&pg.url("127.0.0.1", "verify-full"), Some(&pg.ca_file), None)).await;
    assert!(err.contains("TLS") || err.contains("certificate") || err.contains("name"), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // With only the system's roots (no CA setting), the test CA is unknown.
    let (err, _) = refused(&config(&pg.url("localhost", "verify-full"), None, None)).await;
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    // A CA file with a mode that checks nothing is a configuration error, not a false promise.
    let (err, _) = refused(&config(&pg.url("localhost", "require"), Some(&pg.ca_file), None)).await;
    assert!(err.contains("CRM_DATABASE_CA_FILE"), "{err}");
    // A mode that does not exist is a configuration error.
    let (err, _) = refused(&config(&bare, None, Some("verify-everything"))).await;
    assert!(err.contains("CRM_DATABASE_SSLMODE"), "{err}");

    // The server takes TLS connections only, so the successes above were TLS.
    let plain = PgConnection::connect(&pg.url("localhost", "disable")).await;
    assert!(plain.is_err(), "a connection without TLS is rejected by pg_hba");
}

#[tokio::test]
async fn the_service_migrates_and_serves_over_verified_tls() {
    let pg = TlsPostgres::start();
    let mut admin = PgConnection::connect(&pg.url("localhost", "require")).await.unwrap();
    for statement in
        ["CREATE ROLE crm_profiles_owner LOGIN", "CREATE ROLE crm_profiles LOGIN", "CREATE DATABASE crm_profiles OWNER crm_profiles_owner"]
    {
        sqlx::query(statement).execute(&mut admin).await.unwrap();
    }
    let db = TestDb {
        name: "crm_profiles".into(),
        app_url: pg.role_url("crm_profiles", "crm_profiles"),
        owner_url: pg.role_url("crm_profiles_owner", "crm_profiles"),
    };
    let tls = [("CRM_DATABASE_SSLMODE", "verify-full".to_owned()), ("CRM_DATABASE_CA_FILE", pg.ca_file.display().to_string())];
    let service = spawn_service(binary("crm-profiles"), &db, &tls).await;
    let tenant = Uuid::now_v7();
    let customer = pb::Customer { display_name: "Ada over TLS".into(), ..Default::default() };
    let created = pb::customer_service_client::CustomerServiceClient::new(service.channel.clone())
        .create_customer(with_token(
            pb::CreateCustomerRequest { customer: Some(customer), ..Default::default() },
            &token(tenant, &["admin"]),
        ))
        .await
        .expect("served from a database reached over TLS")
        .into_inner()
        .customer
        .expect("the customer");
    assert_eq!(created.display_name, "Ada over TLS");
    let encrypted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'crm_profiles' AND s.ssl",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(encrypted >= 1, "the service's connections are encrypted");
    drop(service);

    // The same service with a CA that did not sign the server's certificate stops at start-up.
    let mut command = tokio::process::Command::new(binary("crm-profiles"));
    command
        .env("CRM_DATABASE_URL", &db.app_url)
        .env("CRM_MIGRATION_DATABASE_URL", &db.owner_url)
        .env("CRM_DATABASE_SSLMODE", "verify-full")
        .env("CRM_DATABASE_CA_FILE", &pg.other_ca_file)
        .env("CRM_LISTEN_ADDR", format!("127.0.0.1:{}", crm_testkit::process::free_port()))
        .env("CRM_JWT_SECRET", "crm-test-secret-0123456789abcdef")
        .env("CRM_LOG", "error")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(10), command.output()).await.expect("exits at once, not after retrying").unwrap();
    assert!(!out.status.success(), "refuses the server");
}
