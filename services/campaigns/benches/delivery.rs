//! `make bench`: campaigns' throughput against references measured in the
//! same run, with release crm-profiles and crm-campaigns processes on fresh
//! databases.
//!
//! 1. **Email**: a campaign to N customers through a local SMTP server
//!    (aiosmtpd, without an fsync per message so the disk does not set the
//!    pace), against a plain lettre client pushing N messages of the same
//!    shape into the same server with the same pool (8 connections) and the
//!    same concurrency (32). The campaign's rate is N over its sending phase
//!    (from RUNNING to COMPLETED); the snapshot is timed on its own.
//! 2. **SMS**: a campaign to N customers through a local Twilio peer that
//!    accepts 1 000 requests a second and answers 429 above that; the
//!    campaign's own rate is unlimited, so the peer's throttling paces it.
//!    Every recipient must be in the peer's record exactly once.
//! 3. **Snapshot**: a campaign to M customers (seeded straight into profiles'
//!    test database, since creating a million through the API would take a
//!    quarter of an hour), timed from StartCampaign to RUNNING, then paused,
//!    resumed and cancelled, each request timed.
//!
//! The campaigns process's peak RSS is reported after each. `cargo test
//! --all-targets` runs it without `--bench` as a short smoke test.

use anyhow::Context;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crm_proto::crm::campaigns::v1::{
    self as pb, campaign_service_client::CampaignServiceClient, provider_service_client::ProviderServiceClient,
    template_service_client::TemplateServiceClient,
};
use crm_testkit::{
    auth::{token, with_token},
    bench::peak_rss_mb,
    database::{TestDb, fresh_database},
    process::{binary, spawn_service},
    providers::{PeerConfig, ProviderPeer},
    smtp::SmtpSink,
};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::PoolConfig,
};
use sqlx::{Connection, PgConnection};
use tonic::transport::Channel;

struct Bench {
    tenant: uuid::Uuid,
    bearer: String,
    channel: Channel,
    pid: u32,
    profiles_db: TestDb,
}

impl Bench {
    fn admin<T>(&self, message: T) -> tonic::Request<T> {
        with_token(message, &self.bearer)
    }

    /// `count` customers tagged `tag`, seeded into profiles' database in one statement.
    async fn seed(&self, tag: &str, count: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut owner = PgConnection::connect(&self.profiles_db.owner_url).await?;
        sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(self.tenant.to_string()).execute(&mut owner).await?;
        sqlx::query(
            "INSERT INTO customers (tenant_id, id, display_name, emails, phones, tags, consent, create_time, update_time)
             SELECT $1, gen_random_uuid(), 'Member ' || i,
                    jsonb_build_array(jsonb_build_object('address', $2 || i || '@example.com', 'label', '', 'primary', true)),
                    jsonb_build_array(jsonb_build_object('number', '+86' || (13900000000 + i)::text, 'label', '', 'primary', true)),
                    ARRAY[$2], '{\"email\": {\"state\": \"OPTED_IN\"}, \"sms\": {\"state\": \"OPTED_IN\"}}',
                    now() + make_interval(secs => i / 1000000.0), now()
             FROM generate_series(1, $3) AS i",
        )
        .bind(self.tenant)
        .bind(tag)
        .bind(i64::try_from(count)?)
        .execute(&mut owner)
        .await?;
        // A table that grew by a million rows in one statement has no statistics
        // for them until autovacuum gets to it (a minute of bad plans for every
        // page read); a table that grew the usual way has them.
        sqlx::query("ANALYZE customers").execute(&mut owner).await?;
        owner.close().await?;
        Ok(started.elapsed())
    }

    async fn provider(&self, channel: pb::Channel, settings: pb::provider::Settings) -> anyhow::Result<()> {
        let provider =
            pb::Provider { display_name: "bench".into(), channel: channel as i32, settings: Some(settings), ..Default::default() };
        ProviderServiceClient::new(self.channel.clone())
            .create_provider(self.admin(pb::CreateProviderRequest { provider: Some(provider), request_id: String::new() }))
            .await?;
        Ok(())
    }

    async fn template(&self, channel: pb::Channel, subject: &str, body: &str) -> anyhow::Result<String> {
        let template = pb::Template {
            display_name: "bench".into(),
            channel: channel as i32,
            purpose: pb::Purpose::Transactional as i32,
            contents: vec![pb::TemplateContent { locale: "en".into(), subject: subject.into(), body: body.into(), ..Default::default() }],
            default_locale: "en".into(),
            ..Default::default()
        };
        let created = TemplateServiceClient::new(self.channel.clone())
            .create_template(self.admin(pb::CreateTemplateRequest { template: Some(template), request_id: String::new() }))
            .await?;
        Ok(created.into_inner().template.expect("template").name)
    }

