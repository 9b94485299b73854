//! The contact policy at dispatch time: consent as profiles has it when the
//! message leaves, frequency caps across campaigns, quiet hours.

use std::time::Duration;

use chrono::{Timelike, Utc};
use crm_proto::{
    crm::{campaigns::v1 as pb, profiles::v1 as profiles},
    google::r#type::TimeOfDay,
};
use tonic::Code;

use crate::helpers::{Clients, Person, assert_error, email_template, spawn_app};

fn offer() -> pb::Template {
    email_template(pb::Purpose::Marketing, "Offer", "{{ vars.discount }} off", &["discount"])
}

async fn set_policy(app: &Clients, policy: pb::ContactPolicy, paths: &[&str]) -> Result<pb::ContactPolicy, tonic::Status> {
    let request = app.admin(pb::UpdateContactPolicyRequest {
        contact_policy: Some(pb::ContactPolicy { name: "contactPolicy".into(), ..policy }),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
    });
    Ok(app.contact_policy().update_contact_policy(request).await?.into_inner().contact_policy.unwrap())
}

async fn run(app: &Clients, template: &str, tag: &str) -> pb::Campaign {
    let campaign = app.create_campaign(template, &format!("tags:\"{tag}\""), &[("discount", "5%")]).await.unwrap();
    let request = app.as_roles(pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() }, &["marketer"]);
    app.campaigns().start_campaign(request).await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Completed).await
}

async fn members(app: &Clients, tag: &str, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let email = format!("{tag}{i}@example.com");
        names.push(app.customer(Person { name: "M", email: &email, email_opt_in: true, tags: &[tag], ..Person::default() }).await);
    }
    names
}

#[tokio::test]
async fn a_daily_cap_holds_across_campaigns_and_spares_notices() {
    let app = spawn_app().await;
    app.email_provider().await;
    let caps = pb::ContactPolicy {
        time_zone: "Asia/Shanghai".into(),
        frequency_caps: vec![pb::FrequencyCap { channel: pb::Channel::Email as i32, max_per_day: 1, max_per_week: 0 }],
        ..Default::default()
    };
    let stored = set_policy(&app, caps, &["time_zone", "frequency_caps"]).await.unwrap();
    assert_eq!(stored.frequency_caps.len(), 1);
    let template = app.create_template(offer()).await.unwrap();
    let audience = members(&app, "capped", 3).await;

    let first = run(&app, &template.name, "capped").await;
    assert_eq!(first.counts.unwrap().sent, 3);
    let second = run(&app, &template.name, "capped").await;
    let counts = second.counts.unwrap();
    assert_eq!((counts.sent, counts.skipped), (0, 3), "{counts:?}");
    assert_eq!(counts.skipped_by_reason, vec![pb::SkipCount { reason: pb::SkipReason::FrequencyCap as i32, count: 3 }]);

    let fee = app.create_template(email_template(pb::Purpose::Transactional, "Fee", "Pay {{ vars.a }}", &["a"])).await.unwrap();
    let notice = app.send_notice(&fee.name, &audience[0], &[("a", "1")], "fee").await.unwrap();
    assert_eq!(app.settled(&notice.name).await.status, pb::DeliveryStatus::Sent as i32, "caps are for marketing");
    assert_eq!(app.smtp.messages().len(), 4);
}

#[tokio::test]
async fn marketing_waits_out_quiet_hours_and_notices_do_not() {
    let app = spawn_app().await;
    app.email_provider().await;
    let hour = Utc::now().hour() as i32;
    let quiet = pb::ContactPolicy {
        time_zone: "UTC".into(),
        quiet_hours_start: Some(TimeOfDay { hours: (hour + 23) % 24, minutes: 0, seconds: 0, nanos: 0 }),
        quiet_hours_end: Some(TimeOfDay { hours: (hour + 2) % 24, minutes: 0, seconds: 0, nanos: 0 }),
        ..Default::default()
    };
    set_policy(&app, quiet, &["*"]).await.unwrap();
    let template = app.create_template(offer()).await.unwrap();
    let audience = members(&app, "night", 2).await;
    let campaign = app.create_campaign(&template.name, "tags:\"night\"", &[("discount", "5%")]).await.unwrap();
    let request = app.as_roles(pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() }, &["marketer"]);
    app.campaigns().start_campaign(request).await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Running).await;

    let fee = app.create_template(email_template(pb::Purpose::Transactional, "Fee", "Pay {{ vars.a }}", &["a"])).await.unwrap();
    let notice = app.send_notice(&fee.name, &audience[0], &[("a", "1")], "fee").await.unwrap();
    assert_eq!(app.settled(&notice.name).await.status, pb::DeliveryStatus::Sent as i32, "notices pass quiet hours");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let waiting = app.list_deliveries(&format!("campaign = \"{}\"", campaign.name), &["admin"]).await.unwrap();
    assert_eq!(waiting.len(), 2);
    for d in &waiting {
        assert_eq!(d.status, pb::DeliveryStatus::Queued as i32, "{d:?}");
        let at = crm_kit::time::from_timestamp(d.next_attempt_time.as_ref().unwrap()).unwrap();
        assert_eq!((at.hour() as i32, at.minute()), ((hour + 2) % 24, 0), "waits for the end of the quiet hours");
        assert_eq!(d.attempts, 0, "waiting is no attempt");
    }
    assert_eq!(app.smtp.messages().len(), 1);
}

