//! Questionnaires against real campaigns, profiles and SMTP: a journey's
//! send step invites the customer (the email carries the signed link), the
//! customer reads and answers through the link without a login — once,
//! before it expires — and the results sum the answers up.

use std::time::Duration;

use crm_proto::crm::campaigns::v1::{
    self as pb, journey_service_client::JourneyServiceClient, questionnaire_service_client::QuestionnaireServiceClient,
};
use sqlx::Connection;
use tonic::{Code, Request};

use crate::helpers::{Person, assert_error, email_template, spawn_app_with, violations};

fn question(id: &str, kind: pb::QuestionKind, options: &[&str], required: bool) -> pb::Question {
    pb::Question {
        id: id.into(),
        text: format!("{id}?"),
        kind: kind as i32,
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        required,
    }
}

fn answer(question: &str, score: i32, text: &str) -> pb::Answer {
    pb::Answer { question: question.into(), score, text: text.into() }
}

/// The invitation's name in the link an email carries.
fn invitation_in(mail: &str) -> String {
    // Undo quoted-printable soft breaks and escapes.
    let body = mail.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let start = body.find("questionnaireInvitations/").expect("the email carries the link");
    body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~')).collect()
}

#[tokio::test]
async fn a_journey_invites_and_the_customer_answers_once_through_the_link() {
    let app = spawn_app_with(|c| c.public_url = Some("https://crm.example.com".into())).await;
    app.email_provider().await;
    let template = email_template(pb::Purpose::Transactional, "How did we do?", "Tell us: {{ vars.survey_link }}", &[]);
    let template = app.create_template(template).await.unwrap().name;
    let mut questionnaires = QuestionnaireServiceClient::new(app.clients.channel.clone());
    let create = |questions: Vec<pb::Question>| {
        let q = pb::Questionnaire { display_name: "After service".into(), questions, ..Default::default() };
        app.as_roles(pb::CreateQuestionnaireRequest { questionnaire: Some(q) }, &["marketer"])
    };
    let questions = vec![
        question("service", pb::QuestionKind::Rating, &[], true),
        question("recommend", pb::QuestionKind::Nps, &[], false),
        question("channel", pb::QuestionKind::Choice, &["phone", "chat"], false),
    ];
    let questionnaire = questionnaires.create_questionnaire(create(questions)).await.unwrap().into_inner().questionnaire.unwrap();
    assert_eq!(questionnaire.answer_within_days, 7);
    // A choice without options is refused, naming the question.
    let bad = questionnaires.create_questionnaire(create(vec![question("channel", pb::QuestionKind::Choice, &[], false)])).await;
    let refused = assert_error(bad, Code::InvalidArgument, "INVALID_OPTIONS");
    assert_eq!(violations(&refused)[0].0, "questionnaire.questions[0].options");

    let send = pb::SendStep { template, variables: Default::default(), ab_test: None, questionnaire: questionnaire.name.clone() };
    let journey = pb::Journey {
        display_name: "Survey".into(),
        trigger: Some(pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Api(true)) }),
        steps: vec![pb::JourneyStep { id: "ask".into(), kind: Some(pb::journey_step::Kind::Send(send)), next: String::new() }],
        reentry: pb::JourneyReentry::Always as i32,
        ..Default::default()
    };
    let mut journeys = JourneyServiceClient::new(app.clients.channel.clone());
    // A step whose template does not show the link is refused on save, the step named.
    let silent = email_template(pb::Purpose::Transactional, "How did we do?", "Tell us.", &[]);
    let silent = app.create_template(silent).await.unwrap().name;
    let mut without_link = journey.clone();
    if let Some(pb::journey_step::Kind::Send(send)) = without_link.steps[0].kind.as_mut() {
        send.template = silent;
    }
    let refused = journeys
        .create_journey(app.as_roles(pb::CreateJourneyRequest { journey: Some(without_link), request_id: String::new() }, &["marketer"]))
        .await;
    let refused = assert_error(refused, Code::InvalidArgument, "MISSING_SURVEY_LINK");
    assert_eq!(violations(&refused), [("journey.steps[0]".to_owned(), "MISSING_SURVEY_LINK".to_owned())]);
    let draft = app.clients.publish_journey(journey).await;
    let ada = app.customer(Person { name: "Ada", email: "ada@example.com", ..Default::default() }).await;
    let enter = || {
        app.as_roles(pb::EnterJourneyRequest { name: draft.name.clone(), customer: ada.clone(), request_id: String::new() }, &["service"])
    };
    journeys.enter_journey(enter()).await.unwrap();
    let mail = app.smtp.wait_for(1, Duration::from_secs(15)).await;
    let name = invitation_in(&mail[0].data);

    // Read and answered with the link alone: no login.
    let invitation = questionnaires.get_invitation(Request::new(pb::GetInvitationRequest { name: name.clone() })).await.unwrap();
    assert_eq!(invitation.into_inner().invitation.unwrap().questions.len(), 3);
    let answer_with = |answers: Vec<pb::Answer>| Request::new(pb::AnswerInvitationRequest { name: name.clone(), answers });
    let wrong = questionnaires.answer_invitation(answer_with(vec![answer("service", 9, ""), answer("channel", 0, "fax")])).await;
    assert_error(wrong, Code::InvalidArgument, "INVALID_ANSWER");
    let missing = questionnaires.answer_invitation(answer_with(vec![answer("recommend", 10, "")])).await;
    assert_error(missing, Code::InvalidArgument, "MISSING_ANSWER");
    let answers = vec![answer("service", 5, ""), answer("recommend", 10, ""), answer("channel", 0, "chat")];
    let answered = questionnaires.answer_invitation(answer_with(answers.clone())).await.unwrap().into_inner().invitation.unwrap();
    assert!(answered.answer_time.is_some());
    assert_error(questionnaires.answer_invitation(answer_with(answers.clone())).await, Code::FailedPrecondition, "ALREADY_ANSWERED");
    let forged = Request::new(pb::GetInvitationRequest { name: "questionnaireInvitations/forged".into() });
    assert_error(questionnaires.get_invitation(forged).await, Code::Unauthenticated, "INVALID_INVITATION_LINK");

    // A second invitation, expired before it is answered.
    journeys.enter_journey(enter()).await.unwrap();
    let mail = app.smtp.wait_for(2, Duration::from_secs(15)).await;
    let second = invitation_in(&mail[1].data);
    assert_ne!(second, name);
    let mut owner = sqlx::PgConnection::connect(&app.db.owner_url).await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut owner).await.unwrap();
    sqlx::query("UPDATE questionnaire_invitations SET expire_time = now() - interval '1 minute' WHERE answer_time IS NULL")
        .execute(&mut owner)
        .await
        .unwrap();
    let late = Request::new(pb::AnswerInvitationRequest { name: second, answers });
    assert_error(questionnaires.answer_invitation(late).await, Code::FailedPrecondition, "INVITATION_EXPIRED");

    // The results: two invited, one answered — all by this journey, none by another.
    let results_of = |journey: String| {
        app.as_roles(
            pb::GetQuestionnaireResultsRequest { name: format!("{}/results", questionnaire.name), journey, campaign: String::new() },
            &["analyst"],
        )
    };
    let results = questionnaires.get_questionnaire_results(results_of(draft.name.clone())).await.unwrap().into_inner().results.unwrap();
    let other = format!("journeys/{}", uuid::Uuid::now_v7());
    let none = questionnaires.get_questionnaire_results(results_of(other)).await.unwrap().into_inner().results.unwrap();
    assert_eq!((none.invited, none.answered), (0, 0));
    assert_eq!((results.invited, results.answered), (2, 1));
    let service = results.questions.iter().find(|q| q.question == "service").unwrap();
    assert_eq!((service.answers, service.mean), (1, 5.0));
    let recommend = results.questions.iter().find(|q| q.question == "recommend").unwrap();
    assert_eq!(recommend.nps, 100.0);
}

