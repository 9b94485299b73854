//! Campaigns: an audience from profiles, snapshotted into the ledger, sent
//! once each, paused, resumed, cancelled — with exact counts.

use std::time::Duration;

use crm_proto::crm::campaigns::v1 as pb;
use tonic::Code;

use crate::helpers::{Clients, Person, TestApp, assert_error, email_template, spawn_app, violations};

fn offer() -> pb::Template {
    email_template(pb::Purpose::Marketing, "An offer for {{ customer.display_name }}", "{{ vars.discount }} off this week.", &["discount"])
}

/// `n` opted-in customers tagged `tag`, named by index; returns their addresses.
async fn audience(app: &Clients, tag: &str, n: usize) -> Vec<String> {
    let mut addresses = Vec::new();
    for i in 0..n {
        let email = format!("{tag}-{i}@example.com");
        app.customer(Person { name: "Member", email: &email, email_opt_in: true, tags: &[tag], ..Person::default() }).await;
        addresses.push(email);
    }
    addresses
}

fn recipients(app: &TestApp) -> Vec<String> {
    let mut to: Vec<String> = app.smtp.messages().into_iter().flat_map(|m| m.rcpt_tos).collect();
    to.sort();
    to
}

async fn act(app: &Clients, name: &str, what: &str) -> Result<pb::Campaign, tonic::Status> {
    let mut client = app.campaigns();
    let campaign = match what {
        "start" => {
            client
                .start_campaign(app.as_roles(pb::StartCampaignRequest { name: name.into(), etag: String::new() }, &["marketer"]))
                .await?
                .into_inner()
                .campaign
        }
        "pause" => {
            client.pause_campaign(app.as_roles(pb::PauseCampaignRequest { name: name.into() }, &["marketer"])).await?.into_inner().campaign
        }
        "resume" => {
            client
                .resume_campaign(app.as_roles(pb::ResumeCampaignRequest { name: name.into() }, &["marketer"]))
                .await?
                .into_inner()
                .campaign
        }
        _ => {
            client
                .cancel_campaign(app.as_roles(pb::CancelCampaignRequest { name: name.into() }, &["marketer"]))
                .await?
                .into_inner()
                .campaign
        }
    };
    Ok(campaign.unwrap())
}

#[tokio::test]
async fn a_campaign_reaches_its_audience_once_and_counts_every_outcome() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app.create_template(offer()).await.unwrap();
    let mut gold = audience(&app, "gold", 3).await;
    app.customer(Person { name: "Refuses", email: "refuses@example.com", tags: &["gold"], ..Person::default() }).await;
    audience(&app, "silver", 2).await;

    let campaign = app.create_campaign(&template.name, "tags:\"gold\"", &[("discount", "20%")]).await.unwrap();
    assert_eq!(campaign.state, pb::CampaignState::Draft as i32);
    let started = act(&app, &campaign.name, "start").await.unwrap();
    assert_eq!(started.state, pb::CampaignState::Scheduled as i32);
    assert!(started.start_time.is_some());

    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    let counts = done.counts.unwrap();
    assert_eq!((counts.targeted, counts.sent, counts.skipped, counts.queued, counts.failed), (4, 3, 1, 0, 0), "{counts:?}");
    assert_eq!(counts.skipped_by_reason, vec![pb::SkipCount { reason: pb::SkipReason::NoConsent as i32, count: 1 }]);
    assert!(done.run_time.is_some() && done.end_time.is_some());

    gold.sort();
    assert_eq!(recipients(&app), gold, "each opted-in gold member once, nobody else");
    let mail = app.smtp.messages();
    assert!(mail.iter().all(|m| m.subject == "An offer for Member"), "{:?}", mail.iter().map(|m| &m.subject).collect::<Vec<_>>());
    let sent = app.list_deliveries("kind = CAMPAIGN AND status = SENT", &["analyst"]).await.unwrap();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|d| d.campaign == campaign.name && d.body == "20% off this week."));

    // A finished campaign is final.
    assert_error(act(&app, &campaign.name, "pause").await, Code::FailedPrecondition, "INVALID_CAMPAIGN_STATE");
}

