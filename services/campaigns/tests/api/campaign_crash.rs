//! A campaign under SIGKILL and pause/resume: the campaigns process is
//! killed at random moments while it snapshots the audience and sends (and
//! the campaign is paused and resumed in between), restarted each time, and
//! the provider's own record must show every eligible recipient exactly one
//! message, every ineligible one none, and the ledger must match it.
//!
//! `make test` runs it with 600 recipients; `CRM_CRASH_RECIPIENTS=5000`
//! (what `make bench` uses) runs the full size.
//!
//! And an A/B/n-tested campaign killed while it snapshots, sends the test
//! and then sends the winner to the rest: each member outside the holdout
//! gets exactly one message.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use crm_proto::crm::campaigns::v1::{self as pb, campaign_service_client::CampaignServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    providers::{PeerConfig, ProviderPeer},
};
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};

use crate::{
    crash::{Killable, list_all, paced_aliyun},
    helpers::{Clients, Person},
};

const KILLS: usize = 6;

fn recipients() -> usize {
    std::env::var("CRM_CRASH_RECIPIENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(600)
}

/// Calls `act` on the campaign until the (restarting) service answers.
async fn until_answered<F, Fut>(what: &str, act: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match act().await {
            Ok(()) => return,
            // Paused or resumed by an earlier attempt whose answer was lost.
            Err(s) if s.code() == tonic::Code::FailedPrecondition => return,
            Err(s) => {
                assert!(Instant::now() < deadline, "{what} never succeeded: {s:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn campaign_state(channel: &Channel, bearer: &str, name: &str) -> Option<pb::Campaign> {
    let request = with_token(pb::GetCampaignRequest { name: name.to_owned() }, bearer);
    CampaignServiceClient::new(channel.clone()).get_campaign(request).await.ok().and_then(|r| r.into_inner().campaign)
}

/// A marketing SMS template saying `body`.
fn sms_offer(body: &str) -> pb::Template {
    pb::Template {
        display_name: "Offer".into(),
        channel: pb::Channel::Sms as i32,
        purpose: pb::Purpose::Marketing as i32,
        contents: vec![pb::TemplateContent { locale: "zh-CN".into(), body: body.into(), ..Default::default() }],
        default_locale: "zh-CN".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_campaign_reaches_each_eligible_recipient_once_through_kills_and_a_pause() {
    // Arrange: profiles, campaigns as a real process with a short lease, Aliyun as a local peer.
    let n = recipients();
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let (suite, mut campaigns) = Killable::start().await;
    let port = suite.port;
    let tenant = uuid::Uuid::now_v7();
    let app = Clients::connect(&campaigns.url, suite.profiles.channel.clone(), tenant, 0).await;
    // Paced so that the kills land while it sends.
    paced_aliyun(&app, &peer, i32::try_from(n / 3).unwrap().clamp(100, 1000)).await;
    let template = app.create_template(sms_offer("本周物业服务八折。回复TD退订")).await.unwrap().name;
    // Every tenth customer never agreed to SMS marketing: ineligible.
    let mut eligible = BTreeSet::new();
    let mut ineligible = BTreeSet::new();
    for i in 0..n {
        let phone = format!("+86139{i:08}");
        let opted_in = i % 10 != 0;
        let customer = app.customer(Person { name: "R", phone: &phone, sms_opt_in: opted_in, tags: &["crash"], ..Person::default() }).await;
        if opted_in {
            eligible.insert(customer)
        } else {
            ineligible.insert(customer)
        };
    }
    let campaign = app.create_campaign(&template, "tags:\"crash\"", &[]).await.unwrap().name;
    let marketer = token(tenant, &["marketer"]);
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
    let client = || CampaignServiceClient::new(channel.clone());
    let start_request = || with_token(pb::StartCampaignRequest { name: campaign.clone(), etag: String::new() }, &marketer);
    client().start_campaign(start_request()).await.unwrap();

    // Act: kill and restart campaigns again and again while it snapshots and sends; pause and resume once in between.
    let mut rng = rand::rngs::StdRng::from_entropy();
    // How many messages had reached the provider at each kill: where the kills landed.
    let mut sent_at_kills = Vec::new();
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        campaigns.kill_hard().await;
        sent_at_kills.push(peer.messages().len());
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..300))).await;
        campaigns = suite.restart().await;
        if kill == KILLS / 2 {
            let pause = || async {
                client().pause_campaign(with_token(pb::PauseCampaignRequest { name: campaign.clone() }, &marketer)).await.map(|_| ())
            };
            until_answered("pause", pause).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let resume = || async {
                client().resume_campaign(with_token(pb::ResumeCampaignRequest { name: campaign.clone() }, &marketer)).await.map(|_| ())
            };
            until_answered("resume", resume).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        match campaign_state(&channel, &marketer, &campaign).await {
            Some(c) if c.state == pb::CampaignState::Completed as i32 => break c,
            Some(c) if c.state == pb::CampaignState::Paused as i32 => {
                // A resume that raced a kill: resume again (the test's pause is over).
                let _ = client().resume_campaign(with_token(pb::ResumeCampaignRequest { name: campaign.clone() }, &marketer)).await;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "the campaign did not complete: {:?}", campaign_state(&channel, &marketer, &campaign).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Assert: the provider's own record — each delivery's OutId once, eligible recipients only.
    let received = peer.messages();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &received {
        *per_id.entry(m.key.clone()).or_default() += 1;
    }
    let repeated: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "messages the provider got twice: {repeated:?}");
    let ledger = list_all(&channel, &token(tenant, &["admin"])).await;
    assert_eq!(ledger.len(), n, "one ledger row per audience member");
    let mut reached = BTreeSet::new();
    for d in &ledger {
        let id = d.name.trim_start_matches("deliveries/");
        if eligible.contains(&d.customer) {
            assert_eq!(d.status, pb::DeliveryStatus::Sent as i32, "{d:?}");
            assert_eq!(per_id.get(id), Some(&1), "{} reached Aliyun once", d.name);
            reached.insert(d.customer.clone());
        } else {
            assert!(ineligible.contains(&d.customer));
            assert_eq!((d.status, d.skip_reason), (pb::DeliveryStatus::Skipped as i32, pb::SkipReason::NoConsent as i32), "{d:?}");
            assert_eq!(per_id.get(id), None, "{} must not reach Aliyun", d.name);
        }
    }
    assert_eq!(reached, eligible, "every eligible recipient got the message");
    assert_eq!(received.len(), eligible.len(), "and nothing else reached the provider");
    let counts = done.counts.unwrap();
    assert_eq!((counts.sent, counts.skipped, counts.queued), (eligible.len() as i64, ineligible.len() as i64, 0), "{counts:?}");
    let reconciled = ledger.iter().filter(|d| d.provider_message_id.starts_with("OutId:")).count();
    println!(
        "campaign: {KILLS} SIGKILLs (with {sent_at_kills:?} messages at the provider) and a pause/resume, {n} audience members ({} eligible): \
         {} messages reached Aliyun, {reconciled} found there by OutId after a kill",
        eligible.len(),
        received.len()
    );
    campaigns.kill_hard().await;
}

/// Waits (at most `within`) until the (restarting) service shows campaign `name` satisfying `done`.
async fn campaign_when(
    channel: &Channel,
    bearer: &str,
    name: &str,
    within: Duration,
    done: impl Fn(&pb::Campaign) -> bool,
) -> pb::Campaign {
    let deadline = Instant::now() + within;
    loop {
        if let Some(c) = campaign_state(channel, bearer, name).await.filter(|c| done(c)) {
            return c;
        }
        assert!(Instant::now() < deadline, "{name} did not get there: {:?}", campaign_state(channel, bearer, name).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_tested_campaign_sends_the_winner_to_the_rest_once_each_through_kills() {
    // Arrange: 300 SMS recipients; a test of a fifth of them with a 10 % holdout, decided after a minute.
    let n = 300;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let (suite, mut campaigns) = Killable::start().await;
    let tenant = uuid::Uuid::now_v7();
    let app = Clients::connect(&campaigns.url, suite.profiles.channel.clone(), tenant, 0).await;
    // Paced so that the kills land while the rest goes out.
    paced_aliyun(&app, &peer, 60).await;
    let control = app.create_template(sms_offer("本周物业服务八折。评价：{{ vars.survey_link }} 回复TD退订")).await.unwrap().name;
    let variant = app.create_template(sms_offer("本周物业服务七五折。评价：{{ vars.survey_link }} 回复TD退订")).await.unwrap().name;
    // Each member the message reaches is invited to a questionnaire, once, whatever the kills repeat.
    let questionnaire = pb::Questionnaire {
        display_name: "How was it?".into(),
        questions: vec![pb::Question {
            id: "service".into(),
            text: "1-5?".into(),
            kind: pb::QuestionKind::Rating as i32,
            ..Default::default()
        }],
        ..Default::default()
    };
    let questionnaire = app.create_questionnaire(questionnaire).await.name;
    let mut audience = BTreeSet::new();
    for i in 0..n {
        let phone = format!("+86138{i:08}");
        audience.insert(app.customer(Person { name: "R", phone: &phone, sms_opt_in: true, tags: &["tested"], ..Person::default() }).await);
    }
    let campaign = pb::Campaign {
        display_name: "Tested".into(),
        template: control.clone(),
        audience: Some(pb::Audience { filter: "tags:\"tested\"".into() }),
        questionnaire: questionnaire.clone(),
        ab_test: Some(pb::CampaignAbTest {
            variants: vec![pb::CampaignVariant { template: variant, ..Default::default() }],
            holdout_percent: 10,
            test_percent: 20,
            // SMS has no clicks: no significant difference, so the control is kept when the minute is up.
            metric: pb::AbTestMetric::Click as i32,
            decide_after: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let marketer = token(tenant, &["marketer"]);
    let channel = Endpoint::from_shared(campaigns.url.clone()).unwrap().connect_lazy();
    let client = || CampaignServiceClient::new(channel.clone());
    let create = with_token(pb::CreateCampaignRequest { campaign: Some(campaign), request_id: String::new() }, &marketer);
    let name = client().create_campaign(create).await.unwrap().into_inner().campaign.unwrap().name;
    client().start_campaign(with_token(pb::StartCampaignRequest { name: name.clone(), etag: String::new() }, &marketer)).await.unwrap();

    // Act: two kills while it snapshots and sends the test; then, once the winner is chosen, four while it sends it to the rest.
    let mut rng = rand::rngs::StdRng::from_entropy();
    for _ in 0..2 {
        campaigns = suite.kill_and_restart(campaigns, &mut rng, 100..500).await;
    }
    let decided =
        campaign_when(&channel, &marketer, &name, Duration::from_secs(120), |c| c.ab_test.as_ref().is_some_and(|t| !t.winner.is_empty()))
            .await;
    let outcome = decided.ab_test.unwrap();
    assert_eq!((outcome.winner.as_str(), outcome.decision.as_str()), ("a", "NO_SIGNIFICANT_DIFFERENCE"));
    let mut sent_at_kills = Vec::new();
    for _ in 0..4 {
        campaigns = suite.kill_and_restart(campaigns, &mut rng, 200..900).await;
        sent_at_kills.push(peer.messages().len());
    }
    let done =
        campaign_when(&channel, &marketer, &name, Duration::from_secs(120), |c| c.state == pb::CampaignState::Completed as i32).await;

    // Assert: each member outside the holdout got exactly one message — the test's or, for the rest, the winner's.
    let received = peer.messages();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &received {
        *per_id.entry(m.key.clone()).or_default() += 1;
    }
    assert!(per_id.values().all(|n| *n == 1), "messages the provider got twice: {per_id:?}");
    let counts = done.counts.unwrap();
    let ledger = list_all(&channel, &token(tenant, &["admin"])).await;
    assert_eq!(ledger.len() as i64, n as i64 - counts.holdout, "one ledger row per member outside the holdout");
    let mut reached = BTreeSet::new();
    for d in &ledger {
        assert_eq!(d.status, pb::DeliveryStatus::Sent as i32, "{d:?}");
        assert_eq!(per_id.get(d.name.trim_start_matches("deliveries/")), Some(&1), "{} reached Aliyun once", d.name);
        if d.ab_variant == "rest" {
            assert_eq!(d.template, control, "the rest got the winner");
        }
        assert!(reached.insert(d.customer.clone()), "{} has one message", d.customer);
    }
    let rest = ledger.iter().filter(|d| d.ab_variant == "rest").count() as i64;
    assert!(rest > n as i64 / 2, "most went to the rest: {rest}");
    assert_eq!(received.len(), ledger.len(), "nothing else reached the provider");
    assert_eq!((counts.sent, counts.awaiting_winner, counts.targeted), (ledger.len() as i64, 0, n as i64), "{counts:?}");
    assert!(reached.is_subset(&audience));
    let results =
        pb::GetQuestionnaireResultsRequest { name: format!("{questionnaire}/results"), journey: String::new(), campaign: name.clone() };
    let results = pb::questionnaire_service_client::QuestionnaireServiceClient::new(channel.clone())
        .get_questionnaire_results(with_token(results, &marketer))
        .await
        .unwrap()
        .into_inner()
        .results
        .unwrap();
    assert_eq!(results.invited, ledger.len() as i64, "each member reached invited exactly once");
    println!(
        "tested campaign: 6 SIGKILLs ({sent_at_kills:?} messages at the provider at the last four), {n} members, {rest} sent the winner"
    );
    campaigns.kill_hard().await;
}
