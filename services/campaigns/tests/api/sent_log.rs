//! The sent log: filters, masking for readers without `pii`, and tenant isolation.

use crm_proto::crm::campaigns::v1 as pb;
use crm_testkit::auth::{customer_token, token, with_token};
use tonic::Code;

use crate::helpers::{Person, assert_error, email_template, spawn_app};

#[tokio::test]
async fn the_sent_log_filters_masks_and_stays_within_the_tenant() {
    let app = spawn_app().await;
    app.email_provider().await;
    let template = app
        .create_template(email_template(pb::Purpose::Transactional, "Receipt", "Card 6222021234567890 paid {{ vars.amount }}", &["amount"]))
        .await
        .unwrap();
    let li = app.customer(Person { name: "Li", email: "li@example.com", ..Person::default() }).await;
    let han = app.customer(Person { name: "Han", email: "han@example.com", ..Person::default() }).await;
    let first = app.send_notice(&template.name, &li, &[("amount", "1")], "a").await.unwrap();
    app.send_notice(&template.name, &han, &[("amount", "2")], "b").await.unwrap();
    let last = app.send_notice(&template.name, &li, &[("amount", "3")], "c").await.unwrap();

    let all = app.list_deliveries("", &["marketer"]).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].name, last.name, "newest first");
    let lis = app.list_deliveries(&format!("customer = \"{li}\""), &["marketer"]).await.unwrap();
    assert_eq!(lis.iter().map(|d| d.name.clone()).collect::<Vec<_>>(), vec![last.name.clone(), first.name.clone()]);
    let by_address = app.list_deliveries("recipient = \"han@example.com\" AND channel = EMAIL", &["agent"]).await.unwrap();
    assert_eq!(by_address.len(), 1);

    // An analyst reads the log without personal data and cannot search by address.
    let masked = app.list_deliveries(&format!("customer = \"{li}\""), &["analyst"]).await.unwrap();
    assert_eq!(masked[0].recipient, "l***@example.com");
    assert_eq!(masked[0].body, "Card 622*********7890 paid 3");
    assert_error(app.list_deliveries("recipient = \"li@example.com\"", &["analyst"]).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let customer = with_token(pb::ListDeliveriesRequest::default(), &customer_token(app.tenant, &li));
    assert_error(app.deliveries.clone().list_deliveries(customer).await, Code::PermissionDenied, "PERMISSION_DENIED");

    // Another tenant sees none of it.
    let other = token(uuid::Uuid::now_v7(), &["admin"]);
    let request = with_token(pb::ListDeliveriesRequest::default(), &other);
    assert!(app.deliveries.clone().list_deliveries(request).await.unwrap().into_inner().deliveries.is_empty());
    let request = with_token(pb::GetDeliveryRequest { name: first.name.clone() }, &other);
    assert_error(app.deliveries.clone().get_delivery(request).await, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn a_bad_filter_is_refused() {
    let app = spawn_app().await;
    assert_error(app.list_deliveries("status = LOST", &["admin"]).await, Code::InvalidArgument, "INVALID_FILTER");
    assert_error(app.list_deliveries("body : \"x\"", &["admin"]).await, Code::InvalidArgument, "INVALID_FILTER");
}

#[tokio::test]
async fn templates_campaigns_providers_and_the_contact_policy_stay_within_their_tenant() {
    let app = spawn_app().await;
    let provider = app.email_provider().await;
    let template = app.create_template(email_template(pb::Purpose::Marketing, "Offer", "{{ vars.d }} off", &["d"])).await.unwrap();
    let campaign = app.create_campaign(&template.name, "", &[("d", "5%")]).await.unwrap();
    let request = app.admin(pb::UpdateContactPolicyRequest {
        contact_policy: Some(pb::ContactPolicy { name: "contactPolicy".into(), time_zone: "Asia/Shanghai".into(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["time_zone".into()] }),
    });
    app.contact_policy().update_contact_policy(request).await.unwrap();

    let other = token(uuid::Uuid::now_v7(), &["admin"]);
    let get = with_token(pb::GetTemplateRequest { name: template.name.clone() }, &other);
    assert_error(app.templates.clone().get_template(get).await, Code::NotFound, "NOT_FOUND");
    let get = with_token(pb::GetCampaignRequest { name: campaign.name.clone() }, &other);
    assert_error(app.campaigns().get_campaign(get).await, Code::NotFound, "NOT_FOUND");
    let get = with_token(pb::GetProviderRequest { name: provider.name.clone() }, &other);
    assert_error(app.providers.clone().get_provider(get).await, Code::NotFound, "NOT_FOUND");
    let list = with_token(pb::ListTemplatesRequest::default(), &other);
    assert!(app.templates.clone().list_templates(list).await.unwrap().into_inner().templates.is_empty());
    let list = with_token(pb::ListCampaignsRequest::default(), &other);
    assert!(app.campaigns().list_campaigns(list).await.unwrap().into_inner().campaigns.is_empty());
    let get = with_token(pb::GetContactPolicyRequest { name: "contactPolicy".into() }, &other);
    let theirs = app.contact_policy().get_contact_policy(get).await.unwrap().into_inner().contact_policy.unwrap();
    assert_eq!(theirs.time_zone, "", "the other tenant has the defaults, not this one's policy");
    // Using this tenant's template from the other tenant is as if it did not exist.
    let notice = with_token(
        pb::SendNoticeRequest {
            template: template.name.clone(),
            customer: format!("customers/{}", uuid::Uuid::now_v7()),
            variables: Default::default(),
            request_id: "x".into(),
        },
        &token(uuid::Uuid::now_v7(), &["agent"]),
    );
    assert_eq!(app.deliveries.clone().send_notice(notice).await.unwrap_err().code(), Code::InvalidArgument);
}
