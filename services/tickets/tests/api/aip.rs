//! The AIP contract of every resource: each List pages (AIP-158), each
//! mutable resource has an etag that refuses a stale write (AIP-154) and a
//! Get/Update, each Create takes a request id (AIP-155).

use std::collections::HashSet;

use crm_proto::crm::tickets::v1::{
    self as pb, article_service_client::ArticleServiceClient, classification_rule_service_client::ClassificationRuleServiceClient,
    follow_up_service_client::FollowUpServiceClient, team_service_client::TeamServiceClient,
};
use tonic::Code;

use crate::{
    helpers::{TestApp, assert_error, spawn_app},
    sla::{client as sla, create_calendar, hours, office_calendar, policy},
    teams::{set_member, team},
};

/// Follows `next_page_token` from the first page to the last; returns every
/// item's name and how many pages it took.
async fn all_pages<F, Fut>(mut fetch: F) -> (Vec<String>, usize)
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = (Vec<String>, String)>,
{
    let (mut names, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let (items, next) = fetch(token).await;
        pages += 1;
        names.extend(items);
        if next.is_empty() {
            return (names, pages);
        }
        token = next;
    }
}

/// Three items in pages of two: two pages, every item exactly once.
fn assert_paged(list: &str, (names, pages): (Vec<String>, usize), expected: usize) {
    assert_eq!(pages, expected.div_ceil(2), "{list}: pages of 2");
    assert_eq!(names.len(), expected, "{list}: {names:?}");
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), expected, "{list}: each item once");
}

fn rule(name: &str) -> pb::ClassificationRule {
    pb::ClassificationRule { display_name: name.into(), set_category: name.to_lowercase(), ..Default::default() }
}

async fn create_rule(suite: &TestApp, name: &str) -> pb::ClassificationRule {
    let request = suite.admin(pb::CreateClassificationRuleRequest { rule: Some(rule(name)), request_id: String::new() });
    ClassificationRuleServiceClient::new(suite.channel.clone())
        .create_classification_rule(request)
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap()
}

