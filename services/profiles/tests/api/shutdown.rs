//! Graceful shutdown of the real binary under load.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use crm_testkit::{
    auth::{jwt_secret, token, with_token},
    database::fresh_database,
};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn sigterm_under_load_fails_no_call_and_exits_within_ten_seconds() {
    let db = fresh_database("profiles").await.unwrap();
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_crm-profiles"))
        .env("CRM_DATABASE_URL", &db.app_url)
        .env("CRM_MIGRATION_DATABASE_URL", &db.owner_url)
        .env("CRM_JWT_SECRET", jwt_secret())
        .env("CRM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("CRM_SHUTDOWN_DRAIN_MS", "1000")
        .env("CRM_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let channel = loop {
        match Channel::from_shared(endpoint.clone()).unwrap().connect().await {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let tenant = uuid::Uuid::now_v7();
    let admin = token(tenant, &["admin"]);
    let mut client = CustomerServiceClient::new(channel.clone());
    let created = client
        .create_customer(with_token(
            pb::CreateCustomerRequest {
                customer: Some(pb::Customer { display_name: "Ada".into(), ..Default::default() }),
                request_id: String::new(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();

    // Clients behave like a load balancer: they stop sending once health says NOT_SERVING.
    let draining = Arc::new(AtomicBool::new(false));
    let watcher = {
        let draining = draining.clone();
        let mut health = HealthClient::new(channel.clone());
        tokio::spawn(async move {
            let mut updates =
                health.watch(HealthCheckRequest { service: "crm.profiles.v1.CustomerService".into() }).await.unwrap().into_inner();
            while let Some(Ok(update)) = updates.next().await {
                if update.status == ServingStatus::NotServing as i32 {
                    draining.store(true, Ordering::SeqCst);
                    return;
                }
            }
            draining.store(true, Ordering::SeqCst);
        })
    };
    let ok = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..16)
        .map(|i| {
            let (mut client, draining, ok, admin, name) =
                (client.clone(), draining.clone(), ok.clone(), admin.clone(), created.name.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !draining.load(Ordering::SeqCst) {
                    let result = if i % 2 == 0 {
                        client.get_customer(with_token(pb::GetCustomerRequest { name: name.clone() }, &admin)).await.map(|_| ())
                    } else {
                        client
                            .list_customers(with_token(pb::ListCustomersRequest { page_size: 100, ..Default::default() }, &admin))
                            .await
                            .map(|_| ())
                    };
                    match result {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => failures.push(status),
                    }
                }
                failures
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = ok.load(Ordering::Relaxed);
    std::process::Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status().unwrap();
    let signalled = Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits within 10 s").unwrap();

    let failures: Vec<_> = futures::future::join_all(load).await.into_iter().flat_map(|r| r.unwrap()).collect();
    watcher.await.unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");
    assert!(before > 0 && ok.load(Ordering::Relaxed) > before, "calls kept succeeding after SIGTERM");
    assert!(failures.is_empty(), "failed calls: {failures:?}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
}