#[tokio::test]
async fn an_sms_reply_answers_the_customers_open_invitation() {
    use crm_testkit::providers::{PeerConfig, ProviderPeer};
    let app = spawn_app_with(|c| c.public_url = Some(crate::callbacks::PUBLIC_URL.into())).await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let provider = crate::sms::sms_provider(&app, crate::sms::twilio(&peer)).await.unwrap();
    let template = pb::Template {
        display_name: "Survey SMS".into(),
        channel: pb::Channel::Sms as i32,
        purpose: pb::Purpose::Transactional as i32,
        contents: vec![pb::TemplateContent {
            locale: "en".into(),
            body: "How likely are you to recommend us, 0-10? Reply or {{ vars.survey_link }}".into(),
            ..Default::default()
        }],
        default_locale: "en".into(),
        ..Default::default()
    };
    let template = app.create_template(template).await.unwrap().name;
    let q = pb::Questionnaire {
        display_name: "NPS".into(),
        questions: vec![question("recommend", pb::QuestionKind::Nps, &[], true)],
        ..Default::default()
    };
    let mut questionnaires = QuestionnaireServiceClient::new(app.clients.channel.clone());
    let q = app.clients.create_questionnaire(q).await;
    let send = pb::SendStep { template, variables: Default::default(), ab_test: None, questionnaire: q.name.clone() };
    let journey = pb::Journey {
        display_name: "After the ticket".into(),
        trigger: Some(pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Api(true)) }),
        steps: vec![pb::JourneyStep { id: "ask".into(), kind: Some(pb::journey_step::Kind::Send(send)), next: String::new() }],
        ..Default::default()
    };
    let draft = app.clients.publish_journey(journey).await;
    let mut journeys = JourneyServiceClient::new(app.clients.channel.clone());
    let ann = crate::callbacks::texter(&app, "Ann", "+15551230001").await;
    let enter = pb::EnterJourneyRequest { name: draft.name.clone(), customer: ann, request_id: String::new() };
    journeys.enter_journey(app.as_roles(enter, &["service"])).await.unwrap();
    let mut sent = Vec::new();
    for _ in 0..300 {
        sent = peer.messages();
        if !sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent[0].body.contains("questionnaireInvitations/"), "{:?}", sent[0].body);
    // The ledger records Twilio's answer (the SID the reply is matched through) before the reply comes.
    for _ in 0..300 {
        let recorded = app.list_deliveries("", &["admin"]).await.unwrap();
        if recorded.iter().any(|d| !d.provider_message_id.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ann replies "9": her invitation is answered; a second reply changes nothing.
    let token = peer.config.twilio.1.clone();
    let reply = |sid: &'static str, body: &'static str| {
        [("MessageSid", sid), ("From", "+15551230001"), ("To", "+15005550006"), ("Body", body), ("SmsStatus", "received")]
    };
    assert_eq!(crate::callbacks::twilio_post(&app, &provider, &token, &reply("SMin1", "9")).await.unwrap().inbound_messages, 1);
    assert_eq!(crate::callbacks::twilio_post(&app, &provider, &token, &reply("SMin2", "3")).await.unwrap().inbound_messages, 1);
    let request = app.as_roles(
        pb::GetQuestionnaireResultsRequest { name: format!("{}/results", q.name), journey: String::new(), campaign: String::new() },
        &["analyst"],
    );
    let results = questionnaires.get_questionnaire_results(request).await.unwrap().into_inner().results.unwrap();
    assert_eq!((results.invited, results.answered), (1, 1));
    assert_eq!((results.questions[0].answers, results.questions[0].mean), (1, 9.0), "{results:?}");
}

#[tokio::test]
async fn a_survey_after_a_resolved_ticket_is_answered_onto_the_ticket_too() {
    use crm_proto::crm::tickets::v1 as tickets;
    let app = crate::helpers::spawn_app_with_tickets_and(|c| c.public_url = Some("https://crm.example.com".into())).await;
    app.email_provider().await;
    let template = email_template(pb::Purpose::Transactional, "Your ticket", "How did we do? {{ vars.survey_link }}", &[]);
    let template = app.create_template(template).await.unwrap().name;
    let questions = vec![
        question("service", pb::QuestionKind::Rating, &[], true),
        question("recommend", pb::QuestionKind::Nps, &[], false),
        question("comment", pb::QuestionKind::Text, &[], false),
    ];
    let q = pb::Questionnaire { display_name: "After the ticket".into(), questions, ..Default::default() };
    let mut questionnaires = QuestionnaireServiceClient::new(app.clients.channel.clone());
    let q = app.clients.create_questionnaire(q).await;
    let send = pb::SendStep { template, variables: Default::default(), ab_test: None, questionnaire: q.name.clone() };
    let resolved = pb::JourneyEventTrigger { event: pb::JourneyEvent::TicketResolved as i32, segment: String::new() };
    let journey = pb::Journey {
        display_name: "After the ticket".into(),
        trigger: Some(pb::JourneyTrigger { kind: Some(pb::journey_trigger::Kind::Event(resolved)) }),
        steps: vec![pb::JourneyStep { id: "ask".into(), kind: Some(pb::journey_step::Kind::Send(send)), next: String::new() }],
        ..Default::default()
    };
    app.clients.publish_journey(journey).await;

    // Ada's ticket is resolved in tickets: the journey invites her.
    let ada = app.customer(Person { name: "Ada", email: "ada@example.com", ..Default::default() }).await;
    let mut ticket_client = tickets::ticket_service_client::TicketServiceClient::new(app.tickets.as_ref().unwrap().channel.clone());
    let ticket = tickets::Ticket { customer: ada, subject: "The heater is broken".into(), ..Default::default() };
    let ticket = ticket_client
        .create_ticket(app.admin(tickets::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let resolve = tickets::TransitionTicketRequest {
        name: ticket.name.clone(),
        status: tickets::Status::Resolved as i32,
        etag: String::new(),
        reason: "fixed".into(),
    };
    ticket_client.transition_ticket(app.admin(resolve)).await.unwrap();
    let mail = app.smtp.wait_for(1, Duration::from_secs(20)).await;
    let name = invitation_in(&mail[0].data);

    // She answers through the link: the answer lands on the ticket's own survey too.
    let answers = vec![answer("service", 4, ""), answer("recommend", 9, ""), answer("comment", 0, "Quick and kind")];
    questionnaires.answer_invitation(Request::new(pb::AnswerInvitationRequest { name, answers })).await.unwrap();
    let mut surveys = tickets::survey_service_client::SurveyServiceClient::new(app.tickets.as_ref().unwrap().channel.clone());
    let mut survey = tickets::Survey::default();
    for _ in 0..300 {
        let request = app.admin(tickets::GetTicketSurveyRequest { ticket: ticket.name.clone() });
        survey = surveys.get_ticket_survey(request).await.unwrap().into_inner().survey.unwrap();
        if survey.csat > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((survey.csat, survey.nps, survey.comment.as_str()), (4, Some(9), "Quick and kind"), "{survey:?}");
}

#[tokio::test]
async fn a_campaign_invites_each_recipient_it_reaches_once_and_results_count_per_campaign() {
    let app = spawn_app_with(|c| c.public_url = Some("https://crm.example.com".into())).await;
    app.email_provider().await;
    let template = email_template(pb::Purpose::Marketing, "Two minutes?", "Tell us how we did: {{ vars.survey_link }}", &[]);
    let template = app.create_template(template).await.unwrap().name;
    let q = pb::Questionnaire {
        display_name: "Yearly".into(),
        questions: vec![question("service", pb::QuestionKind::Rating, &[], true)],
        ..Default::default()
    };
    let q = app.clients.create_questionnaire(q).await;
    for (name, email, opted_in) in [("Ada", "ada@example.com", true), ("Bob", "bob@example.com", true), ("Cy", "cy@example.com", false)] {
        app.customer(Person { name, email, email_opt_in: opted_in, tags: &["yearly"], ..Default::default() }).await;
    }
    let campaign = |questionnaire: &str| pb::Campaign {
        display_name: "Yearly survey".into(),
        template: template.clone(),
        audience: Some(pb::Audience { filter: "tags:\"yearly\"".into() }),
        questionnaire: questionnaire.into(),
        ..Default::default()
    };
    let create = |c: pb::Campaign| app.as_roles(pb::CreateCampaignRequest { campaign: Some(c), request_id: String::new() }, &["marketer"]);
    let mut campaigns = app.campaigns();

    // A questionnaire that is not the tenant's is refused, named.
    let unknown = campaigns.create_campaign(create(campaign(&format!("questionnaires/{}", uuid::Uuid::now_v7())))).await;
    let refused = assert_error(unknown, Code::InvalidArgument, "UNKNOWN_QUESTIONNAIRE");
    assert_eq!(violations(&refused)[0].0, "campaign.questionnaire");

    // A template that does not show the link would fail every message: refused on save.
    let silent = email_template(pb::Purpose::Marketing, "Two minutes?", "Tell us how we did.", &[]);
    let silent = app.create_template(silent).await.unwrap().name;
    let refused = campaigns.create_campaign(create(pb::Campaign { template: silent, ..campaign(&q.name) })).await;
    let refused = assert_error(refused, Code::InvalidArgument, "MISSING_SURVEY_LINK");
    assert_eq!(violations(&refused)[0].0, "campaign.template");

    let created = campaigns.create_campaign(create(campaign(&q.name))).await.unwrap().into_inner().campaign.unwrap();
    assert_eq!(created.questionnaire, q.name);
    let start = pb::StartCampaignRequest { name: created.name.clone(), etag: String::new() };
    campaigns.start_campaign(app.as_roles(start, &["marketer"])).await.unwrap();
    app.campaign_in(&created.name, pb::CampaignState::Completed).await;

    // The two it reached each got their own link; Cy, not reached, was not invited.
    let mail = app.smtp.messages();
    assert_eq!(mail.len(), 2);
    let links: Vec<String> = mail.iter().map(|m| invitation_in(&m.data)).collect();
    assert_ne!(links[0], links[1]);
    let mut questionnaires = QuestionnaireServiceClient::new(app.clients.channel.clone());
    let answer_request = pb::AnswerInvitationRequest { name: links[0].clone(), answers: vec![answer("service", 4, "")] };
    questionnaires.answer_invitation(Request::new(answer_request)).await.unwrap();

    let results_of = |campaign: String| {
        let request = pb::GetQuestionnaireResultsRequest { name: format!("{}/results", q.name), journey: String::new(), campaign };
        app.as_roles(request, &["analyst"])
    };
    let results = questionnaires.get_questionnaire_results(results_of(created.name.clone())).await.unwrap().into_inner().results.unwrap();
    assert_eq!((results.invited, results.answered), (2, 1));
    assert_eq!(results.questions[0].mean, 4.0);
    let other = results_of(format!("campaigns/{}", uuid::Uuid::now_v7()));
    let none = questionnaires.get_questionnaire_results(other).await.unwrap().into_inner().results.unwrap();
    assert_eq!((none.invited, none.answered), (0, 0));
}