#[tokio::test]
async fn consent_withdrawn_after_the_snapshot_stops_the_message_at_dispatch() {
    let app = spawn_app().await;
    app.email_provider_paced(1).await;
    let template = app.create_template(offer()).await.unwrap();
    let audience = members(&app, "fickle", 6).await;
    let campaign = app.create_campaign(&template.name, "tags:\"fickle\"", &[("discount", "5%")]).await.unwrap();
    let request = app.as_roles(pb::StartCampaignRequest { name: campaign.name.clone(), etag: String::new() }, &["marketer"]);
    app.campaigns().start_campaign(request).await.unwrap();
    app.campaign_in(&campaign.name, pb::CampaignState::Running).await;
    let request = app.as_roles(pb::PauseCampaignRequest { name: campaign.name.clone() }, &["marketer"]);
    app.campaigns().pause_campaign(request).await.unwrap();

    // Everyone opts out while the campaign is paused.
    for name in &audience {
        let consent = profiles::Consent {
            email: Some(profiles::ChannelConsent { state: profiles::ConsentState::OptedOut as i32, update_time: None }),
            ..Default::default()
        };
        let request = app.admin(profiles::UpdateCustomerRequest {
            customer: Some(profiles::Customer { name: name.clone(), consent: Some(consent), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["consent".into()] }),
        });
        app.customers.clone().update_customer(request).await.unwrap();
    }
    let request = app.as_roles(pb::ResumeCampaignRequest { name: campaign.name.clone() }, &["marketer"]);
    app.campaigns().resume_campaign(request).await.unwrap();

    let done = app.campaign_in(&campaign.name, pb::CampaignState::Completed).await;
    let counts = done.counts.unwrap();
    assert_eq!(counts.sent + counts.skipped, 6, "{counts:?}");
    assert!(counts.skipped >= 3, "the opt-outs were honoured at dispatch: {counts:?}");
    assert_eq!(counts.skipped_by_reason, vec![pb::SkipCount { reason: pb::SkipReason::NoConsent as i32, count: counts.skipped }]);
    assert_eq!(app.smtp.messages().len() as i64, counts.sent);
}

#[tokio::test]
async fn the_contact_policy_is_validated_and_only_administrators_change_it() {
    let app = spawn_app().await;
    let bad = pb::ContactPolicy {
        time_zone: "Mars/Olympus".into(),
        quiet_hours_start: Some(TimeOfDay { hours: 25, minutes: 0, seconds: 0, nanos: 0 }),
        ..Default::default()
    };
    let status = assert_error(set_policy(&app, bad, &["*"]).await, Code::InvalidArgument, "INVALID_FIELDS");
    let fields: Vec<_> = crate::helpers::violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, vec!["contact_policy.time_zone", "contact_policy.quiet_hours_start"]);

    let request = app.as_roles(
        pb::UpdateContactPolicyRequest {
            contact_policy: Some(pb::ContactPolicy { name: "contactPolicy".into(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["time_zone".into()] }),
        },
        &["marketer"],
    );
    assert_error(app.contact_policy().update_contact_policy(request).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let request = app.as_roles(pb::GetContactPolicyRequest { name: "contactPolicy".into() }, &["analyst"]);
    let policy = app.contact_policy().get_contact_policy(request).await.unwrap().into_inner().contact_policy.unwrap();
    assert!(policy.frequency_caps.is_empty() && policy.quiet_hours_start.is_none(), "the defaults: {policy:?}");
}
