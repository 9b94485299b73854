//! `make bench`: GetServiceMetrics over 100 000 tickets of one tenant (with
//! surveys, SLA figures, reopens and a status history of about three changes
//! a ticket), against the tickets service in-process
//! and a real Postgres. Beside it, as the reference measured in the same run
//! on the same Postgres, a bare `count(*)` over the same tickets — the cheapest
//! query that still reads every row the report reads — so the ratio survives
//! noisy machines.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: it then
//! seeds 2 000 tickets and checks the figures add up, as a smoke test.

use std::time::{Duration, Instant};

use chrono::Utc;
use crm_kit::{config::KitConfig, time::to_timestamp};
use crm_proto::crm::tickets::v1::{self as pb, report_service_client::ReportServiceClient};
use crm_testkit::{
    auth::{jwt_secret, token, with_token},
    database::fresh_database,
};
use crm_tickets::{config::Config, startup::Application};
use tonic::transport::Channel;
use uuid::Uuid;

const SEED_SQL: &str = "
INSERT INTO tickets (tenant_id, id, customer_id, subject, type, channel, priority, category, status, assignee, team,
                     create_time, update_time, first_response_time, resolve_time, pending_ms,
                     sla_policy_id, fr_target_ms, fr_consumed_ms, fr_breached, res_target_ms, res_consumed_ms, res_breached, reopen_count)
SELECT $1, gen_random_uuid(), gen_random_uuid(), 'Ticket ' || i,
       (ARRAY['QUESTION','PROBLEM','COMPLAINT','REQUEST'])[1 + i % 4],
       (ARRAY['PHONE','EMAIL','CHAT','WEB','SOCIAL','HOTLINE','API'])[1 + i % 7],
       (ARRAY['URGENT','HIGH','NORMAL','LOW'])[1 + i % 4],
       'category-' || (i % 12),
       CASE WHEN i % 10 < 7 THEN 'RESOLVED' WHEN i % 10 = 7 THEN 'CLOSED' WHEN i % 10 = 8 THEN 'PENDING' ELSE 'OPEN' END,
       'agent-' || (i % 40), 'teams/' || (i % 6),
       created, created,
       CASE WHEN i % 10 < 9 THEN created + (i % 300) * interval '1 minute' END,
       CASE WHEN i % 10 < 8 THEN created + (i % 3000) * interval '1 minute' END,
       (i % 7) * 60000,
       CASE WHEN i % 2 = 0 THEN gen_random_uuid() END,
       CASE WHEN i % 2 = 0 THEN 3600000 END, (i % 300) * 60000, i % 2 = 0 AND i % 300 > 60,
       CASE WHEN i % 2 = 0 THEN 28800000 END, (i % 3000) * 60000, i % 2 = 0 AND i % 3000 > 480,
       CASE WHEN i % 23 = 0 THEN 1 ELSE 0 END
FROM generate_series(1, $2) AS i,
     LATERAL (SELECT $3::timestamptz - (i % 90) * interval '1 day' - (i % 1440) * interval '1 minute' AS created) AS c";

const SURVEY_SQL: &str = "
INSERT INTO surveys (tenant_id, id, ticket_id, agent, team, category, send_time, csat, nps, answer_time)
SELECT tenant_id, gen_random_uuid(), id, assignee, team, category, resolve_time,
       CASE WHEN n % 5 < 2 THEN 1 + n % 5 * 2 END, CASE WHEN n % 5 < 2 THEN n % 11 END,
       CASE WHEN n % 5 < 2 THEN resolve_time END
FROM (SELECT *, row_number() OVER (ORDER BY id) AS n FROM tickets WHERE resolve_time IS NOT NULL) AS t";

/// Each seeded ticket's stays in its statuses, consistent with its row: NEW,
/// OPEN (a tenth of the way to its resolution), a PENDING spell for those
/// waiting now and one resolved ticket in seven, an earlier resolution and a
/// reopen for the reopened, RESOLVED at the resolve time, CLOSED a day later.
const HISTORY_SQL: &str = "
WITH changes AS (
    SELECT t.tenant_id, t.id AS ticket_id, c.ord, c.status, c.at, c.reopened
    FROM tickets t
    CROSS JOIN LATERAL (SELECT coalesce(t.resolve_time - t.create_time, interval '1 hour') AS span) AS d
    CROSS JOIN LATERAL (VALUES
        (1, 'NEW', t.create_time, false, true),
        (2, 'OPEN', t.create_time + d.span * 0.1::float8, false, true),
        (3, 'PENDING', t.create_time + d.span * 0.2::float8, false, t.status = 'PENDING' OR (t.resolve_time IS NOT NULL AND t.pending_ms = 60000)),
        (4, 'OPEN', t.create_time + d.span * 0.3::float8, false, t.resolve_time IS NOT NULL AND t.pending_ms = 60000),
        (5, 'RESOLVED', t.create_time + d.span * 0.6::float8, false, t.resolve_time IS NOT NULL AND t.reopen_count > 0),
        (6, 'OPEN', t.create_time + d.span * 0.7::float8, true, t.resolve_time IS NOT NULL AND t.reopen_count > 0),
        (7, 'RESOLVED', t.resolve_time, false, t.resolve_time IS NOT NULL),
        (8, 'CLOSED', t.resolve_time + interval '1 day', false, t.status = 'CLOSED')
    ) AS c(ord, status, at, reopened, present)
    WHERE c.present
)
INSERT INTO ticket_status_history (tenant_id, ticket_id, status, since, until, reopened, resolve_time, reopen_count)
SELECT tenant_id, ticket_id, status, at, lead(at) OVER w, reopened,
       max(CASE WHEN status = 'RESOLVED' THEN at END) OVER w, count(*) FILTER (WHERE reopened) OVER w
