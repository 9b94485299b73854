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

#[tokio::test]
async fn stale_data_gets_one_reminder_per_period_however_often_the_job_runs() {
    let app = crate::helpers::spawn_app_with(|c| c.verification_poll_ms = 100).await;
    let mut client = app.customers.clone();
    let stale = app.create(customer("Stale", "stale@example.com")).await;
    app.create(customer("Fresh", "fresh@example.com")).await;
    // Stale confirmed its data 40 days ago.
    let forty_days_ago = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 40 * 86_400, nanos: 0 };
    let edit = pb::UpdateCustomerRequest {
        customer: Some(pb::Customer { name: stale.name.clone(), verify_time: Some(forty_days_ago), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["verify_time".into()] }),
    };
    client.update_customer(app.admin(edit)).await.unwrap();

    let settings = |days| pb::UpdateVerificationSettingsRequest {
        verification_settings: Some(pb::VerificationSettings { fresh_days: days, update_time: None }),
    };
    assert_error(
        client.update_verification_settings(app.as_roles(settings(30), &["agent"])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(client.update_verification_settings(app.admin(settings(-1))).await, Code::InvalidArgument, "OUT_OF_RANGE");
    client.update_verification_settings(app.admin(settings(30))).await.unwrap();
    let read = client.get_verification_settings(app.as_roles(pb::GetVerificationSettingsRequest {}, &["analyst"])).await.unwrap();
    assert_eq!(read.into_inner().verification_settings.unwrap().fresh_days, 30);

    // Created, created, updated — then the reminder; ten more job rounds add nothing.
    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 4).await;
    assert_eq!(events[3].r#type, "crm.profiles.v1.CustomerVerificationDue");
    assert_eq!(events[3].subject, stale.name);
    let due = <pb::CustomerVerificationDue as prost::Message>::decode(events[3].data.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(due.period, 1);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    let reminders: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE type = 'crm.profiles.v1.CustomerVerificationDue'")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(-1);
    assert_eq!(reminders, 1, "one reminder, not one per round");
}
