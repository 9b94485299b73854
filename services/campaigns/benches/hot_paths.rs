//! `make bench`: campaigns' hot call — SendNotice — with the suite's bench
//! harness (8 and 1 in flight, every response checked, p50/p99, the service's
//! and the client's CPU per call, the cores' use, peak RSS), against release
//! crm-profiles and crm-campaigns processes on fresh databases and a local
//! SMTP server (aiosmtpd) that the notices really reach: the delivery worker
//! sends them while the calls come in, so the CPU per call is a notice's
//! whole cost in campaigns, acceptance and delivery.
//!
//! A SendNotice reads its customer from profiles (one GetCustomer), then
//! writes in one transaction. The reference, measured right after the call's
//! own run, is pgbench running that transaction's own statements as
//! campaigns' login role (RLS on), in the simple protocol (the transaction
//! begins with a compound statement, which pgbench cannot prepare): the
//! request id claimed, the template and the provider read, the delivery row
//! and its queue entry written with their wake-up, the event, the response
//! kept for retries, expired request ids swept. The GetCustomer it also makes
//! is profiles' work and is not in the reference.
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::{sync::Arc, time::Duration};

use crm_proto::crm::{
    campaigns::v1::{
        self as pb, delivery_service_client::DeliveryServiceClient, provider_service_client::ProviderServiceClient,
        template_service_client::TemplateServiceClient,
    },
    common::v1::EmailAddress,
    profiles::v1::{self as profiles, customer_service_client::CustomerServiceClient},
};
use crm_testkit::{
    auth::{token, with_token},
    bench::{HEADER, ScriptFile, build_kind, measure, peak_rss_mb, pgbench, row, unary},
    database::fresh_database,
    process::{binary, spawn_service},
    smtp::SmtpSink,
};

/// Customers the notices go to, in turn.
const CUSTOMERS: usize = 200;

