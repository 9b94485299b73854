//! Communication records (沟通记录): recorded by agents (the caller as agent
//! by default), validated field by field, text masked for callers without
//! `pii`, announced without their content — and each agent's follow-ups due.

use crm_proto::{
    crm::profiles::v1::{self as pb, communication_service_client::CommunicationServiceClient},
    google::r#type::Date,
};
use crm_testkit::auth::{claims, token_with, with_token};
use prost::Message;
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app, violations};

fn client(app: &TestApp) -> CommunicationServiceClient<Channel> {
    CommunicationServiceClient::new(app.channel.clone())
}

fn agent_token(app: &TestApp, who: &str) -> String {
    token_with(&claims(who, app.tenant, &["agent"]))
}

fn call(next_contact: Option<(i32, i32, i32)>) -> pb::Communication {
    pb::Communication {
        kind: pb::CommunicationKind::Call as i32,
        direction: pb::CommunicationDirection::Outbound as i32,
        subject: "Renewal".into(),
        content: "Called 13800138000 about the renewal; wants the offer by mail to li@example.com.".into(),
        occur_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 }),
        duration: Some(prost_types::Duration { seconds: 420, nanos: 0 }),
        outcome: "Interested".into(),
        next_contact_date: next_contact.map(|(year, month, day)| Date { year, month, day }),
        ..Default::default()
    }
}

async fn record(app: &TestApp, token: &str, parent: &str, c: pb::Communication) -> Result<pb::Communication, tonic::Status> {
    let request = pb::CreateCommunicationRequest { parent: parent.into(), communication: Some(c), request_id: String::new() };
    Ok(client(app).create_communication(with_token(request, token)).await?.into_inner().communication.unwrap())
}

async fn due(app: &TestApp, token: &str, agent: &str, due_by: (i32, i32, i32)) -> Vec<String> {
    let (year, month, day) = due_by;
    let request = pb::ListDueRemindersRequest { agent: agent.into(), due_by: Some(Date { year, month, day }), ..Default::default() };
    let listed = client(app).list_due_reminders(with_token(request, token)).await.unwrap().into_inner();
    listed.communications.into_iter().map(|c| c.name).collect()
}

#[tokio::test]
async fn agents_record_contacts_and_see_their_follow_ups_due() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let (wang, zhao) = (agent_token(&app, "agent-wang"), agent_token(&app, "agent-zhao"));
    let first = record(&app, &wang, &li.name, call(Some((2026, 12, 1)))).await.unwrap();
    assert_eq!(first.agent, "agent-wang", "the caller handled it");
    let later = record(&app, &wang, &li.name, call(Some((2026, 12, 20)))).await.unwrap();
    let zhaos = record(&app, &zhao, &li.name, call(Some((2026, 11, 30)))).await.unwrap();
    record(&app, &wang, &li.name, call(None)).await.unwrap();

    assert_eq!(due(&app, &wang, "", (2026, 12, 5)).await, [first.name.as_str()], "mine, due by then");
    assert_eq!(due(&app, &wang, "", (2026, 12, 31)).await, [first.name.clone(), later.name.clone()], "earliest first");
    assert_eq!(due(&app, &wang, "*", (2026, 12, 5)).await, [zhaos.name.clone(), first.name.clone()], "everyone's");

    // Done: clearing the date takes it off the list.
    let clear = pb::UpdateCommunicationRequest {
        communication: Some(pb::Communication { name: first.name.clone(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["next_contact_date".into()] }),
    };
    client(&app).update_communication(with_token(clear, &wang)).await.unwrap();
    assert_eq!(due(&app, &wang, "", (2026, 12, 31)).await, [later.name.as_str()]);
    let readonly = app.as_roles(pb::ListDueRemindersRequest::default(), &["readonly"]);
    assert_error(client(&app).list_due_reminders(readonly).await, Code::PermissionDenied, "PERMISSION_DENIED");

    // Analysts read the record with digits and addresses masked; events never carry the content.
    let get = app.as_roles(pb::GetCommunicationRequest { name: later.name.clone() }, &["analyst"]);
    let masked = client(&app).get_communication(get).await.unwrap().into_inner().communication.unwrap();
    assert!(!masked.content.contains("13800138000") && !masked.content.contains("li@example.com"), "{}", masked.content);
    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 6).await;
    let recorded = pb::CommunicationChanged::decode(events[1].data.as_ref().unwrap().value.as_slice()).unwrap();
    let payload = recorded.communication.unwrap();
    assert_eq!((payload.name.as_str(), payload.content.as_str()), (first.name.as_str(), ""));
}

#[tokio::test]
async fn bad_records_are_refused_field_by_field() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let bad = pb::Communication {
        kind: 0,
        content: "x".repeat(64 * 1024 + 1),
        occur_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 86_400, nanos: 0 }),
        duration: Some(prost_types::Duration { seconds: -5, nanos: 0 }),
        next_contact_date: Some(Date { year: 2026, month: 2, day: 30 }),
        ..Default::default()
    };
    let status = assert_error(record(&app, &agent_token(&app, "a"), &li.name, bad).await, Code::InvalidArgument, "INVALID_FIELDS");
    assert_eq!(
        violations(&status).into_iter().map(|(f, r)| format!("{f} {r}")).collect::<Vec<_>>(),
        [
            "communication.kind INVALID_KIND",
            "communication.content TOO_LONG",
            "communication.occur_time INVALID_OCCUR_TIME",
            "communication.duration INVALID_DURATION",
            "communication.next_contact_date INVALID_DATE"
        ]
    );
    let marketer = token_with(&claims("m", app.tenant, &["marketer"]));
    assert_error(record(&app, &marketer, &li.name, call(None)).await, Code::PermissionDenied, "PERMISSION_DENIED");
}