#[tokio::test]
async fn pausing_holds_the_rest_and_resuming_sends_each_exactly_once() {
    let app = spawn_app().await;
    app.email_provider_paced(10).await;
    let template = app.create_template(offer()).await.unwrap();
    let mut members = audience(&app, "vip", 30).await;
    let campaign = app.create_campaign(&template.name, "tags:\"vip\"", &[("discount", "5%")]).await.unwrap();
    act(&app, &campaign.name, "start").await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Running).await;
    app.smtp.wait_for(3, Duration::from_secs(10)).await;

    let paused = act(&app, &campaign.name, "pause").await.unwrap();
    assert_eq!(paused.state, pb::CampaignState::Paused as i32);
    // What was being handed over when the pause came may still arrive; then nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = app.smtp.messages().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.smtp.messages().len(), held, "nothing leaves a paused campaign");
    assert!(held < members.len(), "the pause came before the end ({held} sent)");
    let counts = app.campaign(&campaign.name).await.counts.unwrap();
    assert_eq!(counts.sent as usize, held);
    assert_eq!(counts.queued as usize, members.len() - held);

    act(&app, &campaign.name, "resume").await.unwrap();
    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    assert_eq!(done.counts.unwrap().sent as usize, members.len());
    members.sort();
    assert_eq!(recipients(&app), members, "every member exactly once across the pause");
}

#[tokio::test]
async fn cancelling_stops_what_was_not_sent() {
    let app = spawn_app().await;
    app.email_provider_paced(5).await;
    let template = app.create_template(offer()).await.unwrap();
    let members = audience(&app, "bronze", 20).await;
    let campaign = app.create_campaign(&template.name, "tags:\"bronze\"", &[("discount", "1%")]).await.unwrap();
    act(&app, &campaign.name, "start").await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Running).await;
    app.smtp.wait_for(2, Duration::from_secs(10)).await;

    let cancelled = act(&app, &campaign.name, "cancel").await.unwrap();
    assert_eq!(cancelled.state, pb::CampaignState::Cancelled as i32);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let final_counts = app.campaign(&campaign.name).await.counts.unwrap();
    assert!(final_counts.cancelled > 0, "{final_counts:?}");
    assert_eq!(final_counts.targeted as usize, members.len());
    assert_eq!((final_counts.sent + final_counts.cancelled + final_counts.queued) as usize, members.len(), "{final_counts:?}");
    let sent = app.smtp.messages().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.smtp.messages().len(), sent, "nothing leaves a cancelled campaign");
    assert_eq!(sent as i64, final_counts.sent + final_counts.queued, "the ledger agrees with the server");
    let listed = app.list_deliveries(&format!("campaign = \"{}\" AND status = CANCELLED", campaign.name), &["admin"]).await.unwrap();
    assert_eq!(listed.len() as i64, final_counts.cancelled);
}

#[tokio::test]
async fn cancelling_more_than_a_batch_answers_at_once_and_the_job_cancels_the_rest() {
    let app = spawn_app().await;
    app.email_provider_paced(5).await;
    let template = app.create_template(offer()).await.unwrap();
    // More than one cancel batch (2 000): the request cancels one, the campaign job the rest.
    let members = audience(&app, "many", 2300).await;
    let campaign = app.create_campaign(&template.name, "tags:\"many\"", &[("discount", "3%")]).await.unwrap();
    act(&app, &campaign.name, "start").await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Running).await;

    let cancelled = act(&app, &campaign.name, "cancel").await.unwrap();
    assert_eq!(cancelled.state, pb::CampaignState::Cancelled as i32);
    let mut counts = app.campaign(&campaign.name).await.counts.unwrap();
    for _ in 0..100 {
        if counts.queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        counts = app.campaign(&campaign.name).await.counts.unwrap();
    }
    assert_eq!(counts.queued, 0, "the job cancelled what the request left: {counts:?}");
    assert!(counts.cancelled > 2000, "{counts:?}");
    assert_eq!((counts.sent + counts.cancelled) as usize, members.len(), "{counts:?}");
    let sent = app.smtp.messages().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp.messages().len(), sent, "nothing leaves a cancelled campaign");
}