#[tokio::test]
async fn every_list_pages_with_tokens() {
    // Arrange: three of everything.
    let suite = spawn_app().await;
    let teams: Vec<String> = futures::future::join_all(["A", "B", "C"].map(|n| team(&suite, n, pb::AssignmentStrategy::Manual))).await;
    for agent in ["ann", "bea", "cid"] {
        set_member(&suite, &teams[0], agent, 5, &[], true).await;
    }
    for name in ["Office 1", "Office 2", "Office 3"] {
        create_calendar(&suite, pb::BusinessCalendar { display_name: name.into(), ..office_calendar("Asia/Shanghai", vec![]) }).await;
    }
    for priority in [pb::Priority::Urgent, pb::Priority::High, pb::Priority::Normal] {
        policy(&suite, priority, "", "", hours(1).unwrap(), hours(8).unwrap(), 0.8).await;
    }
    for name in ["One", "Two", "Three"] {
        create_rule(&suite, name).await;
    }
    let customer = suite.customer("Ada").await;
    let mut resolved = Vec::new();
    for subject in ["x", "y", "z"] {
        let ticket = suite.open(&customer, subject).await;
        resolved.push(suite.transition(&ticket.name, pb::Status::Resolved).await.unwrap());
    }
    let talked = &resolved[0].name;
    for body in ["first", "second", "third"] {
        suite.comment(talked, body, true).await;
    }
    let articles = ArticleServiceClient::new(suite.channel.clone());
    let article = articles
        .clone()
        .create_article(suite.admin(pb::CreateArticleRequest {
            article: Some(pb::Article { title: "v1".into(), body: "b".into(), ..Default::default() }),
            request_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    for title in ["v2", "v3"] {
        let edit = pb::Article { name: article.name.clone(), title: title.into(), ..Default::default() };
        let mask = prost_types::FieldMask { paths: vec!["title".into()] };
        articles
            .clone()
            .update_article(suite.admin(pb::UpdateArticleRequest { article: Some(edit), update_mask: Some(mask) }))
            .await
            .unwrap();
    }

    // Act + Assert: every List, in pages of two.
    let team_client = TeamServiceClient::new(suite.channel.clone());
    let listed = all_pages(|page_token| {
        let (mut client, request) = (team_client.clone(), suite.admin(pb::ListTeamsRequest { page_size: 2, page_token }));
        async move {
            let page = client.list_teams(request).await.unwrap().into_inner();
            (page.teams.into_iter().map(|t| t.name).collect(), page.next_page_token)
        }
    })
    .await;
    assert_paged("ListTeams", listed, 3);
    let listed = all_pages(|page_token| {
        let request = suite.admin(pb::ListTeamMembersRequest { parent: teams[0].clone(), page_size: 2, page_token });
        let mut client = team_client.clone();
        async move {
            let page = client.list_team_members(request).await.unwrap().into_inner();
            (page.members.into_iter().map(|m| m.name).collect(), page.next_page_token)
        }
    })
    .await;
    assert_paged("ListTeamMembers", listed, 3);
    let listed = all_pages(|page_token| {
        let (mut client, request) = (sla(&suite), suite.admin(pb::ListBusinessCalendarsRequest { page_size: 2, page_token }));
        async move {
            let page = client.list_business_calendars(request).await.unwrap().into_inner();
            (page.calendars.into_iter().map(|c| c.name).collect(), page.next_page_token)
        }
    })
    .await;
    assert_paged("ListBusinessCalendars", listed, 3);
    let listed = all_pages(|page_token| {
        let (mut client, request) = (sla(&suite), suite.admin(pb::ListSlaPoliciesRequest { page_size: 2, page_token }));
        async move {
            let page = client.list_sla_policies(request).await.unwrap().into_inner();
            (page.policies.into_iter().map(|p| p.name).collect(), page.next_page_token)
        }
    })
    .await;
    assert_paged("ListSlaPolicies", listed, 3);
    let rules = ClassificationRuleServiceClient::new(suite.channel.clone());
    let listed = all_pages(|page_token| {
        let (mut client, request) = (rules.clone(), suite.admin(pb::ListClassificationRulesRequest { page_size: 2, page_token }));
        async move {
            let page = client.list_classification_rules(request).await.unwrap().into_inner();
            (page.rules.into_iter().map(|r| r.name).collect(), page.next_page_token)
        }
    })
    .await;
    assert_paged("ListClassificationRules", listed, 3);
    let follow_ups = FollowUpServiceClient::new(suite.channel.clone());
    let listed = all_pages(|page_token| {
        let request = suite.admin(pb::ListFollowUpsRequest { page_size: 2, page_token, ..Default::default() });
        let mut client = follow_ups.clone();
        async move {
            let page = client.list_follow_ups(request).await.unwrap().into_inner();
            (page.follow_ups.into_iter().map(|f| f.name).collect(), page.next_page_token)
        }
    })
    .await;
    assert_paged("ListFollowUps", listed, 3);
    let listed = all_pages(|page_token| {
        let request = suite.admin(pb::ListCommentsRequest { parent: talked.clone(), page_size: 2, page_token, include_internal: false });
        let mut client = suite.tickets.clone();
        async move {
            let page = client.list_comments(request).await.unwrap().into_inner();
            (page.comments.into_iter().map(|c| c.name).collect(), page.next_page_token)
        }
    })
    .await;
    assert_paged("ListComments", listed, 3);
    let timeline = suite.timeline(talked).await;
    let listed = all_pages(|page_token| {
        let request = suite.admin(pb::ListTicketEventsRequest { parent: talked.clone(), page_size: 2, page_token });
        let mut client = suite.tickets.clone();
        async move {
            let page = client.list_ticket_events(request).await.unwrap().into_inner();
            (page.events.into_iter().map(|e| e.name).collect(), page.next_page_token)
        }
    })
    .await;
    assert_eq!(listed.0, timeline.iter().map(|e| e.name.clone()).collect::<Vec<_>>(), "the same timeline, in order, in pages");
    let listed = all_pages(|page_token| {
        let request = suite.admin(pb::ListArticleVersionsRequest { parent: article.name.clone(), page_size: 2, page_token });
        let mut client = articles.clone();
        async move {
            let page = client.list_article_versions(request).await.unwrap().into_inner();
            (page.versions.into_iter().map(|v| v.title).collect(), page.next_page_token)
        }
    })
    .await;
    assert_eq!(listed.0, ["v3", "v2", "v1"], "newest first across pages");

    // A token is bound to its query: another team's members refuse it.
    let first = team_client
        .clone()
        .list_team_members(suite.admin(pb::ListTeamMembersRequest { parent: teams[0].clone(), page_size: 1, page_token: String::new() }))
        .await
        .unwrap()
        .into_inner();
    let replayed = team_client
        .clone()
        .list_team_members(suite.admin(pb::ListTeamMembersRequest {
            parent: teams[1].clone(),
            page_size: 1,
            page_token: first.next_page_token,
        }))
        .await;
    assert_error(replayed, Code::InvalidArgument, "PAGE_TOKEN_MISMATCH");
}

#[tokio::test]
async fn configuration_resources_have_etags_gets_and_updates() {
    let suite = spawn_app().await;

    // Team: update with the current etag, then a stale one is ABORTED.
    let mut teams = TeamServiceClient::new(suite.channel.clone());
    let name = team(&suite, "Billing", pb::AssignmentStrategy::RoundRobin).await;
    let current = teams.get_team(suite.admin(pb::GetTeamRequest { name: name.clone() })).await.unwrap().into_inner().team.unwrap();
    let rename = |etag: &str| pb::UpdateTeamRequest {
        team: Some(pb::Team {
            name: name.clone(),
            display_name: "Billing desk".into(),
            lead: "lee".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into(), "lead".into()] }),
    };
    let updated = teams.update_team(suite.admin(rename(&current.etag))).await.unwrap().into_inner().team.unwrap();
    assert_eq!((updated.display_name.as_str(), updated.lead.as_str()), ("Billing desk", "lee"));
    assert_eq!(updated.assignment_strategy, pb::AssignmentStrategy::RoundRobin as i32, "fields outside the mask are kept");
    assert_ne!(updated.etag, current.etag);
    assert_error(teams.update_team(suite.admin(rename(&current.etag))).await, Code::Aborted, "ETAG_MISMATCH");

    // Classification rule: Get, Update, stale Delete refused.
    let mut rules = ClassificationRuleServiceClient::new(suite.channel.clone());
    let created = create_rule(&suite, "Refunds");
    let created = created.await;
    let got = rules.get_classification_rule(suite.admin(pb::GetClassificationRuleRequest { name: created.name.clone() })).await.unwrap();
    assert_eq!(got.into_inner().rule.unwrap(), created);
    let moved = rules
        .update_classification_rule(suite.admin(pb::UpdateClassificationRuleRequest {
            rule: Some(pb::ClassificationRule {
                name: created.name.clone(),
                position: 7,
                etag: created.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["position".into()] }),
        }))
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!((moved.position, moved.set_category.as_str()), (7, "refunds"));
    let stale_delete = rules
        .delete_classification_rule(suite.admin(pb::DeleteClassificationRuleRequest { name: created.name.clone(), etag: created.etag }));
    assert_error(stale_delete.await, Code::Aborted, "ETAG_MISMATCH");
    rules
        .delete_classification_rule(suite.admin(pb::DeleteClassificationRuleRequest { name: created.name, etag: moved.etag }))
        .await
        .unwrap();

    // SLA policy: Get and Update; a stale etag is ABORTED.
    let mut policies = sla(&suite);
    let name = policy(&suite, pb::Priority::High, "", "", hours(1).unwrap(), hours(8).unwrap(), 0.8).await;
    let current =
        policies.get_sla_policy(suite.admin(pb::GetSlaPolicyRequest { name: name.clone() })).await.unwrap().into_inner().policy.unwrap();
    let faster = |etag: &str| pb::UpdateSlaPolicyRequest {
        policy: Some(pb::SlaPolicy { name: name.clone(), first_response_target: hours(2), etag: etag.into(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["first_response_target".into()] }),
    };
    let updated = policies.update_sla_policy(suite.admin(faster(&current.etag))).await.unwrap().into_inner().policy.unwrap();
    assert_eq!(updated.first_response_target, hours(2));
    assert_eq!((updated.priority, updated.resolution_target), (current.priority, current.resolution_target));
    assert_error(policies.update_sla_policy(suite.admin(faster(&current.etag))).await, Code::Aborted, "ETAG_MISMATCH");

    // Business calendar: its etag guards updates too.
    let calendar = create_calendar(&suite, office_calendar("Asia/Shanghai", vec![])).await;
    let current = policies
        .get_business_calendar(suite.admin(pb::GetBusinessCalendarRequest { name: calendar.clone() }))
        .await
        .unwrap()
        .into_inner()
        .calendar
        .unwrap();
    let rename = |etag: &str| pb::UpdateBusinessCalendarRequest {
        calendar: Some(pb::BusinessCalendar {
            name: calendar.clone(),
            display_name: "Shanghai office".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
    };
    let renamed = policies.update_business_calendar(suite.admin(rename(&current.etag))).await.unwrap().into_inner().calendar.unwrap();
    assert_ne!(renamed.etag, current.etag);
    assert_error(policies.update_business_calendar(suite.admin(rename(&current.etag))).await, Code::Aborted, "ETAG_MISMATCH");
}

#[tokio::test]
async fn every_create_takes_a_request_id() {
    let suite = spawn_app().await;
    let mut teams = TeamServiceClient::new(suite.channel.clone());
    let create = |name: &str| {
        suite.admin(pb::CreateTeamRequest {
            team: Some(pb::Team { display_name: name.into(), ..Default::default() }),
            request_id: "team-7".into(),
        })
    };
    let first = teams.create_team(create("Support")).await.unwrap().into_inner().team.unwrap();
    let retried = teams.create_team(create("Support")).await.unwrap().into_inner().team.unwrap();
    assert_eq!(retried, first, "a retry returns the first response");
    assert_error(teams.create_team(create("Sales")).await, Code::InvalidArgument, "REQUEST_ID_REUSED");
    let listed = teams.list_teams(suite.admin(pb::ListTeamsRequest::default())).await.unwrap().into_inner().teams;
    assert_eq!(listed.len(), 1, "one team made");

    // A comment too: a retried reply is posted once.
    let ticket = suite.open(&suite.customer("Ada").await, "Invoice").await;
    let reply = || {
        suite.admin(pb::AddCommentRequest {
            parent: ticket.name.clone(),
            comment: Some(pb::Comment { body: "On it".into(), public: true, ..Default::default() }),
            request_id: "reply-1".into(),
        })
    };
    let first = suite.tickets.clone().add_comment(reply()).await.unwrap().into_inner();
    let again = suite.tickets.clone().add_comment(reply()).await.unwrap().into_inner();
    assert_eq!(again, first);
    assert_eq!(suite.comments(&ticket.name).await.len(), 1);
}