    /// Starts a campaign of `template` to `tag`; returns its name once it is in `until`.
    async fn campaign(&self, template: &str, tag: &str, until: pb::CampaignState) -> anyhow::Result<pb::Campaign> {
        let mut client = CampaignServiceClient::new(self.channel.clone());
        let campaign = pb::Campaign {
            display_name: format!("bench {tag}"),
            template: template.into(),
            audience: Some(pb::Audience { filter: format!("tags:\"{tag}\"") }),
            ..Default::default()
        };
        let created = client
            .create_campaign(self.admin(pb::CreateCampaignRequest { campaign: Some(campaign), request_id: String::new() }))
            .await
            .context("CreateCampaign")?
            .into_inner()
            .campaign
            .expect("campaign");
        client
            .start_campaign(self.admin(pb::StartCampaignRequest { name: created.name.clone(), etag: String::new() }))
            .await
            .context("StartCampaign")?;
        let mut failed_polls = 0;
        loop {
            let polled = client.get_campaign(self.admin(pb::GetCampaignRequest { name: created.name.clone() })).await;
            let c = match polled {
                Ok(response) => response.into_inner().campaign.expect("c"),
                // A poll that fails is reported, not fatal: the campaign's own times measure it.
                Err(status) if failed_polls < 20 => {
                    failed_polls += 1;
                    eprintln!("GetCampaign failed ({failed_polls}): {} {}", status.code(), status.message());
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(status) => return Err(status.into()),
            };
            if c.state == until as i32 {
                return Ok(c);
            }
            anyhow::ensure!(c.state != pb::CampaignState::Cancelled as i32, "the campaign was cancelled: {c:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn seconds(from: &Option<prost_types::Timestamp>, to: &Option<prost_types::Timestamp>) -> f64 {
    let t = |ts: &Option<prost_types::Timestamp>| ts.as_ref().map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9);
    t(to) - t(from)
}

/// The reference: a plain lettre client pushing `count` messages into `sink` (8 pooled connections, 32 in flight).
async fn plain_smtp_client(sink: &SmtpSink, count: usize) -> anyhow::Result<f64> {
    let transport: AsyncSmtpTransport<Tokio1Executor> = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port)
        .pool_config(PoolConfig::new().max_size(8))
        .build();
    let transport = Arc::new(transport);
    let from: Mailbox = "notices@bench.example".parse()?;
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (transport, from, next) = (transport.clone(), from.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let message = Message::builder()
                        .from(from.clone())
                        .to(format!("ref{i}@example.com").parse().expect("address"))
                        .subject("Your monthly statement")
                        .message_id(Some(format!("<{}@bench.example>", uuid::Uuid::now_v7())))
                        .header(ContentType::TEXT_PLAIN)
                        .body(format!("Dear Member {i}, your statement is ready."))
                        .expect("message");
                    transport.send(message).await.expect("the sink accepts");
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (emails, sms, snapshot) = if full { (100_000, 100_000, 1_000_000) } else { (200, 200, 2_000) };
    // CRM_BENCH_RECIPIENTS scales the three down for a quick look (e.g. 20000 → 20 000, 20 000 and 200 000).
    let (emails, sms, snapshot) = match std::env::var("CRM_BENCH_RECIPIENTS").ok().and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => (n, n, n * 10),
        None => (emails, sms, snapshot),
    };
    let tenant = uuid::Uuid::now_v7();
    let profiles_db = fresh_database("profiles").await?;
    let profiles = spawn_service(binary("crm-profiles"), &profiles_db, &[]).await;
    let db = fresh_database("campaigns").await?;
    let env =
        [("CRM_PROFILES_URL", profiles.url.clone()), ("CRM_OUTBOUND_ALLOW_PRIVATE", "true".into()), ("CRM_DELIVERY_POLL_MS", "200".into())];
    let service = spawn_service(binary("crm-campaigns"), &db, &env).await;
    let bench = Bench {
        tenant,
        bearer: token(tenant, &["admin"]),
        channel: service.channel.clone(),
        pid: service.child.id().expect("running"),
        profiles_db,
    };
    let mut lines = Vec::new();
    // CRM_BENCH_ONLY=email|sms|snapshot runs one of the three.
    let only = std::env::var("CRM_BENCH_ONLY").unwrap_or_default();
    let runs = |phase: &str| only.is_empty() || only == phase;

    // 1. Email.
    if runs("email") {
        let sink = SmtpSink::start_without_fsync().await;
        let reference = plain_smtp_client(&sink, emails).await?;
        let smtp = pb::provider::Settings::Smtp(pb::SmtpSettings {
            host: "127.0.0.1".into(),
            port: i32::from(sink.port),
            security: pb::SmtpSecurity::None as i32,
            from_address: "notices@bench.example".into(),
            ..Default::default()
        });
        bench.provider(pb::Channel::Email, smtp).await?;
        let seeded = bench.seed("mail", emails).await?;
        let template = bench
            .template(pb::Channel::Email, "Your monthly statement", "Dear {{ customer.display_name }}, your statement is ready.")
            .await?;
        let done = bench.campaign(&template, "mail", pb::CampaignState::Completed).await?;
        let counts = done.counts.clone().unwrap_or_default();
        anyhow::ensure!(counts.sent == emails as i64, "every email sent: {counts:?}");
        anyhow::ensure!(sink.count() == 2 * emails, "the sink holds the reference's and the campaign's messages");
        let sending = seconds(&done.run_time, &done.end_time);
        let ours = emails as f64 / sending;
        lines.push(format!(
        "email campaign, {emails} recipients  | {ours:>8.0}/s sending ({:.1} s); snapshot {:.1} s | plain lettre client, same sink: {reference:>8.0}/s | ratio {:.2} | RSS {:.0} MB",
        sending,
        seconds(&done.start_time, &done.run_time),
        ours / reference,
        peak_rss_mb(bench.pid).unwrap_or(0.0)
    ));
        eprintln!("seeded {emails} customers in {:.1} s", seeded.as_secs_f64());
    }

    // 2. SMS through a peer that takes 1 000 requests a second.
    if runs("sms") {
        let peer = ProviderPeer::start(PeerConfig { max_per_second: Some(1000), ..PeerConfig::default() }).await;
        let twilio = pb::provider::Settings::Twilio(pb::TwilioSettings {
            account_sid: peer.config.twilio.0.clone(),
            auth_token: peer.config.twilio.1.clone(),
            from: "+15005550006".into(),
            base_url: peer.url.clone(),
            ..Default::default()
        });
        bench.provider(pb::Channel::Sms, twilio).await?;
        bench.seed("text", sms).await?;
        let template = bench.template(pb::Channel::Sms, "", "Dear {{ customer.display_name }}, your fee is due.").await?;
        let done = bench.campaign(&template, "text", pb::CampaignState::Completed).await?;
        let received = peer.messages();
        let distinct: std::collections::BTreeSet<_> = received.iter().map(|m| m.to.clone()).collect();
        anyhow::ensure!(
            received.len() == sms && distinct.len() == sms,
            "each recipient once: {} messages, {} recipients",
            received.len(),
            distinct.len()
        );
        let sending = seconds(&done.run_time, &done.end_time);
        lines.push(format!(
        "SMS campaign, {sms} recipients    | {:>8.0}/s sending ({sending:.1} s) | peer limit 1000/s, {} requests throttled (429), none lost | RSS {:.0} MB",
        sms as f64 / sending,
        peer.throttled(),
        peak_rss_mb(bench.pid).unwrap_or(0.0)
    ));
    }

    // 3. Audience snapshot.
    if runs("snapshot") {
        let seeded = bench.seed("big", snapshot).await?;
        let template = bench.template(pb::Channel::Push, "Hello", "Hello {{ customer.display_name }}").await?;
        let asked = std::time::Instant::now();
        let running = bench.campaign(&template, "big", pb::CampaignState::Running).await?;
        // From CreateCampaign to RUNNING seen by a client (the campaign's run_time is stamped
        // when its last page begins; that page's transaction releases the first batch of the
        // queue, the campaign job the rest).
        let observed = asked.elapsed().as_secs_f64();
        // Each move handles one batch itself and leaves the rest to the campaign job: timed
        // per request (reported, not fatal: the snapshot is what is measured).
        let mut client = CampaignServiceClient::new(bench.channel.clone());
        let name = running.name.clone();
        let mut moves = Vec::new();
        for what in ["pause", "resume", "cancel"] {
            let started = std::time::Instant::now();
            let answer = match what {
                "pause" => client.pause_campaign(bench.admin(pb::PauseCampaignRequest { name: name.clone() })).await.map(drop),
                "resume" => client.resume_campaign(bench.admin(pb::ResumeCampaignRequest { name: name.clone() })).await.map(drop),
                _ => client.cancel_campaign(bench.admin(pb::CancelCampaignRequest { name: name.clone() })).await.map(drop),
            };
            let elapsed = started.elapsed().as_secs_f64();
            moves.push(match answer {
                Ok(()) => format!("{what} {elapsed:.2} s"),
                Err(status) => format!("{what} failed after {elapsed:.1} s: {}", status.message()),
            });
            if what != "cancel" {
                // Let the job take a round of the rest before the next move.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        let cancel = moves.join(", ");
        let counts = running.counts.clone().unwrap_or_default();
        anyhow::ensure!(counts.targeted == snapshot as i64, "every member stored: {counts:?}");
        lines.push(format!(
            "audience snapshot, {snapshot} members | {:.1} s by the campaign's times, {observed:.1} s until RUNNING was seen ({:.0} members/s) | seeding profiles by SQL took {:.1} s | RSS {:.0} MB | {cancel}",
            seconds(&running.start_time, &running.run_time),
            snapshot as f64 / observed,
            seeded.as_secs_f64(),
            peak_rss_mb(bench.pid).unwrap_or(0.0)
        ));
    }

    println!("\ncampaigns delivery ({}):", if full { "full" } else { "smoke" });
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}
