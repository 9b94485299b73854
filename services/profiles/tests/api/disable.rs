//! Disable and enable (禁用/启用): distinct from deletion — a disabled
//! customer is readable by name, left out of lists unless asked for, carries
//! its reason, and each change is one event; agents do it, marketers cannot.

use crm_proto::crm::profiles::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

async fn list(app: &TestApp, show_disabled: bool) -> Vec<String> {
    let request = app.admin(pb::ListCustomersRequest { show_disabled, ..Default::default() });
    app.customers.clone().list_customers(request).await.unwrap().into_inner().customers.into_iter().map(|c| c.display_name).collect()
}

#[tokio::test]
async fn a_disabled_customer_is_readable_but_left_out_of_lists_until_enabled() {
    let app = spawn_app().await;
    let ada = app.create(customer("Ada", "ada@example.com")).await;
    app.create(customer("Bo", "bo@example.com")).await;
    let mut client = app.customers.clone();

    let disable = |roles: &[&str], reason: &str| {
        app.as_roles(pb::DisableCustomerRequest { name: ada.name.clone(), reason: reason.into(), etag: String::new() }, roles)
    };
    assert_error(client.disable_customer(disable(&["marketer"], "moved away")).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_error(client.disable_customer(disable(&["agent"], "  ")).await, Code::InvalidArgument, "INVALID_REASON");
    let disabled = client.disable_customer(disable(&["agent"], "moved away")).await.unwrap().into_inner().customer.unwrap();
    assert!(disabled.disable_time.is_some() && disabled.disable_reason == "moved away", "{disabled:?}");
    let again = client.disable_customer(disable(&["agent"], "moved away")).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(again.etag, disabled.etag, "disabling twice changes nothing");

    assert_eq!(app.get(&ada.name).await.unwrap().disable_reason, "moved away", "readable by name");
    assert_eq!(list(&app, false).await, ["Bo"]);
    let mut both = list(&app, true).await;
    both.sort();
    assert_eq!(both, ["Ada", "Bo"]);

    let enable = app.as_roles(pb::EnableCustomerRequest { name: ada.name.clone(), etag: disabled.etag.clone() }, &["agent"]);
    let enabled = client.enable_customer(enable).await.unwrap().into_inner().customer.unwrap();
    assert!(enabled.disable_time.is_none() && enabled.disable_reason.is_empty());
    assert_eq!(list(&app, false).await.len(), 2);

    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 4).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).skip(2).collect();
    assert_eq!(kinds, ["crm.profiles.v1.CustomerDisabled", "crm.profiles.v1.CustomerEnabled"]);
}