/// How many of campaign `name`'s queue rows are due some time (not held), and how many there are.
async fn queue_rows(app: &TestApp, name: &str) -> (i64, i64) {
    let mut owner = app.owner().await;
    let id = uuid::Uuid::parse_str(name.trim_start_matches("campaigns/")).unwrap();
    sqlx::query_as("SELECT count(*) FILTER (WHERE due_time < '100000-01-01'), count(*) FROM delivery_queue WHERE campaign_id = $1")
        .bind(id)
        .fetch_one(&mut owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn pausing_and_resuming_more_than_a_batch_holds_and_releases_the_rest_in_the_job() {
    let app = spawn_app().await;
    app.email_provider_paced(200).await;
    let template = app.create_template(offer()).await.unwrap();
    // More than one batch (2 000): the move holds or releases one, the campaign job the rest.
    let mut members = audience(&app, "crowd", 2300).await;
    let campaign = app.create_campaign(&template.name, "tags:\"crowd\"", &[("discount", "7%")]).await.unwrap();
    act(&app, &campaign.name, "start").await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Running).await;

    act(&app, &campaign.name, "pause").await.unwrap();
    let mut rows = queue_rows(&app, &campaign.name).await;
    for _ in 0..100 {
        if rows.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = queue_rows(&app, &campaign.name).await;
    }
    assert_eq!(rows.0, 0, "the job held what the pause left due: {rows:?}");
    assert!(rows.1 > 2000, "more than one batch was held: {rows:?}");
    // What was being handed over when the pause came may still arrive; then nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = app.smtp.messages().len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.smtp.messages().len(), sent, "nothing leaves a paused campaign");

    act(&app, &campaign.name, "resume").await.unwrap();
    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    assert_eq!(done.counts.unwrap().sent as usize, members.len());
    members.sort();
    assert_eq!(recipients(&app), members, "every member exactly once across the pause");
}

#[tokio::test]
async fn notices_are_not_held_up_by_a_running_campaign() {
    let app = spawn_app().await;
    app.email_provider_paced(20).await;
    let template = app.create_template(offer()).await.unwrap();
    audience(&app, "bulk", 100).await;
    let campaign = app.create_campaign(&template.name, "tags:\"bulk\"", &[("discount", "2%")]).await.unwrap();
    act(&app, &campaign.name, "start").await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Running).await;

    let fee = app.create_template(email_template(pb::Purpose::Transactional, "Fee", "Pay {{ vars.amount }}", &["amount"])).await.unwrap();
    let payer = app.customer(Person { name: "Payer", email: "payer@example.com", ..Person::default() }).await;
    let sent_at = std::time::Instant::now();
    let notice = app.send_notice(&fee.name, &payer, &[("amount", "9")], "urgent").await.unwrap();
    let notice = app.settled(&notice.name).await;
    assert_eq!(notice.status, pb::DeliveryStatus::Sent as i32);
    let waited = sent_at.elapsed();
    let campaign_state = app.campaign(&campaign.name).await;
    assert_eq!(campaign_state.state, pb::CampaignState::Running as i32, "the campaign (5 s of sending) is still running");
    assert!(waited < Duration::from_secs(3), "the notice waited {waited:?} behind the campaign");
}

#[tokio::test]
async fn campaigns_refuse_bad_input_and_the_wrong_moves() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app.create_template(offer()).await.unwrap();

    let status = assert_error(app.create_campaign(&template.name, "", &[]).await, Code::InvalidArgument, "MISSING_LOCKED_VARIABLE");
    assert_eq!(violations(&status), vec![("campaign.variables.discount".to_owned(), "MISSING_LOCKED_VARIABLE".to_owned())]);
    assert_error(
        app.create_campaign(&template.name, "no_such_field = 1", &[("discount", "1")]).await,
        Code::InvalidArgument,
        "INVALID_AUDIENCE",
    );
    let missing = format!("templates/{}", uuid::Uuid::now_v7());
    assert_error(app.create_campaign(&missing, "", &[("discount", "1")]).await, Code::InvalidArgument, "UNKNOWN_TEMPLATE");

    let campaign = app.create_campaign(&template.name, "", &[("discount", "1")]).await.unwrap();
    assert_error(act(&app, &campaign.name, "pause").await, Code::FailedPrecondition, "INVALID_CAMPAIGN_STATE");
    let request = app.admin(pb::DeleteTemplateRequest { name: template.name.clone(), etag: String::new() });
    assert_error(app.templates.clone().delete_template(request).await, Code::FailedPrecondition, "TEMPLATE_IN_USE");

    act(&app, &campaign.name, "start").await.unwrap();
    let mut edit = campaign.clone();
    edit.display_name = "Renamed".into();
    edit.etag = String::new();
    let request = app.as_roles(
        pb::UpdateCampaignRequest {
            campaign: Some(edit),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
        },
        &["marketer"],
    );
    assert_error(app.campaigns().update_campaign(request).await, Code::FailedPrecondition, "CAMPAIGN_NOT_EDITABLE");

    // Agents send notices; they do not run campaigns. Analysts read them.
    let request = app.as_roles(pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() }, &["agent"]);
    assert_error(app.campaigns().start_campaign(request).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let request = app.as_roles(pb::ListCampaignsRequest::default(), &["analyst"]);
    assert_eq!(app.campaigns().list_campaigns(request).await.unwrap().into_inner().campaigns.len(), 1);
}

