//! Journeys under SIGKILL: the campaigns process is killed while a burst of
//! profiles' CustomerCreated events starts a welcome journey, and again
//! while the runs wake up from their wait. After the last restart every
//! customer has exactly one run, every step happened once (one history entry
//! each, two messages in the ledger, two points bookings), and each points
//! balance is the sum of its bookings.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use crm_proto::crm::campaigns::v1::{self as pb, journey_service_client::JourneyServiceClient};
use crm_testkit::smtp::SmtpSink;
use futures::StreamExt;
use rand::SeedableRng;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{
    crash::Killable,
    helpers::{Clients, Person, email_template},
    journeys::{send, wait_days},
};

const CUSTOMERS: usize = 200;
const KILLS_DURING_BURST: usize = 3;
const KILLS_DURING_WAKE_UP: usize = 2;

fn grant(id: &str, points: i64, next: &str) -> pb::JourneyStep {
    let grant = pb::GrantPointsStep { points, expire_days: 0, reason: String::new() };
    pb::JourneyStep { id: id.into(), kind: Some(pb::journey_step::Kind::GrantPoints(grant)), next: next.into() }
}

/// The tenant's view of campaigns' database, as its owner.
async fn as_tenant(url: &str, tenant: Uuid) -> PgConnection {
    let mut owner = PgConnection::connect(url).await.unwrap();
    // FORCE ROW LEVEL SECURITY binds the owner too: act as the tenant.
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(tenant.to_string()).execute(&mut owner).await.unwrap();
    owner
}

async fn runs_in(db: &mut PgConnection, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM journey_runs WHERE state = $1").bind(state).fetch_one(db).await.unwrap()
}

