//! Health, reflection and behaviour while Postgres is unreachable.

use std::time::Duration;

use crm_proto::crm::profiles::v1 as pb;
use crm_testkit::proxy::Proxy;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

async fn health(app: &crate::helpers::TestApp, service: &str) -> ServingStatus {
    let response = HealthClient::new(app.channel.clone()).check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
    ServingStatus::try_from(response.status).unwrap()
}

#[tokio::test]
async fn health_answers_without_a_token_per_service() {
    let app = spawn_app().await;
    for service in ["", "crm.profiles.v1.CustomerService", "crm.events.v1.EventService"] {
        assert_eq!(health(&app, service).await, ServingStatus::Serving, "{service:?}");
    }
    let unknown = HealthClient::new(app.channel.clone()).check(HealthCheckRequest { service: "crm.nope.v1.Nope".into() }).await;
    assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn calls_beyond_the_in_flight_limit_are_shed_but_health_still_answers() {
    // No call may run at once: every API call is shed, probes are not.
    let app = spawn_app_with(|config| config.kit.max_in_flight = 0).await;
    let shed = app.customers.clone().list_customers(app.admin(pb::ListCustomersRequest::default())).await;
    let status = assert_error(shed, Code::Unavailable, "OVERLOADED");
    use tonic_types::StatusExt;
    assert!(status.get_error_details().retry_info().is_some());
    assert_eq!(health(&app, "").await, ServingStatus::Serving);
}

#[tokio::test]
async fn an_oversized_message_is_resource_exhausted_with_error_info() {
    let app = spawn_app_with(|config| config.kit.max_message_bytes = 1024).await;
    let big = pb::Customer { display_name: "x".repeat(2000), ..Default::default() };
    let result = app
        .customers
        .clone()
        .create_customer(app.admin(pb::CreateCustomerRequest { customer: Some(big), request_id: String::new() }))
        .await;
    let status = assert_error(result, Code::ResourceExhausted, "MESSAGE_TOO_LARGE");
    assert_eq!(crate::helpers::error_info(&status).1, "profiles.crm");
}

#[tokio::test]
async fn a_call_past_its_deadline_is_deadline_exceeded_with_error_info() {
    let app = spawn_app_with(|config| config.kit.request_timeout_ms = 0).await;
    let result = app.customers.clone().list_customers(app.admin(pb::ListCustomersRequest::default())).await;
    assert_error(result, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_exactly_the_served_services() {
    use tokio_stream::StreamExt;
    let app = spawn_app().await;
    let expected = vec![
        "crm.events.v1.EventService".to_string(),
        "crm.profiles.v1.CommunicationService".into(),
        "crm.profiles.v1.CustomerService".into(),
        "crm.profiles.v1.DuplicateService".into(),
        "crm.profiles.v1.ExportService".into(),
        "crm.profiles.v1.GradingService".into(),
        "crm.profiles.v1.ImportService".into(),
        "crm.profiles.v1.MergeService".into(),
        "crm.profiles.v1.OccurrenceService".into(),
        "crm.profiles.v1.PaymentAccountService".into(),
        "crm.profiles.v1.PremisesService".into(),
        "crm.profiles.v1.RelatedPersonService".into(),
        "crm.profiles.v1.RenameRequestService".into(),
        "crm.profiles.v1.SegmentService".into(),
        "crm.profiles.v1.TransactionService".into(),
        "crm.webhooks.v1.WebhookService".into(),
        "grpc.health.v1.Health".into(),
        "grpc.reflection.v1.ServerReflection".into(),
        "grpc.reflection.v1alpha.ServerReflection".into(),
    ];

    use tonic_reflection::pb::v1;
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        stream.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, expected);

    use tonic_reflection::pb::v1alpha;
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
            "crm.profiles.v1.CustomerService".into(),
        )),
    };
    let mut stream = v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(response.message_response, Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(f)) if !f.file_descriptor_proto.is_empty())
    );
}

#[tokio::test]
async fn an_unreachable_database_means_not_serving_and_unavailable_then_recovery() {
    let upstream = std::env::var("PROFILES_DATABASE_URL").unwrap();
    let host_port = upstream.split('@').nth(1).unwrap().split('/').next().unwrap().to_string();
    let proxy = Proxy::start(tokio::net::lookup_host(&host_port).await.unwrap().next().unwrap()).await.unwrap();
    let proxy_addr = proxy.addr;
    let app = spawn_app_with(|config| {
        let url = config.kit.database_url.expose().replace(&host_port, &proxy_addr.to_string());
        config.kit.database_url = url.as_str().into();
        config.kit.db_acquire_timeout_ms = 500;
    })
    .await;
    let created = app.create(crate::helpers::customer("Ada", "")).await;

    proxy.cut();
    let mut status = ServingStatus::Serving;
    for _ in 0..50 {
        status = health(&app, "crm.profiles.v1.CustomerService").await;
        if status == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, ServingStatus::NotServing);
    let during = app.customers.clone().get_customer(app.admin(pb::GetCustomerRequest { name: created.name.clone() })).await;
    let error = assert_error(during, Code::Unavailable, "DATABASE_UNAVAILABLE");
    use tonic_types::StatusExt;
    assert!(error.get_error_details().retry_info().is_some());

    proxy.restore();
    for _ in 0..50 {
        status = health(&app, "crm.profiles.v1.CustomerService").await;
        if status == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, ServingStatus::Serving);
    assert_eq!(app.get(&created.name).await.unwrap().display_name, "Ada");
    app.stop().await;
}

#[tokio::test]
async fn migrate_only_applies_the_schema_grants_the_login_role_and_exits_without_serving() {
    // Arrange: an empty database, as a Kubernetes init container sees it before a rollout.
    let db = crm_testkit::database::fresh_database("profiles").await.unwrap();

    // Act
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crm-profiles"))
        .env("CRM_DATABASE_URL", &db.app_url)
        .env("CRM_MIGRATION_DATABASE_URL", &db.owner_url)
        .env("CRM_JWT_SECRET", crm_testkit::auth::jwt_secret())
        .env("CRM_LISTEN_ADDR", "127.0.0.1:1")
        .env("CRM_MIGRATE_ONLY", "true")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await.expect("exits on its own").unwrap();

    // Assert: a clean exit (it never bound port 1), and the login role can use the new tables.
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let app = sqlx::PgPool::connect(&db.app_url).await.unwrap();
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&app).await.unwrap();
    assert_eq!(customers, 0);
}

#[tokio::test]
async fn migrate_only_without_the_owner_url_fails_with_a_clear_message() {
    let db = crm_testkit::database::fresh_database("profiles").await.unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crm-profiles"))
        .env("CRM_DATABASE_URL", &db.app_url)
        .env_remove("CRM_MIGRATION_DATABASE_URL")
        .env("CRM_JWT_SECRET", crm_testkit::auth::jwt_secret())
        .env("CRM_MIGRATE_ONLY", "true")
        .env("CRM_LOG_FORMAT", "pretty")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("CRM_MIGRATION_DATABASE_URL"), "{logs}");
}
