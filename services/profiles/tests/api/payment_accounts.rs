//! Payment accounts (客户帐号): one primary per customer — refused by the
//! service with the current one named, and by the database itself for the
//! service's own role and for concurrent writers — account numbers cut to
//! their last four for callers without `pii` and in events.

use crm_proto::crm::profiles::v1::{self as pb, payment_account_service_client::PaymentAccountServiceClient};
use crm_testkit::auth::{customer_token, with_token};
use prost::Message;
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app, violations};

fn client(app: &TestApp) -> PaymentAccountServiceClient<Channel> {
    PaymentAccountServiceClient::new(app.channel.clone())
}

fn icbc(number: &str, primary: bool) -> pb::PaymentAccount {
    pb::PaymentAccount {
        holder_name: "李雷".into(),
        bank: "中国工商银行".into(),
        branch: "北京海淀支行".into(),
        account_number: number.into(),
        primary,
        ..Default::default()
    }
}

async fn add(app: &TestApp, parent: &str, account: pb::PaymentAccount, roles: &[&str]) -> Result<pb::PaymentAccount, tonic::Status> {
    let request = pb::CreatePaymentAccountRequest { parent: parent.into(), payment_account: Some(account), request_id: String::new() };
    Ok(client(app).create_payment_account(app.as_roles(request, roles)).await?.into_inner().payment_account.unwrap())
}

async fn set_primary(app: &TestApp, account: &pb::PaymentAccount, primary: bool) -> Result<pb::PaymentAccount, tonic::Status> {
    let request = pb::UpdatePaymentAccountRequest {
        payment_account: Some(pb::PaymentAccount { name: account.name.clone(), primary, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["primary".into()] }),
    };
    Ok(client(app).update_payment_account(app.as_roles(request, &["agent"])).await?.into_inner().payment_account.unwrap())
}

#[tokio::test]
async fn a_customer_has_one_primary_account_at_most() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let first = add(&app, &li.name, icbc("6222 0202 0011 2233 445", true), &["agent"]).await.unwrap();
    assert_eq!(first.account_number, "6222020200112233445", "spaces dropped");
    let second = add(&app, &li.name, icbc("DE89-3704-0044-0532-0130-00", false), &["agent"]).await.unwrap();

    let status = assert_error(
        add(&app, &li.name, icbc("6222020200998877665", true), &["agent"]).await,
        Code::FailedPrecondition,
        "PRIMARY_ACCOUNT_EXISTS",
    );
    assert!(status.message().contains("primary"), "{}", status.message());
    assert_error(set_primary(&app, &second, true).await, Code::FailedPrecondition, "PRIMARY_ACCOUNT_EXISTS");
    set_primary(&app, &first, false).await.unwrap();
    assert!(set_primary(&app, &second, true).await.unwrap().primary, "the primary moves once the first is unset");

    let listed = client(&app)
        .list_payment_accounts(app.as_roles(pb::ListPaymentAccountsRequest { parent: li.name.clone(), ..Default::default() }, &["agent"]))
        .await
        .unwrap()
        .into_inner()
        .payment_accounts;
    assert_eq!(
        listed.iter().map(|a| (a.name.as_str(), a.primary)).collect::<Vec<_>>(),
        [(first.name.as_str(), false), (second.name.as_str(), true)]
    );
}

#[tokio::test]
async fn the_database_itself_refuses_a_second_primary_and_concurrent_writers_get_one_winner() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    add(&app, &li.name, icbc("6222020200112233445", true), &["agent"]).await.unwrap();

    // As the service's own login role (RLS applies), bypassing the service's check.
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    let customer_id = uuid::Uuid::parse_str(li.name.trim_start_matches("customers/")).unwrap();
    let refused = sqlx::query(
        "INSERT INTO payment_accounts (tenant_id, customer_id, id, holder_name, bank, account_number, is_primary, create_time, update_time)
         VALUES ($1, $2, $3, 'x', 'y', '12345678', true, now(), now())",
    )
    .bind(app.tenant)
    .bind(customer_id)
    .bind(uuid::Uuid::now_v7())
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("payment_accounts_one_primary"), "{refused}");

    // Eight writers ask for a primary account of a customer without one: exactly one wins.
    let han = app.create(customer("韩梅梅", "meimei@example.com")).await;
    let attempts = (0..8).map(|i| {
        let (app, parent) = (&app, han.name.clone());
        async move { add(app, &parent, icbc(&format!("62220202001122{i:05}"), true), &["agent"]).await }
    });
    let results = futures::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    for refused in results.into_iter().filter_map(Result::err) {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    }
}

#[tokio::test]
async fn account_numbers_are_masked_without_pii_and_in_events_and_bad_input_is_named() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let account = add(&app, &li.name, icbc("6222020200112233445", false), &["agent"]).await.unwrap();
    let get = |roles: &[&str]| app.as_roles(pb::GetPaymentAccountRequest { name: account.name.clone() }, roles);
    let analyst = client(&app).get_payment_account(get(&["readonly"])).await.unwrap().into_inner().payment_account.unwrap();
    assert_eq!(analyst.account_number, "****3445");
    let own = with_token(pb::GetPaymentAccountRequest { name: account.name.clone() }, &customer_token(app.tenant, &li.name));
    assert_eq!(
        client(&app).get_payment_account(own).await.unwrap().into_inner().payment_account.unwrap().account_number,
        "6222020200112233445"
    );
    assert_error(add(&app, &li.name, icbc("6222020200112233446", false), &["marketer"]).await, Code::PermissionDenied, "PERMISSION_DENIED");

    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 2).await;
    let added = pb::PaymentAccountChanged::decode(events[1].data.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(added.payment_account.unwrap().account_number, "****3445", "events carry no account number");

    let bad = pb::PaymentAccount { holder_name: " ".into(), bank: "x".repeat(201), account_number: "12".into(), ..Default::default() };
    let status = assert_error(add(&app, &li.name, bad, &["agent"]).await, Code::InvalidArgument, "INVALID_FIELDS");
    assert_eq!(
        violations(&status),
        [
            ("payment_account.holder_name".to_owned(), "REQUIRED".to_owned()),
            ("payment_account.bank".to_owned(), "TOO_LONG".to_owned()),
            ("payment_account.account_number".to_owned(), "INVALID_ACCOUNT_NUMBER".to_owned())
        ]
    );
    assert!(!status.message().contains("12\""), "the number is not echoed: {}", status.message());
}
