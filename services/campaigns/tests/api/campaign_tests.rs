//! A/B/n tests of bulk campaigns — variants, a holdout, a test fraction, the
//! winner sent to the rest — and per-campaign attribution windows.

use std::{collections::BTreeMap, time::Duration};

use crm_proto::crm::campaigns::v1::{self as pb, attribution_service_client::AttributionServiceClient};
use tonic::Code;

use crate::helpers::{Clients, Person, TestApp, assert_error, email_template, spawn_app, violations};

fn offer(subject: &str) -> pb::Template {
    email_template(pb::Purpose::Marketing, subject, "{{ vars.discount }} off this week.", &["discount"])
}

/// `n` opted-in customers tagged `tag`; their names.
async fn audience(app: &Clients, tag: &str, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let email = format!("{tag}-{i}@example.com");
        names.push(app.customer(Person { name: "Member", email: &email, email_opt_in: true, tags: &[tag], ..Person::default() }).await);
    }
    names
}

fn variant(template: &str, discount: &str) -> pb::CampaignVariant {
    pb::CampaignVariant {
        template: template.into(),
        variables: [("discount".to_owned(), discount.to_owned())].into(),
        local_send_time: None,
    }
}

fn tested(template: &str, tag: &str, test: pb::CampaignAbTest) -> pb::Campaign {
    pb::Campaign {
        display_name: "Tested offer".into(),
        template: template.into(),
        audience: Some(pb::Audience { filter: format!("tags:\"{tag}\"") }),
        variables: [("discount".to_owned(), "10%".to_owned())].into(),
        ab_test: Some(test),
        ..Default::default()
    }
}

async fn create(app: &Clients, campaign: pb::Campaign) -> Result<pb::Campaign, tonic::Status> {
    let request = app.as_roles(pb::CreateCampaignRequest { campaign: Some(campaign), request_id: String::new() }, &["marketer"]);
    Ok(app.campaigns().create_campaign(request).await?.into_inner().campaign.unwrap())
}

async fn start(app: &Clients, name: &str) {
    let request = app.as_roles(pb::StartCampaignRequest { name: name.into(), etag: String::new() }, &["marketer"]);
    app.campaigns().start_campaign(request).await.unwrap();
}

/// Waits (at most 30 s) until campaign `name` satisfies `done`.
async fn campaign_when(app: &Clients, name: &str, done: impl Fn(&pb::Campaign) -> bool) -> pb::Campaign {
    for _ in 0..300 {
        let c = app.campaign(name).await;
        if done(&c) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} did not get there within 30 s: {:?}", app.campaign(name).await);
}

async fn convert(app: &Clients, customer: &str, request_id: &str) -> pb::Conversion {
    let conversion = pb::Conversion { customer: customer.into(), goal: "signed-up".into(), ..Default::default() };
    let request = app.as_roles(pb::RecordConversionRequest { conversion: Some(conversion), request_id: request_id.into() }, &["service"]);
    AttributionServiceClient::new(app.channel.clone()).record_conversion(request).await.unwrap().into_inner().conversion.unwrap()
}

/// Campaign deliveries matching `filter` (up to 1 000).
async fn deliveries(app: &Clients, filter: &str) -> Vec<pb::Delivery> {
    let request =
        app.as_roles(pb::ListDeliveriesRequest { page_size: 1000, page_token: String::new(), filter: filter.into() }, &["analyst"]);
    app.deliveries.clone().list_deliveries(request).await.unwrap().into_inner().deliveries
}

async fn attribution(app: &Clients, campaign: &str) -> pb::Attribution {
    let request = app.as_roles(pb::GetAttributionRequest { name: format!("{campaign}/attribution") }, &["marketer"]);
    AttributionServiceClient::new(app.channel.clone()).get_attribution(request).await.unwrap().into_inner().attribution.unwrap()
}

