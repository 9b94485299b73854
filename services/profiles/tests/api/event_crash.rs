//! Outward delivery under SIGKILL: the profiles process is killed while it
//! delivers a backlog of events to a webhook and while it relays them to
//! JetStream; after a restart every event arrives, in order, and JetStream
//! holds each exactly once (the relay publishes again what it had not
//! recorded, and JetStream drops those copies by `Nats-Msg-Id`).

use std::{collections::HashSet, path::PathBuf, time::Duration};

use crm_kit::{
    relay::stream_name,
    webhooks::signing::{secret_key, verify},
};
use crm_proto::crm::webhooks::v1::{self as hooks, webhook_service_client::WebhookServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    database::{TestDb, fresh_database},
    events::write_backlog,
    jetstream::wait_for_messages,
    nats::NatsServer,
    process::{ServiceProcess, free_port, spawn_service_on},
    webhooks::WebhookReceiver,
};
use tonic::transport::Channel;
use uuid::Uuid;

/// A profiles process on one database and port, killed and started again.
struct Restartable {
    db: TestDb,
    port: u16,
    env: Vec<(&'static str, String)>,
    service: Option<ServiceProcess>,
}

impl Restartable {
    async fn start(env: Vec<(&'static str, String)>) -> Self {
        let mut me = Self { db: fresh_database("profiles").await.unwrap(), port: free_port(), env, service: None };
        me.service = Some(me.spawn().await);
        me
    }

    async fn spawn(&self) -> ServiceProcess {
        spawn_service_on(PathBuf::from(env!("CARGO_BIN_EXE_crm-profiles")), &self.db, self.port, &self.env).await
    }

    fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port)).unwrap().connect_lazy()
    }

    async fn kill_and_restart(&mut self, env: Vec<(&'static str, String)>) {
        self.service.take().expect("running").kill_hard().await;
        self.env = env;
        self.service = Some(self.spawn().await);
    }
}

#[tokio::test]
async fn webhook_delivery_killed_mid_backlog_resumes_and_delivers_every_event_in_order() {
    let env = vec![
        ("CRM_OUTBOUND_ALLOW_PRIVATE", "true".to_owned()),
        ("CRM_WEBHOOK_LEASE_MS", "1000".to_owned()),
        ("CRM_WEBHOOK_TIMEOUT_MS", "500".to_owned()),
        ("CRM_WEBHOOK_POLL_MS", "100".to_owned()),
    ];
    let mut service = Restartable::start(env.clone()).await;
    let tenant = Uuid::now_v7();
    let admin = token(tenant, &["admin"]);
    let receiver = WebhookReceiver::start().await;
    receiver.delay(Duration::from_millis(2));
    let created = WebhookServiceClient::new(service.channel())
        .create_webhook(with_token(
            hooks::CreateWebhookRequest {
                webhook: Some(hooks::Webhook { target_uri: receiver.url(), ..Default::default() }),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let ids = write_backlog(&service.db.app_url, tenant, 1500).await;

    let before = receiver.wait_for_accepted(300, Duration::from_secs(30)).await.len();
    service.kill_and_restart(env).await;
    let at_kill = receiver.accepted().len();
    assert!((300..1500).contains(&before) && at_kill < 1500, "killed mid-backlog: {before} then {at_kill} delivered");

    let expected: HashSet<String> = ids.iter().map(Uuid::to_string).collect();
    let mut delivered = Vec::new();
    for _ in 0..600 {
        delivered = receiver.accepted();
        if delivered.iter().map(|r| r.id.clone()).collect::<HashSet<_>>() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: HashSet<String> = delivered.iter().map(|r| r.id.clone()).collect();
    assert_eq!(seen, expected, "every event delivered after the restart");
    // In order: each event's first delivery comes after every earlier event's;
    // repeats are the ones sent but not yet recorded when the process died.
    let mut first_seen = HashSet::new();
    let mut last_new = 0;
    for r in &delivered {
        if first_seen.insert(r.id.clone()) {
            assert!(r.position() > last_new, "event {} out of order", r.id);
            last_new = r.position();
        }
    }
    let repeats = delivered.len() - seen.len();
    assert!(repeats <= 300, "only unrecorded deliveries repeat, with the same webhook-id: {repeats}");
    let key = secret_key(&created.secret).unwrap();
    assert!(delivered.iter().all(|r| verify(&key, &r.id, r.timestamp, &r.body, &r.signature)));
}

#[tokio::test]
async fn the_relay_killed_mid_backlog_leaves_each_event_in_jetstream_exactly_once() {
    let nats = NatsServer::start().await;
    let client = nats.client().await;
    let mut service = Restartable::start(Vec::new()).await;
    let tenant = Uuid::now_v7();
    let ids = write_backlog(&service.db.app_url, tenant, 20_000).await;
    let relaying =
        vec![("CRM_NATS_URL", nats.url.clone()), ("CRM_RELAY_LEASE_MS", "1000".to_owned()), ("CRM_RELAY_POLL_MS", "100".to_owned())];
    service.kill_and_restart(relaying.clone()).await;

    let stream = stream_name("profiles");
    let js = async_nats::jetstream::new(client.clone());
    let mut held = 0;
    for _ in 0..1500 {
        held = match js.get_stream(&stream).await {
            Ok(s) => s.get_info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if held >= 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.kill_and_restart(relaying).await;
    assert!((2000..20_000).contains(&held), "killed mid-relay with {held} events relayed");

    let relayed = wait_for_messages(&client, &stream, 20_000, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = wait_for_messages(&client, &stream, 20_000, Duration::from_secs(1)).await.len();
    assert_eq!((relayed.len(), after), (20_000, 20_000), "each event exactly once");
    let relayed_ids: HashSet<String> = relayed.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(relayed_ids, ids.iter().map(Uuid::to_string).collect::<HashSet<_>>(), "every event");
    assert!(relayed.windows(2).all(|w| w[0].event.position < w[1].event.position), "in position order");
    assert!(relayed.iter().all(|m| m.message_id == m.event.id));
}
