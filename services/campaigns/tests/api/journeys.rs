//! Journeys' definitions against real campaigns and profiles: a draft is
//! checked on every save (shape, templates, segments, filters), published
//! as immutable versions, paused and resumed; bad definitions are refused
//! with the step named.

use crm_proto::crm::{
    campaigns::v1::{self as pb, journey_service_client::JourneyServiceClient},
    profiles::v1::{self as profiles, segment_service_client::SegmentServiceClient},
};
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, email_template, spawn_app, violations};

pub(crate) fn send(id: &str, template: &str, next: &str) -> pb::JourneyStep {
    let send = pb::SendStep { template: template.into(), variables: Default::default(), ab_test: None, questionnaire: String::new() };
    pb::JourneyStep { id: id.into(), kind: Some(pb::journey_step::Kind::Send(send)), next: next.into() }
}

pub(crate) fn wait_days(id: &str, days: i64, next: &str) -> pb::JourneyStep {
    let duration = prost_types::Duration { seconds: days * 86_400, nanos: 0 };
    let wait = pb::WaitStep { until: Some(pb::wait_step::Until::Duration(duration)) };
    pb::JourneyStep { id: id.into(), kind: Some(pb::journey_step::Kind::Wait(wait)), next: next.into() }
}

pub(crate) fn branch_on_segment(id: &str, segment: &str, if_true: &str, if_false: &str) -> pb::JourneyStep {
    let branch = pb::BranchStep {
        condition: Some(pb::branch_step::Condition::InSegment(segment.into())),
        if_true: if_true.into(),
        if_false: if_false.into(),
    };
    pb::JourneyStep { id: id.into(), kind: Some(pb::journey_step::Kind::Branch(branch)), next: String::new() }
}

pub(crate) fn exit(id: &str) -> pb::JourneyStep {
    pb::JourneyStep { id: id.into(), kind: Some(pb::journey_step::Kind::Exit(pb::ExitStep {})), next: String::new() }
}

fn entered(segment: &str) -> pb::JourneyTrigger {
    let event = pb::JourneyEventTrigger { event: pb::JourneyEvent::SegmentEntered as i32, segment: segment.into() };
    pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Event(event)) }
}

struct Fixture {
    app: TestApp,
    client: JourneyServiceClient<Channel>,
    template: String,
    segment: String,
}

impl Fixture {
    /// The app, a template and a churn-risk segment in profiles.
    async fn start() -> Self {
        let app = spawn_app().await;
        let template = email_template(pb::Purpose::Marketing, "We miss you", "Come back, {{ customer.display_name }}", &[]);
        let template = app.clients.create_template(template).await.unwrap().name;
        let profiles_channel = app.profiles.as_ref().unwrap().channel.clone();
        let segment = profiles::Segment {
            display_name: "At risk".into(),
            kind: profiles::SegmentKind::Dynamic as i32,
            filter: "churn_risk = HIGH".into(),
            ..Default::default()
        };
        let segment = SegmentServiceClient::new(profiles_channel)
            .create_segment(app.clients.admin(profiles::CreateSegmentRequest { segment: Some(segment), request_id: String::new() }))
            .await
            .unwrap()
            .into_inner()
            .segment
            .unwrap()
            .name;
        let client = JourneyServiceClient::new(app.clients.channel.clone());
        Self { app, client, template, segment }
    }

    /// A win-back journey: on entering the segment, send, wait a week, and remind while still in it.
    fn win_back(&self) -> pb::Journey {
        pb::Journey {
            display_name: "Win-back".into(),
            trigger: Some(entered(&self.segment)),
            steps: vec![
                send("miss-you", &self.template, "a-week"),
                wait_days("a-week", 7, "still-at-risk"),
                branch_on_segment("still-at-risk", &self.segment, "reminder", "done"),
                send("reminder", &self.template, ""),
                exit("done"),
            ],
            exit_on_purchase: true,
            ..Default::default()
        }
    }

    fn marketer<T>(&self, message: T) -> tonic::Request<T> {
        self.app.clients.as_roles(message, &["marketer"])
    }

    async fn create(&self, journey: pb::Journey) -> Result<pb::Journey, tonic::Status> {
        let request = self.marketer(pb::CreateJourneyRequest { journey: Some(journey), request_id: String::new() });
        Ok(self.client.clone().create_journey(request).await?.into_inner().journey.unwrap())
    }
}