#[tokio::test]
async fn a_tested_campaign_holds_some_out_picks_a_significant_winner_and_sends_it_to_the_rest() {
    let app = spawn_app().await;
    app.email_provider().await;
    let control = app.create_template(offer("Our offer")).await.unwrap().name;
    let better = app.create_template(offer("A better offer")).await.unwrap().name;
    let members = audience(&app, "ab", 120).await;
    let test = pb::CampaignAbTest {
        variants: vec![variant(&better, "15%")],
        holdout_percent: 10,
        test_percent: 50,
        metric: pb::AbTestMetric::Conversion as i32,
        min_sample: 10,
        decide_after: Some(prost_types::Duration { seconds: 86_400, nanos: 0 }),
        ..Default::default()
    };
    let campaign = create(&app, tested(&control, "ab", test)).await.unwrap();
    start(&app, &campaign.name).await;

    // The test's groups are sent; the holdout gets nothing, the rest waits.
    let running = campaign_when(&app, &campaign.name, |c| {
        let n = c.counts.clone().unwrap_or_default();
        c.state == pb::CampaignState::Running as i32 && n.targeted == 120 && n.sent == n.targeted - n.holdout - n.awaiting_winner
    })
    .await;
    let counts = running.counts.unwrap();
    assert!((4..=25).contains(&counts.holdout) && (30..=70).contains(&counts.awaiting_winner), "{counts:?}");
    assert_eq!(running.ab_test.as_ref().unwrap().winner, "", "nothing decided yet");
    let filter = format!("campaign = \"{}\"", campaign.name);
    let sent = deliveries(&app, &filter).await;
    let mut groups: BTreeMap<String, Vec<pb::Delivery>> = BTreeMap::new();
    for d in sent {
        groups.entry(d.ab_variant.clone()).or_default().push(d);
    }
    assert_eq!(groups.keys().cloned().collect::<Vec<_>>(), ["a", "b"]);
    assert!(groups["a"].iter().all(|d| d.template == control && d.body == "10% off this week."));
    assert!(groups["b"].iter().all(|d| d.template == better && d.body == "15% off this week."));
    assert!(groups["a"].len() >= 10 && groups["b"].len() >= 10, "a {} b {}", groups["a"].len(), groups["b"].len());

    // Everyone who got b converts, nobody who got a; the conversion is b's message's.
    for (i, d) in groups["b"].iter().enumerate() {
        let conversion = convert(&app, &d.customer, &format!("b-{i}")).await;
        assert_eq!((conversion.delivery.as_str(), conversion.campaign.as_str()), (d.name.as_str(), campaign.name.as_str()));
    }
    // The campaign job picks b, sends it to the rest, and the campaign completes.
    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    let outcome = done.ab_test.unwrap();
    assert_eq!((outcome.winner.as_str(), outcome.decision.as_str()), ("b", "SIGNIFICANT"), "{outcome:?}");
    assert!(outcome.detail.starts_with("p = ") && outcome.decide_time.is_some(), "{outcome:?}");
    let counts = done.counts.unwrap();
    assert_eq!(counts.awaiting_winner, 0);
    assert_eq!(counts.sent, 120 - counts.holdout, "{counts:?}");
    let rest = deliveries(&app, &format!("{filter} AND ab_variant = \"rest\"")).await;
    assert!(
        !rest.is_empty() && rest.iter().all(|d| d.template == better && d.body == "15% off this week." && d.subject == "A better offer")
    );
    assert_eq!(app.smtp.messages().len() as i64, counts.sent, "each member outside the holdout exactly once");

    // Two of the holdout convert too: the report shows every group and b's lift over the holdout.
    let reached: Vec<String> = deliveries(&app, &filter).await.into_iter().map(|d| d.customer).collect();
    let held_out: Vec<&String> = members.iter().filter(|m| !reached.contains(m)).collect();
    assert_eq!(held_out.len() as i64, counts.holdout);
    for (i, customer) in held_out.iter().take(2).enumerate() {
        assert_eq!(convert(&app, customer, &format!("holdout-{i}")).await.delivery, "", "the holdout was sent nothing");
    }
    let report = attribution(&app, &campaign.name).await;
    assert_eq!(report.window_days, 7);
    let test = &report.ab_tests[0];
    assert_eq!((test.step.as_str(), test.winner.as_str()), ("", "b"));
    let group = |name: &str| test.groups.iter().find(|g| g.variant == name).cloned().unwrap_or_else(|| panic!("{name}: {test:?}"));
    let (b, holdout, rest) = (group("b"), group("holdout"), group("rest"));
    assert_eq!((b.converted, b.runs, b.sent), (b.runs, groups["b"].len() as i64, groups["b"].len() as i64));
    assert_eq!((holdout.runs, holdout.sent, holdout.converted), (counts.holdout, 0, 2));
    assert_eq!(rest.sent, rest.runs);
    assert_eq!(group("a").converted, 0);
    assert!(b.lift > 1.0, "{test:?}");
}