FROM changes
WINDOW w AS (PARTITION BY ticket_id ORDER BY ord)
ORDER BY ticket_id, ord";

struct Figures {
    median: Duration,
    p90: Duration,
    max: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Figures { median: at(0.5), p90: at(0.9), max: *samples.last().expect("samples") }
}

async fn time_it<F, Fut>(runs: usize, mut call: F) -> Figures
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..3 {
        call().await; // warm caches and plans
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    figures(samples)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let tickets: i64 = if full { 100_000 } else { 2_000 };
    let runs = if full { 20 } else { 3 };

    let db = fresh_database("tickets").await?;
    let config = Config {
        listen_addr: "127.0.0.1:0".parse()?,
        profiles_url: "http://127.0.0.1:9".into(), // never called by reports
        profiles_timeout_ms: 1000,
        sla_check_interval_ms: 60_000,
        follow_up_delay_minutes: 1440,
        kit: KitConfig::for_tests(&db.app_url, &db.owner_url, &jwt_secret()),
    };
    let app = Application::build(config).await?;
    let port = app.port();
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let tenant = Uuid::now_v7();
    let now = Utc::now();
    let pool = sqlx::PgPool::connect(&db.app_url).await?;
    let seeding = Instant::now();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await?;
    sqlx::query(SEED_SQL).bind(tenant).bind(tickets).bind(now).execute(&mut *tx).await?;
    sqlx::query(SURVEY_SQL).execute(&mut *tx).await?;
    sqlx::query(HISTORY_SQL).execute(&mut *tx).await?;
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM ticket_status_history").fetch_one(&mut *tx).await?;
    tx.commit().await?;
    let owner = sqlx::PgPool::connect(&db.owner_url).await?;
    sqlx::query("ANALYZE tickets, surveys, ticket_status_history").execute(&owner).await?;
    println!("seeded {tickets} tickets and {changes} stays in their statuses in {:.1} s", seeding.elapsed().as_secs_f64());

    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect().await?;
    let reports = ReportServiceClient::new(channel);
    let bearer = token(tenant, &["analyst"]);
    let request = |group_by: pb::MetricsGrouping| pb::GetServiceMetricsRequest {
        start_time: Some(to_timestamp(now - chrono::Duration::days(90))),
        end_time: Some(to_timestamp(now + chrono::Duration::minutes(1))),
        group_by: group_by as i32,
    };

    let overall = reports.clone().get_service_metrics(with_token(request(pb::MetricsGrouping::Team), &bearer)).await?.into_inner();
    let all = overall.overall.expect("overall figures");
    anyhow::ensure!(all.opened == tickets, "every ticket was opened in the period: {}", all.opened);
    anyhow::ensure!(overall.groups.iter().map(|g| g.opened).sum::<i64>() == all.opened, "groups add up to the total");
    // 8 in 10 are resolved, a few of them (the newest) only after the period's end.
    anyhow::ensure!((tickets * 3 / 4..=tickets * 8 / 10).contains(&all.resolved), "resolved {}", all.resolved);
    // One survey a resolution, sent at the latest one: a few reopened tickets
    // were resolved at the period's end but resolved again (and surveyed) after it.
    let unsurveyed = all.resolved - all.surveys_sent;
    anyhow::ensure!(
        (0..=tickets / 1000).contains(&unsurveyed) && all.csat_average > 0.0,
        "surveys: {} sent, {} resolved",
        all.surveys_sent,
        all.resolved
    );
    anyhow::ensure!(all.reopens > 0 && all.time_in_status.len() == 4, "reopens and time in NEW, OPEN, PENDING, RESOLVED");

    let mut results = Vec::new();
    for grouping in [pb::MetricsGrouping::Unspecified, pb::MetricsGrouping::Team, pb::MetricsGrouping::Agent] {
        let reports = reports.clone();
        let f = time_it(runs, || {
            let mut reports = reports.clone();
            let request = with_token(request(grouping), &bearer);
            async move {
                reports.get_service_metrics(request).await.expect("metrics");
            }
        })
        .await;
        results.push((format!("GetServiceMetrics by {}", grouping.as_str_name().trim_start_matches("METRICS_GROUPING_")), f));
    }
    let reference = time_it(runs, || {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.expect("tenant");
            let _: i64 =
                sqlx::query_scalar("SELECT count(*) FROM tickets WHERE tenant_id = $1 AND create_time < now() + interval '1 minute'")
                    .bind(tenant)
                    .fetch_one(&mut *tx)
                    .await
                    .expect("count");
            tx.commit().await.expect("commit");
        }
    })
    .await;

    println!("{:<48} {:>10} {:>10} {:>10} {:>12}", format!("{tickets} tickets, {runs} runs"), "median", "p90", "max", "÷ reference");
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    for (name, f) in &results {
        let ratio = f.median.as_secs_f64() / reference.median.as_secs_f64();
        println!("{name:<48} {:>10} {:>10} {:>10} {ratio:>11.1}x", ms(f.median), ms(f.p90), ms(f.max));
    }
    println!(
        "{:<48} {:>10} {:>10} {:>10}",
        "reference: count(*) over the same rows (SQL)",
        ms(reference.median),
        ms(reference.p90),
        ms(reference.max)
    );
    Ok(())
}
