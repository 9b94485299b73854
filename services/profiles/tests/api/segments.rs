//! Segments: a dynamic segment follows its customers in their own
//! transactions (entries and exits announced, counts exact under concurrent
//! writers), a new filter refills it, static segments change by name, and
//! previews, membership checks and limits answer as documented.

use crm_proto::crm::profiles::v1::{self as pb, segment_service_client::SegmentServiceClient};
use prost::Message;
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

fn client(app: &TestApp) -> SegmentServiceClient<Channel> {
    SegmentServiceClient::new(app.channel.clone())
}

async fn create(app: &TestApp, kind: pb::SegmentKind, filter: &str) -> Result<pb::Segment, tonic::Status> {
    let segment =
        pb::Segment { display_name: format!("{kind:?} {filter}"), kind: kind as i32, filter: filter.into(), ..Default::default() };
    Ok(client(app)
        .create_segment(app.as_roles(pb::CreateSegmentRequest { segment: Some(segment), request_id: String::new() }, &["marketer"]))
        .await?
        .into_inner()
        .segment
        .unwrap())
}

async fn count(app: &TestApp, segment: &pb::Segment) -> i64 {
    client(app)
        .get_segment(app.as_roles(pb::GetSegmentRequest { name: segment.name.clone() }, &["readonly"]))
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap()
        .member_count
}

async fn members(app: &TestApp, segment: &pb::Segment) -> Vec<String> {
    let request = pb::ListSegmentMembersRequest { segment: segment.name.clone(), page_size: 1000, ..Default::default() };
    client(app).list_segment_members(app.admin(request)).await.unwrap().into_inner().customers.into_iter().map(|c| c.name).collect()
}

async fn tag(app: &TestApp, name: &str, tags: &[&str]) {
    let customer = pb::Customer { name: name.into(), tags: tags.iter().map(|t| t.to_string()).collect(), ..Default::default() };
    let mask = prost_types::FieldMask { paths: vec!["tags".into()] };
    app.customers
        .clone()
        .update_customer(app.as_roles(pb::UpdateCustomerRequest { customer: Some(customer), update_mask: Some(mask) }, &["agent"]))
        .await
        .unwrap();
}

async fn tagged(app: &TestApp, name: &str, tags: &[&str]) -> pb::Customer {
    let mut c = customer(name, &format!("{}@example.com", name.to_lowercase()));
    c.tags = tags.iter().map(|t| t.to_string()).collect();
    app.create(c).await
}