#[tokio::test]
async fn cancelling_a_tested_campaign_cancels_its_rest_too() {
    let app = spawn_app().await;
    app.email_provider().await;
    let control = app.create_template(offer("Our offer")).await.unwrap().name;
    let other = app.create_template(offer("Another offer")).await.unwrap().name;
    audience(&app, "cx", 30).await;
    let test = pb::CampaignAbTest {
        variants: vec![variant(&other, "15%")],
        test_percent: 20,
        metric: pb::AbTestMetric::Click as i32,
        ..Default::default()
    };
    let campaign = create(&app, tested(&control, "cx", test)).await.unwrap();
    assert_eq!(
        campaign.ab_test.as_ref().map(|t| (t.min_sample, t.decide_after)),
        Some((100, Some(prost_types::Duration { seconds: 86_400, nanos: 0 })))
    );
    start(&app, &campaign.name).await;
    let running = campaign_when(&app, &campaign.name, |c| {
        let n = c.counts.clone().unwrap_or_default();
        n.targeted == 30 && n.queued == 0 && n.awaiting_winner > 0
    })
    .await;
    let waiting = running.counts.unwrap().awaiting_winner;
    // A variant's template is in use as much as the campaign's own.
    let delete = app.admin(pb::DeleteTemplateRequest { name: other.clone(), etag: String::new() });
    assert_error(app.templates.clone().delete_template(delete).await, Code::FailedPrecondition, "TEMPLATE_IN_USE");

    let request = app.as_roles(pb::CancelCampaignRequest { name: campaign.name.clone() }, &["marketer"]);
    let cancelled = app.campaigns().cancel_campaign(request).await.unwrap().into_inner().campaign.unwrap();
    let counts = cancelled.counts.unwrap();
    assert_eq!((counts.awaiting_winner, counts.cancelled, counts.targeted), (0, waiting, 30), "{counts:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp.messages().len() as i64, counts.sent, "nothing went to the rest");
}

#[tokio::test]
async fn a_tested_campaign_refuses_a_malformed_test_with_each_field_named() {
    let app = spawn_app().await;
    let control = app.create_template(offer("Our offer")).await.unwrap().name;
    let sms = pb::Template {
        channel: pb::Channel::Sms as i32,
        ..email_template(pb::Purpose::Marketing, "", "{{ vars.discount }} off", &["discount"])
    };
    let sms = app.create_template(sms).await.unwrap().name;
    let unknown = format!("templates/{}", uuid::Uuid::now_v7());

    let bad = pb::CampaignAbTest {
        variants: vec![],
        holdout_percent: 60,
        test_percent: 150,
        metric: pb::AbTestMetric::Unspecified as i32,
        decide_after: Some(prost_types::Duration { seconds: 90, nanos: 0 }),
        ..Default::default()
    };
    let status = assert_error(create(&app, tested(&control, "x", bad)).await, Code::InvalidArgument, "INVALID_FIELDS");
    let reasons: Vec<String> = violations(&status).into_iter().map(|(_, r)| r).collect();
    for reason in ["INVALID_METRIC", "INVALID_DEADLINE"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason} in {reasons:?}");
    }
    let numbers = pb::CampaignAbTest {
        variants: vec![variant(&control, "5%")],
        holdout_percent: 60,
        test_percent: 150,
        metric: pb::AbTestMetric::Open as i32,
        ..Default::default()
    };
    let status = assert_error(create(&app, tested(&control, "x", numbers)).await, Code::InvalidArgument, "INVALID_FIELDS");
    let reasons: Vec<String> = violations(&status).into_iter().map(|(_, r)| r).collect();
    assert_eq!(reasons, ["INVALID_HOLDOUT", "INVALID_TEST_PERCENT"]);

    // The variants' templates are checked like the campaign's own, each named.
    let templates = pb::CampaignAbTest {
        variants: vec![
            variant(&unknown, "5%"),
            variant(&sms, "5%"),
            pb::CampaignVariant { template: control.clone(), variables: Default::default(), local_send_time: None },
        ],
        metric: pb::AbTestMetric::Open as i32,
        ..Default::default()
    };
    let status = assert_error(create(&app, tested(&control, "x", templates)).await, Code::InvalidArgument, "INVALID_FIELDS");
    assert_eq!(
        violations(&status),
        [
            ("campaign.ab_test.variants[0].template".to_owned(), "UNKNOWN_TEMPLATE".to_owned()),
            ("campaign.ab_test.variants[1].template".to_owned(), "VARIANT_CHANNEL_MISMATCH".to_owned()),
            ("campaign.ab_test.variants[2].variables.discount".to_owned(), "MISSING_LOCKED_VARIABLE".to_owned()),
        ]
    );

    let window = pb::Campaign { attribution_window_days: 91, ab_test: None, ..tested(&control, "x", Default::default()) };
    assert_error(create(&app, window).await, Code::InvalidArgument, "INVALID_WINDOW");
}

