//! Graceful shutdown of the real binary under load.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use crm_testkit::auth::with_token;
use tokio_stream::StreamExt;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::helpers::spawn_binary;

#[tokio::test]
async fn sigterm_under_load_fails_no_call_and_exits_within_ten_seconds() {
    let app = spawn_binary(&[("CRM_SHUTDOWN_DRAIN_MS", "1000".into())]).await;
    let (channel, admin) = (app.channel.clone(), app.admin_token.clone());
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
    let took = app.terminate().await;

    let failures: Vec<_> = futures::future::join_all(load).await.into_iter().flat_map(|r| r.unwrap()).collect();
    watcher.await.unwrap();
    assert!(before > 0 && ok.load(Ordering::Relaxed) > before, "calls kept succeeding after SIGTERM");
    assert!(failures.is_empty(), "failed calls: {failures:?}");
    assert!(took < Duration::from_secs(10));
}
