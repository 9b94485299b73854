//! The ledger under SIGKILL: the campaigns process is killed at random
//! moments while notices are accepted and sent, and restarted each time.
//! - Email: the SMTP server's own record must show every recipient exactly
//!   one message — a re-submission of a message whose sender died may reach
//!   the server again, but only under the same Message-ID, the receiving
//!   end's idempotency key — and the ledger must agree with it.
//! - SMS through Aliyun: the provider's own record must show every recipient
//!   exactly one message and no repeat at all — a message found SUBMITTING
//!   is looked up by its OutId (QuerySendDetails) before it is sent again.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use crm_proto::crm::campaigns::v1::{self as pb, delivery_service_client::DeliveryServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    database::{TestDb, fresh_database},
    process::{ServiceProcess, binary, free_port, spawn_service, spawn_service_on},
    providers::{PeerConfig, ProviderPeer},
    smtp::SmtpSink,
};
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};

use crate::helpers::{Person, email_template};

const RECIPIENTS: usize = 300;
const KILLS: usize = 5;

pub fn campaigns_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_crm-campaigns"))
}

/// What the notices go through.
enum Route {
    Email(SmtpSink),
    Aliyun(ProviderPeer),
}

/// Profiles, and campaigns as a real process with a short lease and quick
/// retries, which a test kills with SIGKILL and starts again on the same
/// port and database.
pub struct Killable {
    pub profiles: ServiceProcess,
    pub db: TestDb,
    pub port: u16,
    pub env: Vec<(&'static str, String)>,
}

impl Killable {
    /// Starts profiles and campaigns; returns them with the running campaigns process.
    pub async fn start() -> (Self, ServiceProcess) {
        let profiles_db = fresh_database("profiles").await.unwrap();
        let profiles = spawn_service(binary("crm-profiles"), &profiles_db, &[]).await;
        let env = vec![
            ("CRM_PROFILES_URL", profiles.url.clone()),
            ("CRM_TICKETS_URL", "http://127.0.0.1:9".to_owned()),
            ("CRM_OUTBOUND_ALLOW_PRIVATE", "true".to_owned()),
            ("CRM_DELIVERY_LEASE_MS", "1500".to_owned()),
            ("CRM_DELIVERY_POLL_MS", "100".to_owned()),
            ("CRM_DELIVERY_RETRY_BASE_MS", "50".to_owned()),
            ("CRM_DELIVERY_MAX_ATTEMPTS", "20".to_owned()),
            ("CRM_SHUTDOWN_DRAIN_MS", "0".to_owned()),
            ("CRM_JOURNEY_POLL_MS", "100".to_owned()),
        ];
        let killable = Self { profiles, db: fresh_database("campaigns").await.unwrap(), port: free_port(), env };
        let campaigns = killable.restart().await;
        (killable, campaigns)
    }

    /// Starts campaigns (again).
    pub async fn restart(&self) -> ServiceProcess {
        spawn_service_on(campaigns_binary(), &self.db, self.port, &self.env).await
    }

    /// Kills `campaigns` with SIGKILL after a random pause within `after_ms`,
    /// then starts it again after another of up to 300 ms; the new process.
    pub async fn kill_and_restart(&self, campaigns: ServiceProcess, rng: &mut impl Rng, after_ms: std::ops::Range<u64>) -> ServiceProcess {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(after_ms))).await;
        campaigns.kill_hard().await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..300))).await;
        self.restart().await
    }
}

/// The tenant's Aliyun provider (the peer), paced at `per_second`.
pub async fn paced_aliyun(app: &crate::helpers::Clients, peer: &ProviderPeer, per_second: i32) {
    let provider = crate::sms::sms_provider(app, crate::sms::aliyun(peer)).await.unwrap();
    let paced = pb::Provider { max_per_second: per_second, ..provider };
    let request = app.admin(pb::UpdateProviderRequest {
        provider: Some(paced),
        update_mask: Some(prost_types::FieldMask { paths: vec!["max_per_second".into()] }),
    });
    app.providers.clone().update_provider(request).await.unwrap();
}