#[tokio::test]
async fn the_estimated_reach_counts_who_the_policy_would_skip_and_matches_the_send() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app.create_template(offer()).await.unwrap();
    audience(&app, "est", 3).await;
    app.customer(Person { name: "No consent", email: "nc@example.com", tags: &["est"], ..Person::default() }).await;
    app.customer(Person { name: "No email", email_opt_in: true, tags: &["est"], ..Person::default() }).await;
    let campaign = app.create_campaign(&template.name, "tags:\"est\"", &[("discount", "5%")]).await.unwrap();

    // An analyst sees counts (no addresses), read with the service's own access to profiles.
    let request = app.as_roles(pb::EstimateCampaignReachRequest { name: campaign.name.clone() }, &["analyst"]);
    let estimate = app.campaigns().estimate_campaign_reach(request).await.unwrap().into_inner();
    assert_eq!((estimate.audience, estimate.reachable, estimate.complete), (5, 3, true), "{estimate:?}");
    let mut reasons: Vec<_> = estimate.skipped_by_reason.iter().map(|s| (s.reason, s.count)).collect();
    reasons.sort();
    assert_eq!(reasons, vec![(pb::SkipReason::NoAddress as i32, 1), (pb::SkipReason::NoConsent as i32, 1)]);
    let denied = app
        .campaigns()
        .estimate_campaign_reach(app.as_roles(pb::EstimateCampaignReachRequest { name: campaign.name.clone() }, &["agent"]))
        .await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");

    // The send agrees with the estimate.
    act(&app, &campaign.name, "start").await.unwrap();
    let counts = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await.counts.unwrap();
    assert_eq!((counts.sent, counts.skipped), (estimate.reachable, estimate.audience - estimate.reachable), "{counts:?}");
}

#[tokio::test]
async fn each_member_gets_the_campaign_at_their_own_local_time() {
    use chrono::{Duration as Span, Timelike, Utc};
    use chrono_tz::Tz;

    let app = spawn_app().await;
    app.email_provider().await;
    let template = app.create_template(offer()).await.unwrap();
    let person = |name: &'static str, email: &'static str, time_zone: &'static str| Person {
        name,
        email,
        time_zone,
        email_opt_in: true,
        tags: &["tz"],
        ..Person::default()
    };
    app.customer(person("Shanghai", "sh@example.com", "Asia/Shanghai")).await;
    app.customer(person("New York", "ny@example.com", "America/New_York")).await;
    app.customer(person("Unknown", "utc@example.com", "")).await;

    // Scheduled ten minutes ago, "local time" = five minutes ago in Shanghai:
    // Shanghai's moment has come; New York's and the tenant's (UTC) are hours away.
    let now = Utc::now();
    let schedule = now - Span::minutes(10);
    let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
    let local = (now - Span::minutes(5)).with_timezone(&shanghai);
    let time = crm_proto::google::r#type::TimeOfDay { hours: local.hour() as i32, minutes: local.minute() as i32, seconds: 0, nanos: 0 };
    let draft = pb::Campaign {
        display_name: "Good morning".into(),
        template: template.name.clone(),
        audience: Some(pb::Audience { filter: "tags:\"tz\"".into() }),
        variables: [("discount".to_owned(), "9%".to_owned())].into(),
        schedule_time: Some(crm_kit::time::to_timestamp(schedule)),
        local_send_time: Some(time),
        ..Default::default()
    };
    let request = app.as_roles(pb::CreateCampaignRequest { campaign: Some(draft), request_id: String::new() }, &["marketer"]);
    let campaign = app.campaigns().create_campaign(request).await.unwrap().into_inner().campaign.unwrap();
    assert_eq!(campaign.local_send_time, Some(time));
    act(&app, &campaign.name, "start").await.unwrap();

    app.smtp.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recipients(&app), vec!["sh@example.com"], "only Shanghai's local time has come");
    let minute = (time.hours * 60 + time.minutes) as u32;
    for (email, zone) in [("ny@example.com", "America/New_York"), ("utc@example.com", "UTC")] {
        let d = app.list_deliveries(&format!("recipient = \"{email}\""), &["admin"]).await.unwrap().remove(0);
        assert_eq!(d.status, pb::DeliveryStatus::Queued as i32, "{d:?}");
        let expected = crm_campaigns::domain::rules::next_local_time(zone.parse().unwrap(), minute, schedule);
        assert_eq!(
            d.next_attempt_time,
            Some(crm_kit::time::to_timestamp(expected)),
            "{email} waits for its own {:02}:{:02}",
            time.hours,
            time.minutes
        );
        assert!(expected > now + Span::hours(1), "{email}: {expected}");
    }
    assert_eq!(app.campaign(&campaign.name).await.state, pb::CampaignState::Running as i32, "running until the last zone's time");

    // A bad time of day is refused with the field named.
    let bad = pb::Campaign {
        local_send_time: Some(crm_proto::google::r#type::TimeOfDay { hours: 9, minutes: 30, seconds: 15, nanos: 0 }),
        ..campaign
    };
    let request = app.as_roles(pb::CreateCampaignRequest { campaign: Some(bad), request_id: String::new() }, &["marketer"]);
    let refused = assert_error(app.campaigns().create_campaign(request).await, Code::InvalidArgument, "INVALID_TIME");
    assert!(violations(&refused).iter().any(|(f, _)| f == "campaign.local_send_time"));
}
