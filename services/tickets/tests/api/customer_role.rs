//! The `customer` role (OWASP API1/API3): a customer opens tickets for
//! itself, reads and publicly answers its own tickets, reads published
//! articles, and reaches nothing else.

use crm_proto::crm::{
    events::v1::{SubscribeRequest, event_service_client::EventServiceClient},
    tickets::v1::{
        self as pb, article_service_client::ArticleServiceClient, classification_rule_service_client::ClassificationRuleServiceClient,
        follow_up_service_client::FollowUpServiceClient, report_service_client::ReportServiceClient,
        sla_policy_service_client::SlaPolicyServiceClient, survey_service_client::SurveyServiceClient,
        team_service_client::TeamServiceClient,
    },
};
use crm_testkit::auth::{customer_token, with_token};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::helpers::{TestApp, assert_error, spawn_app};

/// Customers A and B, each with a ticket opened by an agent, and A's token.
struct Two {
    suite: TestApp,
    a: String,
    b: String,
    a_ticket: pb::Ticket,
    b_ticket: pb::Ticket,
    a_token: String,
}

async fn two_customers() -> Two {
    let suite = spawn_app().await;
    let a = suite.customer("Ada").await;
    let b = suite.customer("Bob").await;
    let a_ticket = suite.open(&a, "Ada's printer").await;
    let b_ticket = suite.open(&b, "Bob's secret").await;
    let a_token = customer_token(suite.tenant, &a);
    Two { suite, a, b, a_ticket, b_ticket, a_token }
}

impl Two {
    fn as_a<T>(&self, message: T) -> Request<T> {
        with_token(message, &self.a_token)
    }

    async fn a_creates(&self, ticket: pb::Ticket) -> Result<pb::Ticket, Status> {
        let request = self.as_a(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() });
        Ok(self.suite.tickets.clone().create_ticket(request).await?.into_inner().ticket.unwrap())
    }

    async fn a_lists(&self, filter: &str) -> Result<Vec<String>, Status> {
        let request = self.as_a(pb::ListTicketsRequest { filter: filter.into(), ..Default::default() });
        Ok(self.suite.tickets.clone().list_tickets(request).await?.into_inner().tickets.into_iter().map(|t| t.name).collect())
    }
}

fn permission(status: &Status) -> String {
    status.get_error_details().error_info().and_then(|i| i.metadata.get("permission").cloned()).unwrap_or_default()
}

/// Asserts a call was refused with PERMISSION_DENIED.
macro_rules! denied {
    ($call:expr) => {
        assert_error($call.await.map(|_| ()), Code::PermissionDenied, "PERMISSION_DENIED")
    };
}

/// Asserts a call answered NOT_FOUND.
macro_rules! hidden {
    ($call:expr) => {
        assert_error($call.await.map(|_| ()), Code::NotFound, "NOT_FOUND")
    };
}

