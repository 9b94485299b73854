//! The NATS JetStream relay (a kit capability, exercised through profiles)
//! against a real nats-server: every committed event, in order per tenant,
//! once, with the event id as `Nats-Msg-Id`.

use std::time::Duration;

use crm_kit::relay::stream_name;
use crm_proto::crm::profiles::v1 as pb;
use crm_testkit::{
    auth::{token, with_token},
    jetstream::wait_for_messages,
    nats::NatsServer,
};
use uuid::Uuid;

use crate::helpers::{customer, spawn_app_with};

#[tokio::test]
async fn every_event_reaches_jetstream_in_order_once_with_its_id() {
    let nats = NatsServer::start().await;
    let url = nats.url.clone();
    let app = spawn_app_with(|c| c.kit.relay.nats_url = Some(url)).await;
    for i in 0..5 {
        app.create(customer(&format!("Relayed {i}"), &format!("relayed{i}@example.com"))).await;
    }
    let other = Uuid::now_v7();
    let other_token = token(other, &["admin"]);
    for i in 0..3 {
        app.customers
            .clone()
            .create_customer(with_token(
                pb::CreateCustomerRequest {
                    customer: Some(customer(&format!("Other {i}"), &format!("o{i}@example.com"))),
                    request_id: String::new(),
                },
                &other_token,
            ))
            .await
            .unwrap();
    }
    let mine = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 5).await;
    let theirs = crm_testkit::events::collect(&app.channel, &other_token, 0, 3).await;

    let relayed = wait_for_messages(&nats.client().await, &stream_name("profiles"), 8, Duration::from_secs(15)).await;
    assert_eq!(relayed.len(), 8, "every event once");
    for (tenant, events) in [(app.tenant, &mine), (other, &theirs)] {
        let of_tenant: Vec<_> = relayed.iter().filter(|m| m.event.tenant == tenant.to_string()).collect();
        assert_eq!(of_tenant.iter().map(|m| &m.event.id).collect::<Vec<_>>(), events.iter().map(|e| &e.id).collect::<Vec<_>>(), "in order");
        for (message, event) in of_tenant.iter().zip(events.iter()) {
            assert_eq!(message.message_id, event.id, "Nats-Msg-Id is the event id");
            assert_eq!(message.subject, format!("crm.profiles.{tenant}.{}", event.r#type));
            assert_eq!(message.event, *event, "the envelope as Subscribe streams it");
        }
    }

    // Later events follow, soon after their commit.
    app.create(customer("Late", "late@example.com")).await;
    let relayed = wait_for_messages(&nats.client().await, &stream_name("profiles"), 9, Duration::from_secs(15)).await;
    assert_eq!(relayed.len(), 9);
    assert_eq!(relayed[8].event.r#type, "crm.profiles.v1.CustomerCreated");
}
