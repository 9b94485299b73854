//! The tenant's service-desk settings: the follow-up delay is the tenant's
//! own where set, the service default elsewhere.

use crm_proto::crm::tickets::v1::{
    self as pb, follow_up_service_client::FollowUpServiceClient, ticket_settings_service_client::TicketSettingsServiceClient,
};
use prost_types::{Duration, FieldMask};
use tonic::Code;

use crate::helpers::{TestApp, assert_error, spawn_app};

fn client(suite: &TestApp) -> TicketSettingsServiceClient<tonic::transport::Channel> {
    TicketSettingsServiceClient::new(suite.channel.clone())
}

async fn get(suite: &TestApp, roles: &[&str]) -> Result<pb::TicketSettings, tonic::Status> {
    let request = suite.as_roles(pb::GetTicketSettingsRequest { name: "ticketSettings".into() }, roles);
    client(suite).get_ticket_settings(request).await.map(|r| r.into_inner().settings.unwrap())
}

fn update(delay: Option<i64>, etag: &str) -> pb::UpdateTicketSettingsRequest {
    pb::UpdateTicketSettingsRequest {
        settings: Some(pb::TicketSettings {
            name: "ticketSettings".into(),
            follow_up_delay: delay.map(|seconds| Duration { seconds, nanos: 0 }),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask { paths: vec!["follow_up_delay".into()] }),
    }
}

/// Resolves a new ticket of alice's and returns when its follow-up falls due, in seconds after the resolution.
async fn follow_up_after(suite: &TestApp) -> i64 {
    let ticket = suite.open(&suite.customer("Ada").await, "Broken").await;
    let assign = pb::AssignTicketRequest { name: ticket.name.clone(), assignee: "alice".into(), team: String::new(), etag: String::new() };
    suite.tickets.clone().assign_ticket(suite.admin(assign)).await.unwrap();
    let resolved = suite.transition(&ticket.name, pb::Status::Resolved).await.unwrap();
    let request = suite.admin(pb::ListFollowUpsRequest { agent: "alice".into(), include_closed: true, ..Default::default() });
    let follow_ups = FollowUpServiceClient::new(suite.channel.clone()).list_follow_ups(request).await.unwrap().into_inner().follow_ups;
    let follow_up = follow_ups.iter().find(|f| f.ticket == ticket.name).expect("a follow-up");
    follow_up.due_time.as_ref().unwrap().seconds - resolved.resolve_time.as_ref().unwrap().seconds
}

#[tokio::test]
async fn the_follow_up_delay_is_the_tenants_own_where_set() {
    let suite = spawn_app().await;
    // Nothing set: the service default (0 in the tests' configuration), readable by staff.
    let defaults = get(&suite, &["agent"]).await.unwrap();
    assert_eq!((defaults.follow_up_delay.as_ref().map(|d| d.seconds), defaults.follow_up_delay_set), (Some(0), false));
    assert!(defaults.update_time.is_none());
    assert!(follow_up_after(&suite).await.abs() <= 1);

    // Admins set it; the next resolution follows it.
    let two_days = 2 * 86_400;
    let set = client(&suite).update_ticket_settings(suite.admin(update(Some(two_days), &defaults.etag))).await.unwrap();
    let set = set.into_inner().settings.unwrap();
    assert_eq!((set.follow_up_delay.as_ref().map(|d| d.seconds), set.follow_up_delay_set), (Some(two_days), true));
    assert!(set.update_time.is_some());
    assert!((follow_up_after(&suite).await - two_days).abs() <= 1, "due two days after the resolution");

    // Another tenant keeps the default.
    let other = crm_testkit::auth::token(uuid::Uuid::now_v7(), &["admin"]);
    let request = crm_testkit::auth::with_token(pb::GetTicketSettingsRequest { name: "ticketSettings".into() }, &other);
    let theirs = client(&suite).get_ticket_settings(request).await.unwrap().into_inner().settings.unwrap();
    assert_eq!((theirs.follow_up_delay.as_ref().map(|d| d.seconds), theirs.follow_up_delay_set), (Some(0), false));

    // A stale etag, a bad value, a non-admin, a wrong name: refused, nothing changed.
    let stale = client(&suite).update_ticket_settings(suite.admin(update(Some(60), &defaults.etag))).await;
    assert_error(stale, Code::Aborted, "ETAG_MISMATCH");
    for bad in [-1, 366 * 86_400] {
        let refused = client(&suite).update_ticket_settings(suite.admin(update(Some(bad), ""))).await;
        assert_error(refused, Code::InvalidArgument, "INVALID_DELAY");
    }
    let by_agent = client(&suite).update_ticket_settings(suite.as_roles(update(Some(60), ""), &["agent"])).await;
    assert_error(by_agent, Code::PermissionDenied, "PERMISSION_DENIED");
    let misnamed = client(&suite).get_ticket_settings(suite.admin(pb::GetTicketSettingsRequest { name: "settings".into() })).await;
    assert_error(misnamed, Code::InvalidArgument, "INVALID_NAME");
    assert_eq!(get(&suite, &["admin"]).await.unwrap().follow_up_delay.unwrap().seconds, two_days);

    // Named in the mask without a value: back to the default.
    let reset = client(&suite).update_ticket_settings(suite.admin(update(None, &set.etag))).await.unwrap().into_inner().settings.unwrap();
    assert_eq!((reset.follow_up_delay.map(|d| d.seconds), reset.follow_up_delay_set), (Some(0), false));
}