#[tokio::test]
async fn a_customer_opens_reads_lists_and_answers_its_own_tickets() {
    let t = two_customers().await;
    let mut tickets = t.suite.tickets.clone();

    let opened = t
        .a_creates(pb::Ticket {
            customer: t.a.clone(),
            subject: "The app crashes".into(),
            description: "On login".into(),
            r#type: pb::TicketType::Problem as i32,
            channel: pb::Channel::Web as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    // Triage (the default NORMAL priority here) is staff-only: a customer does not see it.
    assert_eq!((opened.customer.as_str(), opened.priority), (t.a.as_str(), pb::Priority::Unspecified as i32));
    let got = tickets.get_ticket(t.as_a(pb::GetTicketRequest { name: opened.name.clone() })).await.unwrap().into_inner();
    assert_eq!(got.ticket.unwrap().subject, "The app crashes");

    // The list holds A's tickets only, whatever the filter says.
    let mut own = t.a_lists("").await.unwrap();
    own.sort();
    let mut expected = vec![t.a_ticket.name.clone(), opened.name.clone()];
    expected.sort();
    assert_eq!(own, expected);
    assert!(t.a_lists(&format!(r#"customer = "{}""#, t.b)).await.unwrap().is_empty());
    let widened = t.a_lists(&format!(r#"customer = "{}" OR status = NEW OR NOT status = NEW"#, t.b)).await.unwrap();
    assert_eq!(widened.len(), 2, "an OR cannot widen the list: {widened:?}");
    assert!(!widened.contains(&t.b_ticket.name));
    let deleted = tickets.list_tickets(t.as_a(pb::ListTicketsRequest { show_deleted: true, ..Default::default() })).await;
    denied!(async { deleted });

    // Public replies in, public comments out; the author is the customer.
    t.suite.comment(&t.a_ticket.name, "internal: customer is grumpy", false).await;
    t.suite.comment(&t.a_ticket.name, "We are looking into it", true).await;
    let reply = pb::Comment { body: "Thanks!".into(), public: true, ..Default::default() };
    let added = tickets
        .add_comment(t.as_a(pb::AddCommentRequest { request_id: String::new(), parent: t.a_ticket.name.clone(), comment: Some(reply) }))
        .await
        .unwrap()
        .into_inner()
        .comment
        .unwrap();
    assert_eq!(added.author, t.a);
    let listed = tickets
        .list_comments(t.as_a(pb::ListCommentsRequest {
            page_size: 0,
            page_token: String::new(),
            parent: t.a_ticket.name.clone(),
            include_internal: false,
        }))
        .await
        .unwrap()
        .into_inner()
        .comments;
    let bodies: Vec<&str> = listed.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies, ["We are looking into it", "Thanks!"]);
    let internal = tickets
        .list_comments(t.as_a(pb::ListCommentsRequest {
            page_size: 0,
            page_token: String::new(),
            parent: t.a_ticket.name.clone(),
            include_internal: true,
        }))
        .await;
    denied!(async { internal });

    // A customer's own message is not the service's first response.
    let fresh = t.a_creates(pb::Ticket { customer: t.a.clone(), subject: "Another".into(), ..Default::default() }).await.unwrap();
    let note = pb::Comment { body: "More details".into(), public: true, ..Default::default() };
    tickets
        .add_comment(t.as_a(pb::AddCommentRequest { request_id: String::new(), parent: fresh.name.clone(), comment: Some(note) }))
        .await
        .unwrap();
    assert!(t.suite.get(&fresh.name).await.first_response_time.is_none());
}

#[tokio::test]
async fn a_customer_opens_tickets_for_itself_only_and_leaves_triage_to_the_service() {
    let t = two_customers().await;
    let base = pb::Ticket { customer: t.a.clone(), subject: "Help".into(), ..Default::default() };

    let status = t.a_creates(pb::Ticket { customer: t.b.clone(), ..base.clone() }).await.unwrap_err();
    assert_eq!((status.code(), permission(&status).as_str()), (Code::PermissionDenied, "tickets.create.customer"));
    let missing = format!("customers/{}", uuid::Uuid::now_v7());
    denied!(t.a_creates(pb::Ticket { customer: missing, ..base.clone() }));

    for (ticket, field) in [
        (pb::Ticket { priority: pb::Priority::Urgent as i32, ..base.clone() }, "priority"),
        (pb::Ticket { category: "billing".into(), ..base.clone() }, "category"),
        (pb::Ticket { tags: vec!["vip".into()], ..base.clone() }, "tags"),
        (pb::Ticket { assignee: "agent-1".into(), ..base.clone() }, "assignee"),
        (pb::Ticket { team: format!("teams/{}", uuid::Uuid::now_v7()), ..base.clone() }, "team"),
    ] {
        let status = t.a_creates(ticket).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(permission(&status), format!("tickets.create.{field}"));
    }
    // Nothing was opened by the refused calls.
    assert_eq!(t.a_lists("").await.unwrap(), vec![t.a_ticket.name.clone()]);
}

#[tokio::test]
async fn a_customer_reaches_no_other_customers_ticket_through_any_rpc() {
    let t = two_customers().await;
    let mut tickets = t.suite.tickets.clone();
    let b = t.b_ticket.name.clone();
    let comments_before = t.suite.comments(&b).await;

    // Reads and replies that a customer may do on its own tickets are NOT_FOUND on B's.
    hidden!(tickets.get_ticket(t.as_a(pb::GetTicketRequest { name: b.clone() })));
    hidden!(tickets.list_comments(t.as_a(pb::ListCommentsRequest {
        page_size: 0,
        page_token: String::new(),
        parent: b.clone(),
        include_internal: false
    })));
    let reply = pb::Comment { body: "hi Bob".into(), public: true, ..Default::default() };
    hidden!(tickets.add_comment(t.as_a(pb::AddCommentRequest { request_id: String::new(), parent: b.clone(), comment: Some(reply) })));

    // Everything else is refused outright, on B's ticket and on A's own alike.
    for name in [b.clone(), t.a_ticket.name.clone()] {
        let note = pb::Comment { body: "note".into(), public: false, ..Default::default() };
        denied!(tickets.add_comment(t.as_a(pb::AddCommentRequest {
            request_id: String::new(),
            parent: name.clone(),
            comment: Some(note)
        })));
        let update =
            pb::Ticket { name: name.clone(), subject: "mine now".into(), priority: pb::Priority::Urgent as i32, ..Default::default() };
        let mask = prost_types::FieldMask { paths: vec!["subject".into(), "priority".into()] };
        denied!(tickets.update_ticket(t.as_a(pb::UpdateTicketRequest { ticket: Some(update), update_mask: Some(mask) })));
        denied!(tickets.assign_ticket(t.as_a(pb::AssignTicketRequest { name: name.clone(), assignee: "me".into(), ..Default::default() })));
        denied!(tickets.transition_ticket(t.as_a(pb::TransitionTicketRequest {
            name: name.clone(),
            status: pb::Status::Closed as i32,
            ..Default::default()
        })));
        denied!(tickets.delete_ticket(t.as_a(pb::DeleteTicketRequest { name: name.clone(), etag: String::new() })));
        denied!(tickets.undelete_ticket(t.as_a(pb::UndeleteTicketRequest { name: name.clone(), etag: String::new() })));
        denied!(tickets.list_ticket_events(t.as_a(pb::ListTicketEventsRequest {
            page_size: 0,
            page_token: String::new(),
            parent: name.clone()
        })));
    }
    denied!(tickets.merge_tickets(t.as_a(pb::MergeTicketsRequest {
        name: t.a_ticket.name.clone(),
        source_tickets: vec![b.clone()],
        etag: String::new()
    })));
    denied!(tickets.merge_tickets(t.as_a(pb::MergeTicketsRequest {
        name: b.clone(),
        source_tickets: vec![t.a_ticket.name.clone()],
        etag: String::new()
    })));

    // B's ticket is exactly as it was.
    assert_eq!(t.suite.get(&b).await, t.b_ticket);
    assert_eq!(t.suite.comments(&b).await, comments_before);

    // A deleted ticket of A's own no longer exists for A.
    let delete = t.suite.admin(pb::DeleteTicketRequest { name: t.a_ticket.name.clone(), etag: String::new() });
    tickets.delete_ticket(delete).await.unwrap();
    hidden!(tickets.get_ticket(t.as_a(pb::GetTicketRequest { name: t.a_ticket.name.clone() })));
    assert!(t.a_lists("").await.unwrap().is_empty());
}

#[tokio::test]
async fn every_other_tickets_service_refuses_a_customer_but_published_articles_are_readable() {
    let t = two_customers().await;
    let channel = t.suite.channel.clone();
    let a_ticket = t.a_ticket.name.clone();

    let mut teams = TeamServiceClient::new(channel.clone());
    denied!(teams.create_team(t.as_a(pb::CreateTeamRequest::default())));
    denied!(teams.get_team(t.as_a(pb::GetTeamRequest::default())));
    denied!(teams.list_teams(t.as_a(pb::ListTeamsRequest::default())));
    denied!(teams.set_team_member(t.as_a(pb::SetTeamMemberRequest::default())));
    denied!(teams.remove_team_member(t.as_a(pb::RemoveTeamMemberRequest::default())));
    denied!(teams.list_team_members(t.as_a(pb::ListTeamMembersRequest::default())));
    let mut rules = ClassificationRuleServiceClient::new(channel.clone());
    denied!(rules.create_classification_rule(t.as_a(pb::CreateClassificationRuleRequest::default())));
    denied!(rules.list_classification_rules(t.as_a(pb::ListClassificationRulesRequest::default())));
    denied!(rules.delete_classification_rule(t.as_a(pb::DeleteClassificationRuleRequest::default())));
    let mut sla = SlaPolicyServiceClient::new(channel.clone());
    denied!(sla.create_business_calendar(t.as_a(pb::CreateBusinessCalendarRequest::default())));
    denied!(sla.get_business_calendar(t.as_a(pb::GetBusinessCalendarRequest::default())));
    denied!(sla.list_business_calendars(t.as_a(pb::ListBusinessCalendarsRequest::default())));
    denied!(sla.update_business_calendar(t.as_a(pb::UpdateBusinessCalendarRequest::default())));
    denied!(sla.delete_business_calendar(t.as_a(pb::DeleteBusinessCalendarRequest::default())));
    denied!(sla.create_sla_policy(t.as_a(pb::CreateSlaPolicyRequest::default())));
    denied!(sla.list_sla_policies(t.as_a(pb::ListSlaPoliciesRequest::default())));
    denied!(sla.delete_sla_policy(t.as_a(pb::DeleteSlaPolicyRequest::default())));
    let mut follow_ups = FollowUpServiceClient::new(channel.clone());
    denied!(follow_ups.list_follow_ups(t.as_a(pb::ListFollowUpsRequest::default())));
    denied!(follow_ups.complete_follow_up(t.as_a(pb::CompleteFollowUpRequest::default())));
    let mut surveys = SurveyServiceClient::new(channel.clone());
    denied!(surveys.get_ticket_survey(t.as_a(pb::GetTicketSurveyRequest { ticket: a_ticket.clone() })));
    denied!(surveys.get_satisfaction_summary(t.as_a(pb::GetSatisfactionSummaryRequest::default())));
    denied!(ReportServiceClient::new(channel.clone()).get_service_metrics(t.as_a(pb::GetServiceMetricsRequest::default())));
    denied!(EventServiceClient::new(channel.clone()).subscribe(t.as_a(SubscribeRequest::default())));

    // The help center: published articles are readable and searchable, nothing more.
    let mut articles = ArticleServiceClient::new(channel);
    let create = |title: &str, status: pb::ArticleStatus| {
        let article = pb::Article {
            title: title.into(),
            body: "reset your password".into(),
            locale: "en".into(),
            status: status as i32,
            ..Default::default()
        };
        t.suite.admin(pb::CreateArticleRequest { request_id: String::new(), article: Some(article) })
    };
    let published =
        articles.create_article(create("Password help", pb::ArticleStatus::Published)).await.unwrap().into_inner().article.unwrap();
    let draft = articles.create_article(create("Draft", pb::ArticleStatus::Draft)).await.unwrap().into_inner().article.unwrap();
    articles.get_article(t.as_a(pb::GetArticleRequest { name: published.name.clone() })).await.unwrap();
    hidden!(articles.get_article(t.as_a(pb::GetArticleRequest { name: draft.name.clone() })));
    let search =
        |include_unpublished| t.as_a(pb::SearchArticlesRequest { query: "password".into(), include_unpublished, ..Default::default() });
    let hits = articles.search_articles(search(false)).await.unwrap().into_inner().hits;
    assert_eq!(hits.iter().map(|h| h.article.as_ref().unwrap().title.as_str()).collect::<Vec<_>>(), ["Password help"]);
    denied!(articles.search_articles(search(true)));
    denied!(articles.create_article(t.as_a(pb::CreateArticleRequest::default())));
    denied!(articles.update_article(t.as_a(pb::UpdateArticleRequest::default())));
    denied!(articles.list_article_versions(t.as_a(pb::ListArticleVersionsRequest {
        page_size: 0,
        page_token: String::new(),
        parent: published.name.clone()
    })));
    denied!(articles.suggest_articles(t.as_a(pb::SuggestArticlesRequest { ticket: a_ticket.clone() })));
    denied!(articles.link_article_to_ticket(t.as_a(pb::LinkArticleToTicketRequest { ticket: a_ticket, article: published.name })));
}