/// Waits (at most 90 s) until `count` runs are in `state`.
async fn until_runs_in(db: &mut PgConnection, state: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let found = runs_in(db, state).await;
        if found == count as i64 {
            return;
        }
        assert!(Instant::now() < deadline, "{found} of {count} runs are {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_customer_runs_the_journey_once_through_repeated_sigkills() {
    // Arrange: profiles, campaigns as a killable process, the SMTP server, a published welcome journey.
    let (suite, mut campaigns) = Killable::start().await;
    let smtp = SmtpSink::start().await;
    let tenant = Uuid::now_v7();
    let app = Clients::connect(&campaigns.url, suite.profiles.channel.clone(), tenant, smtp.port).await;
    app.email_provider_paced(500).await;
    let template = app.create_template(email_template(pb::Purpose::Marketing, "Hi", "Hi {{ customer.display_name }}", &[])).await;
    let template = template.unwrap().name;
    let journey = pb::Journey {
        display_name: "Welcome".into(),
        trigger: Some(pb::JourneyTrigger {
            kind: Some(pb::journey_trigger::Kind::Event(pb::JourneyEventTrigger {
                event: pb::JourneyEvent::CustomerCreated as i32,
                segment: String::new(),
            })),
        }),
        steps: vec![
            send("hello", &template, "gift"),
            grant("gift", 10, "pause"),
            wait_days("pause", 1, "again"),
            send("again", &template, "bonus"),
            grant("bonus", 5, ""),
        ],
        ..Default::default()
    };
    let mut journeys = JourneyServiceClient::new(app.channel.clone());
    let request = app.as_roles(pb::CreateJourneyRequest { journey: Some(journey), request_id: String::new() }, &["marketer"]);
    let draft = journeys.create_journey(request).await.unwrap().into_inner().journey.unwrap();
    let request = app.as_roles(pb::PublishJourneyRequest { name: draft.name, etag: String::new() }, &["marketer"]);
    journeys.publish_journey(request).await.unwrap();
    let mut db = as_tenant(&suite.db.owner_url, tenant).await;

    // Act 1: a burst of customers created in profiles while campaigns is killed and restarted.
    let burst = {
        let app = Clients::connect(&campaigns.url, suite.profiles.channel.clone(), tenant, smtp.port).await;
        tokio::spawn(async move {
            futures::stream::iter(0..CUSTOMERS)
                .map(|i| {
                    let app = &app;
                    async move {
                        let email = format!("c{i}@example.com");
                        app.customer(Person { name: "C", email: &email, email_opt_in: true, ..Person::default() }).await
                    }
                })
                .buffer_unordered(8)
                .collect::<Vec<String>>()
                .await
        })
    };
    let mut rng = rand::rngs::StdRng::from_entropy();
    for _ in 0..KILLS_DURING_BURST {
        campaigns = suite.kill_and_restart(campaigns, &mut rng, 200..700).await;
    }
    let customers = burst.await.unwrap();
    until_runs_in(&mut db, "WAITING", CUSTOMERS).await;

    // Act 2: the waits end at once, and campaigns is killed while the runs wake up.
    sqlx::query("UPDATE journey_runs SET due_time = now() WHERE state = 'WAITING'").execute(&mut db).await.unwrap();
    for _ in 0..KILLS_DURING_WAKE_UP {
        campaigns = suite.kill_and_restart(campaigns, &mut rng, 100..400).await;
    }
    until_runs_in(&mut db, "COMPLETED", CUSTOMERS).await;

    // Assert: one run per customer, each step once, in order.
    let runs: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT id, customer_id FROM journey_runs").fetch_all(&mut db).await.unwrap();
    let runners: BTreeSet<Uuid> = runs.iter().map(|(_, c)| *c).collect();
    assert_eq!((runs.len(), runners.len()), (CUSTOMERS, CUSTOMERS), "one run per customer");
    let histories: Vec<(Uuid, Vec<String>)> =
        sqlx::query_as("SELECT run_id, array_agg(step_id ORDER BY seq) FROM journey_run_steps GROUP BY run_id")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(histories.len(), CUSTOMERS);
    for (run, steps) in &histories {
        assert_eq!(steps, &["hello", "gift", "pause", "again", "bonus"], "run {run}");
    }
    // Two messages per customer in the ledger, and two points bookings summing to the balance.
    let messages: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT customer_id, count(*) FROM deliveries WHERE request_id LIKE 'journeys/%' GROUP BY customer_id")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(messages.len(), CUSTOMERS);
    assert!(messages.iter().all(|(_, n)| *n == 2), "{:?}", messages.iter().find(|(_, n)| *n != 2));
    let points: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
        "SELECT b.customer_id, b.balance, (SELECT sum(e.points) FROM points_entries e WHERE e.tenant_id = b.tenant_id AND e.customer_id = b.customer_id)::bigint,
                (SELECT count(*) FROM points_entries e WHERE e.tenant_id = b.tenant_id AND e.customer_id = b.customer_id)
         FROM points_balances b",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(points.len(), CUSTOMERS);
    for (customer, balance, sum, entries) in &points {
        assert_eq!((*balance, *sum, *entries), (15, 15, 2), "customer {customer}");
    }
    // Every customer got both messages (a message being handed over at a kill may arrive twice, under one Message-ID).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ids_by_recipient: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while Instant::now() < deadline {
        ids_by_recipient.clear();
        for m in smtp.messages() {
            for to in &m.rcpt_tos {
                ids_by_recipient.entry(to.clone()).or_default().insert(m.message_id.clone());
            }
        }
        if ids_by_recipient.len() == CUSTOMERS && ids_by_recipient.values().all(|ids| ids.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ids_by_recipient.len(), customers.len());
    assert!(ids_by_recipient.values().all(|ids| ids.len() == 2), "each customer got exactly two distinct messages");
    campaigns.kill_hard().await;
    println!(
        "journeys: {} SIGKILLs, {CUSTOMERS} customers: one run each, 5 steps each, 2 messages and 15 points each",
        KILLS_DURING_BURST + KILLS_DURING_WAKE_UP
    );
}