#[tokio::test]
async fn a_dynamic_segment_follows_its_customers_and_announces_who_enters_and_leaves() {
    let app = spawn_app().await;
    let ada = tagged(&app, "Ada", &["gold"]).await;
    let bob = tagged(&app, "Bob", &["gold", "vip"]).await;
    let cy = tagged(&app, "Cy", &[]).await;
    let gold = create(&app, pb::SegmentKind::Dynamic, "tags:gold").await.unwrap();
    assert_eq!(gold.member_count, 2, "filled at creation");

    tag(&app, &cy.name, &["gold"]).await;
    assert_eq!(count(&app, &gold).await, 3);
    tag(&app, &ada.name, &["silver"]).await;
    assert_eq!(count(&app, &gold).await, 2);
    let check = pb::CheckMembershipRequest { customer: cy.name.clone() };
    assert_eq!(client(&app).check_membership(app.admin(check)).await.unwrap().into_inner().segments, [gold.name.as_str()]);

    app.customers
        .clone()
        .delete_customer(app.admin(pb::DeleteCustomerRequest { name: bob.name.clone(), etag: String::new() }))
        .await
        .unwrap();
    assert_eq!(count(&app, &gold).await, 1, "a deleted customer leaves");
    app.customers
        .clone()
        .undelete_customer(app.admin(pb::UndeleteCustomerRequest { name: bob.name.clone(), etag: String::new() }))
        .await
        .unwrap();
    assert_eq!(members(&app, &gold).await.len(), 2, "and comes back when undeleted");

    // A new filter refills it at once.
    let refilter = pb::UpdateSegmentRequest {
        segment: Some(pb::Segment { name: gold.name.clone(), filter: "tags:vip OR tags:silver".into(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["filter".into()] }),
    };
    let updated = client(&app).update_segment(app.as_roles(refilter, &["marketer"])).await.unwrap().into_inner().segment.unwrap();
    assert_eq!(updated.member_count, 2);
    let mut expected = vec![ada.name.clone(), bob.name.clone()];
    expected.sort();
    assert_eq!(members(&app, &gold).await, expected);

    let moves: Vec<pb::SegmentMembershipChanged> =
        crm_testkit::events::collect_of(&app.channel, &app.admin_token, 0, 6, &["crm.profiles.v1.SegmentMembershipChanged"])
            .await
            .iter()
            .map(|e| pb::SegmentMembershipChanged::decode(e.data.as_ref().unwrap().value.as_slice()).unwrap())
            .collect();
    let summary: Vec<(String, bool)> = moves.iter().map(|m| (m.customer.clone(), m.entered)).collect();
    assert_eq!(summary[..4], [(cy.name.clone(), true), (ada.name.clone(), false), (bob.name.clone(), false), (bob.name.clone(), true)]);
    let mut refill = summary[4..].to_vec();
    refill.sort();
    let mut expected_refill = vec![(ada.name.clone(), true), (cy.name.clone(), false)];
    expected_refill.sort();
    assert_eq!(refill, expected_refill, "the refill's moves");
    assert!(moves.iter().all(|m| m.segment == gold.name));
}

#[tokio::test]
async fn counts_stay_exact_under_concurrent_writers() {
    let app = spawn_app().await;
    let mut names = Vec::new();
    for i in 0..30 {
        names.push(tagged(&app, &format!("C{i}"), if i % 3 == 0 { &["vip"] } else { &[] }).await.name);
    }
    let vip = create(&app, pb::SegmentKind::Dynamic, "tags:vip").await.unwrap();
    let not_vip = create(&app, pb::SegmentKind::Dynamic, "NOT tags:vip").await.unwrap();
    assert_eq!((vip.member_count, not_vip.member_count), (10, 20));
    let writes = names.iter().enumerate().map(|(i, name)| {
        let app = &app;
        async move { tag(app, name, if i % 2 == 0 { &["vip"] } else { &[] }).await }
    });
    futures::future::join_all(writes).await;
    assert_eq!((count(&app, &vip).await, count(&app, &not_vip).await), (15, 15));
    assert_eq!(members(&app, &vip).await.len(), 15, "the count is the members'");
}

#[tokio::test]
async fn static_segments_previews_and_bad_input() {
    let app = spawn_app().await;
    let ada = tagged(&app, "Ada", &["gold"]).await;
    let bob = tagged(&app, "Bob", &[]).await;
    let list = create(&app, pb::SegmentKind::Static, "").await.unwrap();
    let add = |names: Vec<String>| pb::AddSegmentMembersRequest { segment: list.name.clone(), customers: names };
    let added = client(&app)
        .add_segment_members(app.as_roles(add(vec![ada.name.clone(), bob.name.clone(), ada.name.clone()]), &["agent"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((added.added_count, added.segment.unwrap().member_count), (2, 2));
    let remove = pb::RemoveSegmentMembersRequest { segment: list.name.clone(), customers: vec![bob.name.clone(), bob.name.clone()] };
    let removed = client(&app).remove_segment_members(app.as_roles(remove, &["agent"])).await.unwrap().into_inner();
    assert_eq!((removed.removed_count, removed.segment.unwrap().member_count), (1, 1));
    let unknown = format!("customers/{}", uuid::Uuid::now_v7());
    assert_error(client(&app).add_segment_members(app.as_roles(add(vec![unknown]), &["agent"])).await, Code::NotFound, "NOT_FOUND");
    assert_error(
        client(&app).add_segment_members(app.as_roles(add(vec![ada.name.clone()]), &["readonly"])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );

    let dynamic = create(&app, pb::SegmentKind::Dynamic, "tags:gold").await.unwrap();
    let to_dynamic = pb::AddSegmentMembersRequest { segment: dynamic.name.clone(), customers: vec![bob.name.clone()] };
    assert_error(client(&app).add_segment_members(app.admin(to_dynamic)).await, Code::FailedPrecondition, "NOT_STATIC");
    assert_error(create(&app, pb::SegmentKind::Static, "tags:gold").await, Code::InvalidArgument, "FILTER_ON_STATIC");
    assert_error(create(&app, pb::SegmentKind::Dynamic, "shoe_size > 9").await, Code::InvalidArgument, "INVALID_FILTER");

    let preview = pb::PreviewSegmentRequest { filter: "tags:gold OR display_name = Bo*".into(), sample_size: 1 };
    let answer = client(&app).preview_segment(app.as_roles(preview, &["analyst"])).await.unwrap().into_inner();
    assert_eq!((answer.member_count, answer.sample.len()), (2, 1));
    let by_email = pb::PreviewSegmentRequest { filter: "email = ada@example.com".into(), sample_size: 0 };
    assert_error(client(&app).preview_segment(app.as_roles(by_email, &["analyst"])).await, Code::PermissionDenied, "PERMISSION_DENIED");

    // A filter on personal data is itself personal: callers without pii do not see it.
    let by_address = pb::Segment {
        display_name: "Ada".into(),
        kind: pb::SegmentKind::Dynamic as i32,
        filter: "email = ada@example.com".into(),
        ..Default::default()
    };
    let by_address = client(&app)
        .create_segment(app.admin(pb::CreateSegmentRequest { segment: Some(by_address), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    assert_eq!(by_address.member_count, 1);
    let read = |roles: &[&str]| app.as_roles(pb::GetSegmentRequest { name: by_address.name.clone() }, roles);
    assert_eq!(client(&app).get_segment(read(&["readonly"])).await.unwrap().into_inner().segment.unwrap().filter, "");
    assert_eq!(
        client(&app).get_segment(read(&["marketer"])).await.unwrap().into_inner().segment.unwrap().filter,
        "email = ada@example.com"
    );

    for _ in 0..97 {
        create(&app, pb::SegmentKind::Static, "").await.unwrap();
    }
    assert_error(create(&app, pb::SegmentKind::Static, "").await, Code::FailedPrecondition, "SEGMENT_LIMIT");
}

#[tokio::test]
async fn purchase_fields_and_relative_time_keep_a_segment_current_as_customers_buy_and_time_passes() {
    use crm_proto::{crm::profiles::v1::transaction_service_client::TransactionServiceClient, google::r#type::Money};
    use std::time::{Duration, SystemTime};
    let app = crate::helpers::spawn_app_with(|c| c.segment_sweep_ms = 100).await;
    let buy = |customer: String, days: u64| {
        let request = pb::CreateTransactionRequest {
            parent: customer,
            transaction: Some(pb::Transaction {
                external_id: uuid::Uuid::now_v7().to_string(),
                kind: pb::TransactionKind::Purchase as i32,
                amount: Some(Money { currency_code: "CNY".into(), units: 10, nanos: 0 }),
                occur_time: Some((SystemTime::now() - Duration::from_secs(days * 86_400 + 60)).into()),
                ..Default::default()
            }),
        };
        let mut client = TransactionServiceClient::new(app.channel.clone());
        let request = app.as_roles(request, &["agent"]);
        async move { client.create_transaction(request).await.unwrap() }
    };
    let dormant = tagged(&app, "Dormant", &[]).await;
    let recent = tagged(&app, "Recent", &[]).await;
    buy(dormant.name.clone(), 40).await;
    buy(recent.name.clone(), 10).await;
    let lapsing = create(&app, pb::SegmentKind::Dynamic, "purchase_count >= 1 AND last_purchase_time < now - 30d").await.unwrap();
    assert_eq!(members(&app, &lapsing).await, [dormant.name.as_str()]);
    buy(dormant.name.clone(), 0).await;
    assert_eq!(count(&app, &lapsing).await, 0, "a new purchase takes the customer out at once");

    // Time passing alone moves members: the sweep refills time-relative segments.
    let fresh = create(&app, pb::SegmentKind::Dynamic, "create_time > now - 3s").await.unwrap();
    assert_eq!(fresh.member_count, 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count(&app, &fresh).await > 0 {
        assert!(std::time::Instant::now() < deadline, "the sweep emptied the segment as its members aged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
