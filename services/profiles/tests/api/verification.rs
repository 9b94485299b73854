//! Data verification (定期确认), first part: a customer (or staff) confirms
//! their data, which stamps `verify_time`, and lists find the stale ones.

use crm_proto::crm::profiles::v1 as pb;
use crm_testkit::auth::{customer_token, with_token};
use tonic::Code;

use crate::helpers::{assert_error, customer, spawn_app};

#[tokio::test]
async fn confirming_stamps_verify_time_and_lists_find_the_stale() {
    let app = spawn_app().await;
    let ada = app.create(customer("Ada", "ada@example.com")).await;
    let bo = app.create(customer("Bo", "bo@example.com")).await;
    let mut client = app.customers.clone();
    let cutoff = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    let stale = |cutoff: &str| pb::ListCustomersRequest { filter: format!("verify_time < \"{cutoff}\""), ..Default::default() };

    // Never confirmed: stale as of any time after creation.
    let listed = client.list_customers(app.admin(stale(&cutoff))).await.unwrap().into_inner().customers;
    assert_eq!(listed.len(), 2);

    // Ada confirms in the app; an analyst may not confirm for anyone; Bo may not confirm Ada's.
    let own =
        with_token(pb::ConfirmCustomerDataRequest { name: ada.name.clone(), etag: String::new() }, &customer_token(app.tenant, &ada.name));
    let confirmed = client.confirm_customer_data(own).await.unwrap().into_inner().customer.unwrap();
    assert!(confirmed.verify_time.is_some());
    let analyst = app.as_roles(pb::ConfirmCustomerDataRequest { name: bo.name.clone(), etag: String::new() }, &["analyst"]);
    assert_error(client.confirm_customer_data(analyst).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let other =
        with_token(pb::ConfirmCustomerDataRequest { name: ada.name.clone(), etag: String::new() }, &customer_token(app.tenant, &bo.name));
    assert_error(client.confirm_customer_data(other).await, Code::NotFound, "NOT_FOUND");

    // Just after Bo was created, before Ada confirmed.
    let bo_created = bo.create_time.as_ref().unwrap();
    let cutoff = chrono::DateTime::from_timestamp(bo_created.seconds, bo_created.nanos as u32).unwrap() + chrono::Duration::microseconds(1);
    let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let listed = client.list_customers(app.admin(stale(&cutoff))).await.unwrap().into_inner().customers;
    assert_eq!(listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [bo.name.as_str()], "Ada is fresh now");
}