/// SendNotice's transaction for pgbench: `template` and `customer` exist; a
/// fresh request id and delivery id every time.
fn same_statements(tenant: uuid::Uuid, template: &str, customer: &str) -> ScriptFile {
    let t = tenant;
    ScriptFile::write(&format!(
        "\\set r random(1, 2000000000)\n\\set s random(1, 2000000000)\n\
         BEGIN \\; SELECT set_config('crm.tenant_id', '{t}', true);\n\
         INSERT INTO idempotency_keys (tenant_id, method, request_id, request_hash) VALUES ('{t}', 'SendNotice', 'bench-:r-:s', sha256('bench-:r-:s'));\n\
         SELECT id, display_name, channel, purpose, contents, default_locale, locked_variables, variables, revision, create_time, update_time \
         FROM templates WHERE tenant_id = '{t}' AND id = '{template}';\n\
         SELECT id, display_name, channel, max_per_second, settings, credentials, dkim_key, revision, create_time, update_time \
         FROM providers WHERE tenant_id = '{t}' AND channel = 'EMAIL';\n\
         INSERT INTO deliveries (tenant_id, id, kind, campaign_id, request_id, template_id, customer_id, channel, purpose, recipient, status, \
         skip_reason, locale, subject, body, html_body, data, create_time, update_time, next_attempt_time, variables, traceparent) \
         SELECT '{t}', gen_random_uuid(), 'NOTICE', NULL, 'bench-:r-:s', '{template}', '{customer}', 'EMAIL', 'TRANSACTIONAL', \
         'member-1@bench.example', 'QUEUED', '', 'en', 'Your fee notice', 'Dear Member 1, your fee of 328 is due.', '', '{{}}', now(), now(), \
         now(), '{{\"amount\": \"328\"}}', '' RETURNING id \\gset\n\
         WITH queued AS (INSERT INTO delivery_queue (tenant_id, delivery_id, lane, due_time) VALUES ('{t}', ':id', 0, now() + interval '1 day')) \
         SELECT pg_notify('crm_bench', '{t}');\n\
         WITH written AS (INSERT INTO outbox (tenant_id, id, type, subject, data, traceparent) VALUES ('{t}', gen_random_uuid(), \
         'crm.campaigns.v1.DeliveryStatusChanged', 'deliveries/:id', decode(repeat('0a', 300), 'hex'), '')) \
         SELECT pg_notify('crm_bench_outbox', '{t}');\n\
         UPDATE idempotency_keys SET response = decode(repeat('0a', 330), 'hex') WHERE tenant_id = '{t}' AND method = 'SendNotice' AND request_id = 'bench-:r-:s';\n\
         DELETE FROM idempotency_keys WHERE tenant_id = '{t}' AND create_time < now() - make_interval(hours => 24);\n\
         COMMIT;\n"
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let duration = if full { Duration::from_secs(8) } else { Duration::from_millis(400) };
    let tenant = uuid::Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);

    let profiles_process = spawn_service(binary("crm-profiles"), &fresh_database("profiles").await?, &[]).await;
    let db = fresh_database("campaigns").await?;
    let env = [("CRM_PROFILES_URL", profiles_process.url.clone()), ("CRM_OUTBOUND_ALLOW_PRIVATE", "true".into())];
    let service = spawn_service(binary("crm-campaigns"), &db, &env).await;
    let pid = service.child.id().expect("running");
    let sink = SmtpSink::start_without_fsync().await;

    // Arrange: customers with an address, an SMTP provider, a transactional template.
    let mut customers = Vec::with_capacity(CUSTOMERS);
    for i in 0..CUSTOMERS {
        let customer = profiles::Customer {
            display_name: format!("Member {i}"),
            emails: vec![EmailAddress { address: format!("member-{i}@bench.example"), ..Default::default() }],
            ..Default::default()
        };
        let request = with_token(profiles::CreateCustomerRequest { customer: Some(customer), request_id: String::new() }, &bearer);
        let created = CustomerServiceClient::new(profiles_process.channel.clone()).create_customer(request).await?.into_inner();
        customers.push(created.customer.expect("a customer").name);
    }
    let smtp = pb::provider::Settings::Smtp(pb::SmtpSettings {
        host: "127.0.0.1".into(),
        port: i32::from(sink.port),
        security: pb::SmtpSecurity::None as i32,
        from_address: "notices@bench.example".into(),
        ..Default::default()
    });
    let provider =
        pb::Provider { display_name: "bench".into(), channel: pb::Channel::Email as i32, settings: Some(smtp), ..Default::default() };
    ProviderServiceClient::new(service.channel.clone())
        .create_provider(with_token(pb::CreateProviderRequest { provider: Some(provider), request_id: String::new() }, &bearer))
        .await?;
    let template = pb::Template {
        display_name: "Fee".into(),
        channel: pb::Channel::Email as i32,
        purpose: pb::Purpose::Transactional as i32,
        contents: vec![pb::TemplateContent {
            locale: "en".into(),
            subject: "Your fee notice".into(),
            body: "Dear {{ customer.display_name }}, your fee of {{ vars.amount }} is due.".into(),
            ..Default::default()
        }],
        default_locale: "en".into(),
        locked_variables: vec!["amount".into()],
        ..Default::default()
    };
    let template = TemplateServiceClient::new(service.channel.clone())
        .create_template(with_token(pb::CreateTemplateRequest { template: Some(template), request_id: String::new() }, &bearer))
        .await?
        .into_inner()
        .template
        .expect("a template")
        .name;

    // Act: SendNotice, each call with its own request id, to the customers in turn.
    let customers = Arc::new(customers);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let (names, template_name, bearer_send) = (customers.clone(), template.clone(), bearer.clone());
    let send = unary(
        DeliveryServiceClient::new(service.channel.clone()),
        move |i| {
            let request = pb::SendNoticeRequest {
                template: template_name.clone(),
                customer: names[i % names.len()].clone(),
                variables: [("amount".to_owned(), "328".to_owned())].into(),
                request_id: format!("bench-{run}-{i}"),
            };
            with_token(request, &bearer_send)
        },
        |mut client, request| async move {
            let delivery = client.send_notice(request).await.expect("SendNotice").into_inner().delivery.expect("a delivery");
            assert_eq!(delivery.status, pb::DeliveryStatus::Queued as i32, "{delivery:?}");
        },
    );
    let figures = measure(pid, send, duration).await;
    let seconds = if full { 8 } else { 1 };
    let script = same_statements(tenant, template.trim_start_matches("templates/"), customers[1].trim_start_matches("customers/"));
    let reference = pgbench(&db.app_url, &["-M", "simple", "-f", &script.0.to_string_lossy()], seconds);
    let rss = peak_rss_mb(pid);

    println!("campaigns hot paths, 8 in flight for {duration:?} ({CUSTOMERS} customers, {}, telemetry off)", build_kind());
    println!("{HEADER}");
    println!("{}", row("SendNotice (email, delivered)", &figures));
    println!(
        "reference: pgbench, SendNotice's transaction as the login role: {reference:.0} tps → SendNotice {:.2}x",
        figures.per_second / reference
    );
    println!(
        "service peak RSS: {}; {} messages reached the SMTP server",
        rss.map_or(String::from("-"), |mb| format!("{mb:.1} MB")),
        sink.count()
    );
    Ok(())
}