/// Moves campaign `name`'s messages' send time `days` back.
async fn sent_days_ago(app: &TestApp, name: &str, days: i32) {
    let id = uuid::Uuid::parse_str(name.trim_start_matches("campaigns/")).unwrap();
    sqlx::query("UPDATE deliveries SET send_time = now() - make_interval(days => $2) WHERE campaign_id = $1")
        .bind(id)
        .bind(days)
        .execute(&mut app.owner().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_goal_is_attributed_to_the_last_message_whose_own_campaign_window_covers_it() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app.create_template(offer("Our offer")).await.unwrap().name;
    let ada = audience(&app, "window", 1).await.remove(0);
    let campaign =
        |window: i32| pb::Campaign { attribution_window_days: window, ab_test: None, ..tested(&template, "window", Default::default()) };

    // A week-long window sent six days ago, a three-day one sent five days ago.
    let week = create(&app, campaign(0)).await.unwrap();
    let short = create(&app, campaign(3)).await.unwrap();
    assert_eq!((week.attribution_window_days, short.attribution_window_days), (7, 3));
    for (c, days) in [(&week, 6), (&short, 5)] {
        start(&app, &c.name).await;
        app.campaign_in(&c.name, pb::CampaignState::Completed).await;
        sent_days_ago(&app, &c.name, days).await;
    }

    // The later message's window is over: the goal is the earlier one's.
    let conversion = convert(&app, &ada, "ada-1").await;
    assert_eq!(conversion.campaign, week.name);
    assert_eq!(attribution(&app, &short.name).await.window_days, 3);
    assert_eq!((attribution(&app, &week.name).await.conversions, attribution(&app, &short.name).await.conversions), (1, 0));
}

#[tokio::test]
async fn a_variant_with_its_own_send_time_waits_for_it_while_the_control_goes_at_once() {
    let app = spawn_app().await;
    app.email_provider().await;
    let control = app.create_template(offer("Now")).await.unwrap().name;
    let evening = app.create_template(offer("Tonight")).await.unwrap().name;
    audience(&app, "timed", 40).await;
    // The variant at a local time (the tenant's zone: UTC) twelve hours away; the campaign has none.
    let later = chrono::Utc::now() + chrono::Duration::hours(12);
    let at = crm_proto::google::r#type::TimeOfDay { hours: chrono::Timelike::hour(&later) as i32, minutes: 0, seconds: 0, nanos: 0 };
    let test = pb::CampaignAbTest {
        variants: vec![pb::CampaignVariant { local_send_time: Some(at), ..variant(&evening, "15%") }],
        metric: pb::AbTestMetric::Open as i32,
        ..Default::default()
    };
    let campaign = create(&app, tested(&control, "timed", test)).await.unwrap();
    assert_eq!(campaign.ab_test.as_ref().unwrap().variants[0].local_send_time, Some(at));
    start(&app, &campaign.name).await;
    let running = campaign_when(&app, &campaign.name, |c| {
        let n = c.counts.clone().unwrap_or_default();
        n.targeted == 40 && n.sent + n.queued == 40 && n.sent > 0 && n.queued > 0
    })
    .await;
    let filter = format!("campaign = \"{}\"", campaign.name);
    let a = deliveries(&app, &format!("{filter} AND ab_variant = \"a\"")).await;
    let b = deliveries(&app, &format!("{filter} AND ab_variant = \"b\"")).await;
    assert_eq!((a.len() + b.len()) as i64, running.counts.unwrap().targeted);
    // a goes at once; b waits for its hour.
    for _ in 0..100 {
        if app.smtp.messages().len() == a.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(app.smtp.messages().iter().all(|m| m.subject == "Now"), "only the control went");
    let b = deliveries(&app, &format!("{filter} AND ab_variant = \"b\"")).await;
    for d in &b {
        assert_eq!(d.status, pb::DeliveryStatus::Queued as i32);
        let due = d.next_attempt_time.as_ref().map(|t| t.seconds).unwrap_or_default();
        assert_eq!(due % 3600, 0, "due on the hour asked for: {d:?}");
        assert!((due - later.timestamp()).abs() <= 3600, "due at the variant's time: {d:?}");
    }
}

#[tokio::test]
async fn a_paused_test_waits_and_the_winner_skips_a_rest_member_deleted_meanwhile() {
    let app = spawn_app().await;
    app.email_provider().await;
    let control = app.create_template(offer("Our offer")).await.unwrap().name;
    let better = app.create_template(offer("A better offer")).await.unwrap().name;
    let members = audience(&app, "paused", 60).await;
    let test = pb::CampaignAbTest {
        variants: vec![variant(&better, "15%")],
        test_percent: 60,
        metric: pb::AbTestMetric::Conversion as i32,
        min_sample: 10,
        ..Default::default()
    };
    let campaign = create(&app, tested(&control, "paused", test)).await.unwrap();
    start(&app, &campaign.name).await;
    campaign_when(&app, &campaign.name, |c| {
        let n = c.counts.clone().unwrap_or_default();
        n.targeted == 60 && n.sent == n.targeted - n.awaiting_winner && n.awaiting_winner > 0
    })
    .await;
    let filter = format!("campaign = \"{}\"", campaign.name);
    let tested = deliveries(&app, &filter).await;
    let reached: Vec<&String> = tested.iter().map(|d| &d.customer).collect();
    let rest: Vec<&String> = members.iter().filter(|m| !reached.contains(m)).collect();

    // Paused: b's conversions come in, yet nothing is decided and nothing goes to the rest.
    let pause = app.as_roles(pb::PauseCampaignRequest { name: campaign.name.clone() }, &["marketer"]);
    app.campaigns().pause_campaign(pause).await.unwrap();
    for (i, d) in tested.iter().filter(|d| d.ab_variant == "b").enumerate() {
        convert(&app, &d.customer, &format!("b-{i}")).await;
    }
    // One of the rest is deleted in profiles before the winner reaches them.
    let gone = rest[0].clone();
    let delete = crm_proto::crm::profiles::v1::DeleteCustomerRequest { name: gone.clone(), etag: String::new() };
    app.customers.clone().delete_customer(app.admin(delete)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let paused = app.campaign(&campaign.name).await;
    assert_eq!(paused.ab_test.unwrap().winner, "", "a paused campaign's test is not decided");
    assert_eq!(app.smtp.messages().len(), tested.len(), "nothing went to the rest");

    // Resumed: decided, the rest sent — all but the deleted member, who is skipped.
    let resume = app.as_roles(pb::ResumeCampaignRequest { name: campaign.name.clone() }, &["marketer"]);
    app.campaigns().resume_campaign(resume).await.unwrap();
    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    assert_eq!(done.ab_test.unwrap().winner, "b");
    let counts = done.counts.unwrap();
    assert_eq!((counts.sent, counts.skipped, counts.awaiting_winner), (59, 1, 0), "{counts:?}");
    let skipped = deliveries(&app, &format!("{filter} AND status = SKIPPED")).await;
    assert_eq!((skipped[0].customer.as_str(), skipped[0].skip_reason), (gone.as_str(), pb::SkipReason::CustomerDeleted as i32));
    assert_eq!(skipped[0].ab_variant, "rest");
}