/// Sends one notice to each of `RECIPIENTS` customers while killing and
/// restarting campaigns `KILLS` times; returns the settled ledger.
async fn notices_through_kills(route: &Route) -> Vec<pb::Delivery> {
    // Arrange: profiles, campaigns as a real process with a short lease, the provider.
    let (suite, mut campaigns) = Killable::start().await;
    let (profiles, port) = (&suite.profiles, suite.port);

    let tenant = uuid::Uuid::now_v7();
    let admin = token(tenant, &["admin"]);
    let smtp_port = match route {
        Route::Email(smtp) => smtp.port,
        Route::Aliyun(_) => 0,
    };
    let app = crate::helpers::Clients::connect(&campaigns.url, profiles.channel.clone(), tenant, smtp_port).await;
    let template = match route {
        Route::Email(_) => {
            app.email_provider_paced(200).await;
            email_template(pb::Purpose::Transactional, "Fee", "Fee {{ vars.amount }}", &["amount"])
        }
        Route::Aliyun(peer) => {
            paced_aliyun(&app, peer, 200).await;
            pb::Template {
                display_name: "Fee".into(),
                channel: pb::Channel::Sms as i32,
                purpose: pb::Purpose::Transactional as i32,
                contents: vec![pb::TemplateContent {
                    locale: "zh-CN".into(),
                    body: "物业费{{ vars.amount }}元".into(),
                    ..Default::default()
                }],
                default_locale: "zh-CN".into(),
                locked_variables: vec!["amount".into()],
                ..Default::default()
            }
        }
    };
    let template = app.create_template(template).await.unwrap().name;
    let mut customers = Vec::new();
    for i in 0..RECIPIENTS {
        let (email, phone) = (format!("r{i}@example.com"), format!("+86139{i:08}"));
        customers.push(app.customer(Person { name: "R", email: &email, phone: &phone, ..Person::default() }).await);
    }

    // Act: senders retry each notice with its request id until it is accepted, as a real client does;
    // meanwhile the service is killed with SIGKILL and restarted, again and again.
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
    let senders: Vec<_> = customers
        .chunks(RECIPIENTS / 6)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let (channel, template, admin) = (channel.clone(), template.clone(), admin.clone());
            tokio::spawn(async move {
                for customer in &chunk {
                    send_until_accepted(&channel, &admin, &template, customer, &format!("fee-{customer}")).await;
                }
            })
        })
        .collect();
    let mut rng = rand::rngs::StdRng::from_entropy();
    for _ in 0..KILLS {
        campaigns = suite.kill_and_restart(campaigns, &mut rng, 150..600).await;
    }
    for sender in senders {
        sender.await.unwrap();
    }

    // The ledger settles with every notice SENT.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ledger = loop {
        let all = list_all(&channel, &admin).await;
        let open = all
            .iter()
            .filter(|d| d.status == pb::DeliveryStatus::Queued as i32 || d.status == pb::DeliveryStatus::Submitting as i32)
            .count();
        if all.len() == RECIPIENTS && open == 0 {
            break all;
        }
        assert!(Instant::now() < deadline, "the ledger did not settle: {} deliveries, {open} open", all.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        ledger.iter().all(|d| d.status == pb::DeliveryStatus::Sent as i32),
        "{:?}",
        ledger.iter().find(|d| d.status != pb::DeliveryStatus::Sent as i32)
    );
    campaigns.kill_hard().await;
    ledger
}

#[tokio::test]
async fn every_recipient_gets_exactly_one_email_through_repeated_sigkills() {
    let route = Route::Email(SmtpSink::start().await);
    let ledger = notices_through_kills(&route).await;
    let Route::Email(smtp) = &route else { unreachable!() };

    // The SMTP server's own record: one Message-ID per recipient, the ledger's.
    let mail = smtp.messages();
    let mut ids_by_recipient: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &mail {
        for to in &m.rcpt_tos {
            ids_by_recipient.entry(to.clone()).or_default().insert(m.message_id.clone());
        }
    }
    assert_eq!(ids_by_recipient.len(), RECIPIENTS, "every recipient received the notice");
    let twice: Vec<_> = ids_by_recipient.iter().filter(|(_, ids)| ids.len() != 1).collect();
    assert!(twice.is_empty(), "recipients with two different messages: {twice:?}");
    for d in &ledger {
        let ids = &ids_by_recipient[&d.recipient];
        assert!(
            ids.contains(&d.provider_message_id),
            "the ledger's Message-ID {} is the one {} received",
            d.provider_message_id,
            d.recipient
        );
    }
    let resubmitted = mail.len() - RECIPIENTS;
    // Only what was being handed to the relay when a kill struck comes again: at most the provider's in-flight slots.
    assert!(resubmitted <= KILLS * crm_campaigns::channels::IN_FLIGHT_PER_PROVIDER, "{resubmitted} re-submissions");
    println!(
        "email: {KILLS} SIGKILLs, {RECIPIENTS} recipients: {} messages reached the server, {resubmitted} of them re-submissions under the same Message-ID",
        mail.len()
    );
}

#[tokio::test]
async fn every_recipient_gets_exactly_one_sms_through_repeated_sigkills() {
    let route = Route::Aliyun(ProviderPeer::start(PeerConfig::default()).await);
    let ledger = notices_through_kills(&route).await;
    let Route::Aliyun(peer) = &route else { unreachable!() };

    // The provider's own record: each delivery's OutId once, and nothing else.
    let received = peer.messages();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &received {
        *per_id.entry(m.key.clone()).or_default() += 1;
    }
    let repeated: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "messages the provider got twice: {repeated:?}");
    assert_eq!(received.len(), RECIPIENTS, "every recipient exactly once");
    for d in &ledger {
        assert_eq!(per_id.get(d.name.trim_start_matches("deliveries/")), Some(&1), "{} reached Aliyun once", d.name);
    }
    let reconciled = ledger.iter().filter(|d| d.provider_message_id.starts_with("OutId:")).count();
    println!(
        "sms: {KILLS} SIGKILLs, {RECIPIENTS} recipients: {} messages reached Aliyun, {reconciled} found there by OutId after a kill instead of being sent again",
        received.len()
    );
}

async fn send_until_accepted(channel: &Channel, token: &str, template: &str, customer: &str, request_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = with_token(
            pb::SendNoticeRequest {
                template: template.to_owned(),
                customer: customer.to_owned(),
                variables: [("amount".to_owned(), "10".to_owned())].into(),
                request_id: request_id.to_owned(),
            },
            token,
        );
        match DeliveryServiceClient::new(channel.clone()).send_notice(request).await {
            Ok(_) => return,
            Err(status) => {
                assert!(Instant::now() < deadline, "{request_id} was never accepted: {status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

pub async fn list_all(channel: &Channel, token: &str) -> Vec<pb::Delivery> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let request =
            with_token(pb::ListDeliveriesRequest { page_size: 1000, page_token: page_token.clone(), filter: String::new() }, token);
        let Ok(page) = DeliveryServiceClient::new(channel.clone()).list_deliveries(request).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let page = page.into_inner();
        all.extend(page.deliveries);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}