#[tokio::test]
async fn a_journey_is_drafted_published_in_versions_paused_and_resumed() {
    let f = Fixture::start().await;
    let mut client = f.client.clone();

    // A draft: checked, stored, not yet published.
    let draft = f.create(f.win_back()).await.unwrap();
    assert_eq!((draft.state, draft.published_version, draft.has_unpublished_changes), (pb::JourneyState::Draft as i32, 0, true));
    assert_eq!(draft.steps.len(), 5);
    assert_eq!(draft.steps, f.win_back().steps, "the definition comes back as it was given");

    // Published: version 1, ACTIVE; publishing again without changes changes nothing.
    let publish = |name: &str, etag: &str| f.marketer(pb::PublishJourneyRequest { name: name.into(), etag: etag.into() });
    let v1 = client.publish_journey(publish(&draft.name, &draft.etag)).await.unwrap().into_inner().journey.unwrap();
    assert_eq!((v1.state, v1.published_version, v1.has_unpublished_changes), (pb::JourneyState::Active as i32, 1, false));
    assert!(v1.publish_time.is_some());
    let again = client.publish_journey(publish(&draft.name, "")).await.unwrap().into_inner().journey.unwrap();
    assert_eq!((again.published_version, again.etag.as_str()), (1, v1.etag.as_str()));

    // Editing a published journey edits the draft; version 1 stays until the next publish.
    let mut shorter = f.win_back();
    shorter.steps = vec![send("miss-you", &f.template, "")];
    shorter.name = draft.name.clone();
    shorter.etag = v1.etag.clone();
    let mask = prost_types::FieldMask { paths: vec!["steps".into()] };
    let update = pb::UpdateJourneyRequest { journey: Some(shorter.clone()), update_mask: Some(mask.clone()) };
    let edited = client.update_journey(f.marketer(update)).await.unwrap().into_inner().journey.unwrap();
    assert_eq!((edited.published_version, edited.has_unpublished_changes, edited.steps.len()), (1, true, 1));
    // The same etag again is stale now.
    let stale = pb::UpdateJourneyRequest { journey: Some(shorter), update_mask: Some(mask) };
    assert_error(client.update_journey(f.marketer(stale)).await, Code::Aborted, "ETAG_MISMATCH");
    let v2 = client.publish_journey(publish(&draft.name, &edited.etag)).await.unwrap().into_inner().journey.unwrap();
    assert_eq!((v2.published_version, v2.has_unpublished_changes), (2, false));

    // Paused and resumed; a published journey is not deleted.
    let pause = f.marketer(pb::PauseJourneyRequest { name: draft.name.clone(), etag: String::new() });
    let paused = client.pause_journey(pause).await.unwrap().into_inner().journey.unwrap();
    assert_eq!(paused.state, pb::JourneyState::Paused as i32);
    // Publishing a paused journey's new draft keeps it paused: only ResumeJourney takes entrants again.
    // (The display name is a label, not part of a version: renaming alone publishes nothing.)
    let mut renamed = pb::Journey { name: draft.name.clone(), exit_on_purchase: false, ..Default::default() };
    renamed.etag = paused.etag.clone();
    let mask = prost_types::FieldMask { paths: vec!["exit_on_purchase".into()] };
    let request = f.marketer(pb::UpdateJourneyRequest { journey: Some(renamed), update_mask: Some(mask) });
    client.update_journey(request).await.unwrap();
    let v3 = client.publish_journey(publish(&draft.name, "")).await.unwrap().into_inner().journey.unwrap();
    assert_eq!((v3.published_version, v3.state), (3, pb::JourneyState::Paused as i32));
    let resume = f.marketer(pb::ResumeJourneyRequest { name: draft.name.clone(), etag: String::new() });
    assert_eq!(client.resume_journey(resume).await.unwrap().into_inner().journey.unwrap().state, pb::JourneyState::Active as i32);
    let delete = |name: &str| f.marketer(pb::DeleteJourneyRequest { name: name.into(), etag: String::new() });
    assert_error(client.delete_journey(delete(&draft.name)).await, Code::FailedPrecondition, "INVALID_JOURNEY_STATE");

    // A draft never published is deleted; pausing a draft is refused.
    let other = f.create(f.win_back()).await.unwrap();
    let pause = f.marketer(pb::PauseJourneyRequest { name: other.name.clone(), etag: String::new() });
    assert_error(client.pause_journey(pause).await, Code::FailedPrecondition, "INVALID_JOURNEY_STATE");
    client.delete_journey(delete(&other.name)).await.unwrap();
    let gone = client.get_journey(f.marketer(pb::GetJourneyRequest { name: other.name.clone() })).await;
    assert_error(gone, Code::NotFound, "NOT_FOUND");

    // Listed newest first; readers read, but only marketers change journeys.
    let listed = client.list_journeys(f.app.clients.as_roles(pb::ListJourneysRequest::default(), &["analyst"])).await.unwrap();
    let names: Vec<String> = listed.into_inner().journeys.into_iter().map(|j| j.name).collect();
    assert_eq!(names, [draft.name]);
    let by_analyst =
        f.app.clients.as_roles(pb::CreateJourneyRequest { journey: Some(f.win_back()), request_id: String::new() }, &["analyst"]);
    assert_error(client.create_journey(by_analyst).await, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn a_retried_create_makes_one_journey() {
    let f = Fixture::start().await;
    let mut client = f.client.clone();
    let request = || f.marketer(pb::CreateJourneyRequest { journey: Some(f.win_back()), request_id: "journey-1".into() });
    let first = client.create_journey(request()).await.unwrap().into_inner().journey.unwrap();
    let second = client.create_journey(request()).await.unwrap().into_inner().journey.unwrap();
    assert_eq!(first.name, second.name);
    let listed = client.list_journeys(f.marketer(pb::ListJourneysRequest::default())).await.unwrap().into_inner().journeys;
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn bad_definitions_are_refused_with_the_step_named() {
    let f = Fixture::start().await;
    let with_steps = |f: &Fixture, steps: Vec<pb::JourneyStep>| pb::Journey { steps, ..f.win_back() };
    let refused = |result: Result<pb::Journey, tonic::Status>| {
        let status = result.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        (violations(&status), status.message().to_owned())
    };

    // A loop without a wait: every step on it could repeat at once.
    let (found, message) =
        refused(f.create(with_steps(&f, vec![send("a", &f.template, "b"), branch_on_segment("b", &f.segment, "a", "c"), exit("c")])).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "LOOP_WITHOUT_WAIT");
    assert!(message.contains("step \"a\"") || message.contains("step \"b\""), "{message}");

    // An unreachable step and a next that names nothing.
    let (found, message) = refused(f.create(with_steps(&f, vec![send("a", &f.template, ""), exit("orphan")])).await);
    assert_eq!(found, [("journey.steps[1]".to_owned(), "UNREACHABLE_STEP".to_owned())]);
    assert!(message.contains("step \"orphan\""), "{message}");
    let (found, _) = refused(f.create(with_steps(&f, vec![send("a", &f.template, "nowhere")])).await);
    assert_eq!(found, [("journey.steps[0]".to_owned(), "UNKNOWN_STEP".to_owned())]);

    // A template of no one, a segment of no one.
    let ghost_template = format!("templates/{}", uuid::Uuid::now_v7());
    let (found, _) = refused(f.create(with_steps(&f, vec![send("a", &ghost_template, "")])).await);
    assert_eq!(found, [("journey.steps[0]".to_owned(), "UNKNOWN_TEMPLATE".to_owned())]);
    let ghost_segment = format!("segments/{}", uuid::Uuid::now_v7());
    let (found, _) = refused(f.create(pb::Journey { trigger: Some(entered(&ghost_segment)), ..f.win_back() }).await);
    assert_eq!(found, [("journey.trigger.event.segment".to_owned(), "UNKNOWN_SEGMENT".to_owned())]);
    let (found, _) = refused(f.create(with_steps(&f, vec![branch_on_segment("b", &ghost_segment, "x", "x"), exit("x")])).await);
    assert_eq!(found, [("journey.steps[0].branch.in_segment".to_owned(), "UNKNOWN_SEGMENT".to_owned())]);

    // A holiday the tenant disabled triggers nothing, so no journey may wait for it.
    let mut holidays = crm_proto::crm::campaigns::v1::holiday_service_client::HolidayServiceClient::new(f.app.clients.channel.clone());
    let off = pb::Holiday { name: "holidays/christmas".into(), disabled: true, ..Default::default() };
    let mask = prost_types::FieldMask { paths: vec!["disabled".into()] };
    holidays.update_holiday(f.marketer(pb::UpdateHolidayRequest { holiday: Some(off), update_mask: Some(mask) })).await.unwrap();
    let at_nine = crm_proto::google::r#type::TimeOfDay { hours: 9, ..Default::default() };
    let christmas = pb::JourneyHolidayTrigger { holiday: "holidays/christmas".into(), time: Some(at_nine) };
    let trigger = pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Holiday(christmas)) };
    let (found, _) = refused(f.create(pb::Journey { trigger: Some(trigger), ..f.win_back() }).await);
    assert_eq!(found, [("journey.trigger".to_owned(), "HOLIDAY_DISABLED".to_owned())]);

    // Malformed fields, all at once.
    let mut bad = with_steps(&f, vec![wait_days("w", 400, ""), pb::JourneyStep { id: "no-action".into(), ..Default::default() }]);
    bad.trigger = None;
    let (found, _) = refused(f.create(bad).await);
    let fields: Vec<&str> = found.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(fields, ["journey.trigger", "journey.steps[1]"], "{found:?}");
    let (found, _) = refused(f.create(with_steps(&f, vec![wait_days("w", 400, "")])).await);
    assert_eq!(found, [("journey.steps[0]".to_owned(), "INVALID_WAIT".to_owned())]);
}

#[tokio::test]
async fn a_care_journey_is_created_from_a_blueprint_with_its_own_card() {
    let app = spawn_app().await;
    let mut client = JourneyServiceClient::new(app.clients.channel.clone());
    let listed = client.list_journey_blueprints(app.clients.as_roles(pb::ListJourneyBlueprintsRequest {}, &["analyst"])).await;
    let names: Vec<String> = listed.unwrap().into_inner().blueprints.into_iter().map(|b| b.name).collect();
    for wanted in
        ["journeyBlueprints/birthday-greeting", "journeyBlueprints/spring-festival-greeting", "journeyBlueprints/mid-autumn-greeting"]
    {
        assert!(names.contains(&wanted.to_owned()), "{names:?}");
    }

    let create = |name: &str, roles: &[&str]| {
        app.clients.as_roles(pb::CreateJourneyFromBlueprintRequest { name: name.into(), request_id: "birthday".into() }, roles)
    };
    let created =
        client.create_journey_from_blueprint(create("journeyBlueprints/birthday-greeting", &["marketer"])).await.unwrap().into_inner();
    let journey = created.journey.unwrap();
    assert_eq!((journey.state, journey.steps.len()), (pb::JourneyState::Draft as i32, 2));
    assert!(matches!(journey.trigger.unwrap().kind, Some(pb::journey_trigger::Kind::Birthday(t)) if t.hours == 9));
    let again = client.create_journey_from_blueprint(create("journeyBlueprints/birthday-greeting", &["marketer"])).await.unwrap();
    assert_eq!(again.into_inner().journey.unwrap().name, journey.name, "a retry is the same journey");

    // The card is the tenant's own template, and the journey publishes as it is.
    let card = app.clients.templates.clone().get_template(app.admin(pb::GetTemplateRequest { name: created.template.clone() })).await;
    let card = card.unwrap().into_inner().template.unwrap();
    assert!(card.contents.iter().any(|c| c.subject.contains("生日快乐")), "{card:?}");
    let publish = app.clients.as_roles(pb::PublishJourneyRequest { name: journey.name.clone(), etag: String::new() }, &["marketer"]);
    assert_eq!(client.publish_journey(publish).await.unwrap().into_inner().journey.unwrap().state, pb::JourneyState::Active as i32);

    assert_error(client.create_journey_from_blueprint(create("journeyBlueprints/nope", &["marketer"])).await, Code::NotFound, "NOT_FOUND");
    let by_analyst = client.create_journey_from_blueprint(create("journeyBlueprints/birthday-greeting", &["analyst"])).await;
    assert_error(by_analyst, Code::PermissionDenied, "PERMISSION_DENIED");
}
