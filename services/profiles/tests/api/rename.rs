//! Renaming with approval (客户更名单): off by default; once on, UpdateCustomer
//! refuses a rename and names the way; a request is approved (the customer
//! renamed, with its history and events) or rejected by someone else with
//! the approve permission; one pending request per customer, enforced by the
//! database too.

use crm_proto::crm::profiles::v1::{self as pb, rename_request_service_client::RenameRequestServiceClient};
use crm_testkit::auth::{claims, token_with, with_token};
use tonic::{Code, Request, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

fn client(app: &TestApp) -> RenameRequestServiceClient<Channel> {
    RenameRequestServiceClient::new(app.channel.clone())
}

fn as_user<T>(app: &TestApp, message: T, subject: &str, roles: &[&str]) -> Request<T> {
    with_token(message, &token_with(&claims(subject, app.tenant, roles)))
}

async fn rename(app: &TestApp, name: &str, display_name: &str, subject: &str) -> Result<pb::Customer, tonic::Status> {
    let customer = pb::Customer { name: name.into(), display_name: display_name.into(), ..Default::default() };
    let request = pb::UpdateCustomerRequest {
        customer: Some(customer),
        update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
    };
    Ok(app.customers.clone().update_customer(as_user(app, request, subject, &["agent"])).await?.into_inner().customer.unwrap())
}

async fn ask(app: &TestApp, parent: &str, display_name: &str, subject: &str) -> Result<pb::RenameRequest, tonic::Status> {
    let wanted = pb::RenameRequest {
        display_name: display_name.into(),
        family_name: "Li".into(),
        reason: "passport renewed".into(),
        ..Default::default()
    };
    let request = pb::CreateRenameRequestRequest { parent: parent.into(), rename_request: Some(wanted), request_id: String::new() };
    Ok(client(app).create_rename_request(as_user(app, request, subject, &["agent"])).await?.into_inner().rename_request.unwrap())
}

async fn set_approval(app: &TestApp, on: bool, roles: &[&str]) -> Result<pb::RenameSettings, tonic::Status> {
    let settings = pb::RenameSettings { name: "renameSettings".into(), approval_required: on, ..Default::default() };
    let request = pb::UpdateRenameSettingsRequest { rename_settings: Some(settings), update_mask: None };
    Ok(client(app).update_rename_settings(app.as_roles(request, roles)).await?.into_inner().rename_settings.unwrap())
}

#[tokio::test]
async fn once_required_a_rename_goes_through_a_request_that_someone_else_approves_or_rejects() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    assert_eq!(rename(&app, &li.name, "Li Lei", "agent:wang").await.unwrap().display_name, "Li Lei", "off by default");

    assert_error(set_approval(&app, true, &["agent"]).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert!(set_approval(&app, true, &["admin"]).await.unwrap().approval_required);
    let read = pb::GetRenameSettingsRequest { name: "renameSettings".into() };
    assert!(
        client(&app)
            .get_rename_settings(app.as_roles(read, &["readonly"]))
            .await
            .unwrap()
            .into_inner()
            .rename_settings
            .unwrap()
            .approval_required
    );

    let refused =
        assert_error(rename(&app, &li.name, "李雷 (Lei Li)", "agent:wang").await, Code::FailedPrecondition, "RENAME_NEEDS_APPROVAL");
    assert!(refused.message().contains("CreateRenameRequest"), "{}", refused.message());
    let company = pb::Customer { name: li.name.clone(), company: "ACME".into(), ..Default::default() };
    let other_field =
        pb::UpdateCustomerRequest { customer: Some(company), update_mask: Some(prost_types::FieldMask { paths: vec!["company".into()] }) };
    app.customers.clone().update_customer(app.as_roles(other_field, &["agent"])).await.expect("other fields change freely");

    let asked = ask(&app, &li.name, "李雷 (Lei Li)", "agent:wang").await.unwrap();
    assert_eq!(
        (asked.state, asked.previous_display_name.as_str(), asked.requester.as_str()),
        (pb::RenameRequestState::Pending as i32, "Li Lei", "agent:wang")
    );
    assert_error(ask(&app, &li.name, "Lei", "agent:zhao").await, Code::AlreadyExists, "RENAME_PENDING");

    let approve = |subject: &str, roles: &[&str]| {
        as_user(
            &app,
            pb::ApproveRenameRequestRequest { name: asked.name.clone(), comment: "passport seen".into(), etag: String::new() },
            subject,
            roles,
        )
    };
    assert_error(client(&app).approve_rename_request(approve("agent:zhao", &["agent"])).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_error(client(&app).approve_rename_request(approve("agent:wang", &["admin"])).await, Code::FailedPrecondition, "OWN_REQUEST");
    let approved =
        client(&app).approve_rename_request(approve("admin:chen", &["admin"])).await.unwrap().into_inner().rename_request.unwrap();
    assert_eq!((approved.state, approved.reviewer.as_str()), (pb::RenameRequestState::Approved as i32, "admin:chen"));
    assert!(approved.review_time.is_some());
    let renamed = app.get(&li.name).await.unwrap();
    assert_eq!((renamed.display_name.as_str(), renamed.family_name.as_str()), ("李雷 (Lei Li)", "Li"));
    assert_error(
        client(&app).approve_rename_request(approve("admin:chen", &["admin"])).await,
        Code::FailedPrecondition,
        "ALREADY_REVIEWED",
    );

    // The rename is in the customer's history, by the approver.
    let history = pb::ListCustomerChangesRequest { parent: li.name.clone(), field_path: "display_name".into(), ..Default::default() };
    let changes = app.customers.clone().list_customer_changes(app.admin(history)).await.unwrap().into_inner().changes;
    assert_eq!(changes[0].actor, "admin:chen");

    // A rejected request leaves the name alone.
    let second = ask(&app, &li.name, "Lei Li", "agent:zhao").await.unwrap();
    let reject = pb::RejectRenameRequestRequest { name: second.name.clone(), comment: "no document".into(), etag: second.etag.clone() };
    let rejected = client(&app)
        .reject_rename_request(as_user(&app, reject, "admin:chen", &["admin"]))
        .await
        .unwrap()
        .into_inner()
        .rename_request
        .unwrap();
    assert_eq!((rejected.state, rejected.review_comment.as_str()), (pb::RenameRequestState::Rejected as i32, "no document"));
    assert_eq!(app.get(&li.name).await.unwrap().display_name, "李雷 (Lei Li)");

    let pending =
        pb::ListRenameRequestsRequest { parent: "customers/-".into(), state: pb::RenameRequestState::Pending as i32, ..Default::default() };
    assert!(client(&app).list_rename_requests(app.as_roles(pending, &["readonly"])).await.unwrap().into_inner().rename_requests.is_empty());
    let all = pb::ListRenameRequestsRequest { parent: li.name.clone(), ..Default::default() };
    let listed = client(&app).list_rename_requests(app.as_roles(all, &["agent"])).await.unwrap().into_inner().rename_requests;
    assert_eq!(listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), [asked.name.as_str(), second.name.as_str()]);

    let bad = pb::RenameRequest { display_name: " ".into(), given_name: "x".repeat(101), ..Default::default() };
    let request = pb::CreateRenameRequestRequest { parent: li.name.clone(), rename_request: Some(bad), request_id: String::new() };
    let status =
        assert_error(client(&app).create_rename_request(app.as_roles(request, &["agent"])).await, Code::InvalidArgument, "INVALID_FIELDS");
    assert_eq!(crate::helpers::violations(&status).len(), 2);
}

#[tokio::test]
async fn the_database_keeps_one_pending_request_per_customer_and_no_self_review() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let asked = ask(&app, &li.name, "Lei Li", "agent:wang").await.unwrap();
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    let li_id = uuid::Uuid::parse_str(li.name.trim_start_matches("customers/")).unwrap();
    let second = sqlx::query(
        "INSERT INTO rename_requests (tenant_id, customer_id, id, display_name, previous_display_name, state, requester, create_time)
         VALUES ($1, $2, $3, 'X', '李雷', 'PENDING', 'agent:zhao', now())",
    )
    .bind(app.tenant)
    .bind(li_id)
    .bind(uuid::Uuid::now_v7())
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert_eq!(second.as_database_error().unwrap().code().as_deref(), Some("23505"));
    let id = uuid::Uuid::parse_str(asked.name.rsplit('/').next().unwrap()).unwrap();
    let own = sqlx::query("UPDATE rename_requests SET state = 'APPROVED', reviewer = requester, review_time = now() WHERE id = $1")
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(own.as_database_error().unwrap().code().as_deref(), Some("23514"));
}
