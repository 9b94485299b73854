//! GDPR / PIPL: ExportCustomerData returns everything held about a
//! customer; EraseCustomer removes every trace of their personal data from
//! every table (checked row by row as text), keeps transactions, spending
//! and an audit entry, announces CustomerErased once, and is final.

use crm_proto::{
    crm::{
        common::v1::PhoneNumber,
        profiles::v1::{
            self as pb, communication_service_client::CommunicationServiceClient, occurrence_service_client::OccurrenceServiceClient,
            payment_account_service_client::PaymentAccountServiceClient, related_person_service_client::RelatedPersonServiceClient,
            transaction_service_client::TransactionServiceClient,
        },
    },
    google::r#type::{Date, Money},
};
use crm_testkit::auth::{customer_token, with_token};
use prost::Message;
use tonic::Code;

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

const SECRETS: [&str; 6] = ["lilei@example.com", "13812345678", "韩梅梅", "6222020200112233445", "Haidian", "李雷"];

/// Fills Li Lei's archive with personal data of every kind; returns the customer.
async fn li_with_an_archive(app: &TestApp) -> pb::Customer {
    let mut li = customer("李雷", "lilei@example.com");
    li.phones = vec![PhoneNumber { number: "+8613812345678".into(), label: "mobile".into(), primary: true }];
    li.company = "Haidian Trading".into();
    let li = app.create(li).await;
    let agent = |m| app.as_roles(m, &["agent"]);
    let spouse = pb::RelatedPerson { relation: pb::Relation::Spouse as i32, display_name: "韩梅梅".into(), ..Default::default() };
    RelatedPersonServiceClient::new(app.channel.clone())
        .create_related_person(agent(pb::CreateRelatedPersonRequest {
            parent: li.name.clone(),
            related_person: Some(spouse),
            request_id: String::new(),
        }))
        .await
        .unwrap();
    let account = pb::PaymentAccount {
        holder_name: "李雷".into(),
        bank: "ICBC".into(),
        account_number: "6222020200112233445".into(),
        ..Default::default()
    };
    PaymentAccountServiceClient::new(app.channel.clone())
        .create_payment_account(app.as_roles(
            pb::CreatePaymentAccountRequest { parent: li.name.clone(), payment_account: Some(account), request_id: String::new() },
            &["agent"],
        ))
        .await
        .unwrap();
    let call = pb::Communication {
        kind: pb::CommunicationKind::Call as i32,
        subject: "李雷 called".into(),
        content: "Call back on 13812345678 about the Haidian flat".into(),
        occur_time: Some(std::time::SystemTime::now().into()),
        ..Default::default()
    };
    CommunicationServiceClient::new(app.channel.clone())
        .create_communication(app.as_roles(
            pb::CreateCommunicationRequest { parent: li.name.clone(), communication: Some(call), request_id: String::new() },
            &["agent"],
        ))
        .await
        .unwrap();
    let visit = pb::Occurrence {
        category: "visit".into(),
        occur_date: Some(Date { year: 2026, month: 11, day: 1 }),
        description: "Met 韩梅梅 at Haidian".into(),
        ..Default::default()
    };
    OccurrenceServiceClient::new(app.channel.clone())
        .create_occurrence(app.as_roles(
            pb::CreateOccurrenceRequest { parent: li.name.clone(), occurrence: Some(visit), request_id: String::new() },
            &["agent"],
        ))
        .await
        .unwrap();
    let purchase = pb::Transaction {
        external_id: "POS-1".into(),
        kind: pb::TransactionKind::Purchase as i32,
        amount: Some(Money { currency_code: "CNY".into(), units: 328, nanos: 0 }),
        occur_time: Some(std::time::SystemTime::now().into()),
        ..Default::default()
    };
    TransactionServiceClient::new(app.channel.clone())
        .create_transaction(app.as_roles(pb::CreateTransactionRequest { parent: li.name.clone(), transaction: Some(purchase) }, &["agent"]))
        .await
        .unwrap();
    li
}

async fn export(app: &TestApp, name: &str) -> pb::CustomerDataExport {
    app.customers
        .clone()
        .export_customer_data(app.admin(pb::ExportCustomerDataRequest { name: name.into() }))
        .await
        .unwrap()
        .into_inner()
        .export
        .unwrap()
}

/// Rows of the tenant whose text mentions any secret, per table (the event log and idempotency replays aside).
async fn traces(app: &TestApp) -> Vec<(String, i64)> {
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'tenant_id'
           AND table_name NOT IN ('outbox', 'idempotency_keys', 'idempotency') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut found = Vec::new();
    for table in tables {
        let pattern = SECRETS.iter().map(|s| format!("t::text LIKE '%{s}%'")).collect::<Vec<_>>().join(" OR ");
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} t WHERE tenant_id = $1 AND ({pattern})"))
            .bind(app.tenant)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if n > 0 {
            found.push((table, n));
        }
    }
    found
}

#[tokio::test]
async fn an_export_holds_everything_and_an_erasure_leaves_no_personal_data_anywhere() {
    let app = spawn_app().await;
    let li = li_with_an_archive(&app).await;
    let other = app.create(customer("Other", "other@example.com")).await;
    // Another customer's record of Li (a colleague linked to his record) holds his data too.
    let colleague = pb::RelatedPerson {
        relation: pb::Relation::Colleague as i32,
        display_name: "李雷".into(),
        linked_customer: li.name.clone(),
        ..Default::default()
    };
    RelatedPersonServiceClient::new(app.channel.clone())
        .create_related_person(app.as_roles(
            pb::CreateRelatedPersonRequest { parent: other.name.clone(), related_person: Some(colleague), request_id: String::new() },
            &["agent"],
        ))
        .await
        .unwrap();

    let document = export(&app, &li.name).await;
    assert_eq!(document.customer.as_ref().unwrap().display_name, "李雷");
    assert_eq!((document.related_persons.len(), document.payment_accounts.len(), document.communications.len()), (1, 1, 1));
    assert_eq!((document.occurrences.len(), document.transactions.len()), (1, 1));
    assert_eq!(document.payment_accounts[0].account_number, "6222020200112233445", "unmasked");
    assert_eq!(document.spending.as_ref().unwrap().currencies.len(), 1);
    assert_eq!(document.changes[0].field_path, "display_name", "oldest first: the customer's creation");
    assert!(!document.changes[0].actor.is_empty());

    let own = with_token(pb::ExportCustomerDataRequest { name: li.name.clone() }, &customer_token(app.tenant, &li.name));
    let own = app.customers.clone().export_customer_data(own).await.unwrap().into_inner().export.unwrap();
    assert!(own.changes.iter().all(|c| c.actor.is_empty()), "a customer's own export names no staff");
    let others = with_token(pb::ExportCustomerDataRequest { name: li.name.clone() }, &customer_token(app.tenant, &other.name));
    assert_error(app.customers.clone().export_customer_data(others).await, Code::NotFound, "NOT_FOUND");
    let by_agent = app.as_roles(pb::ExportCustomerDataRequest { name: li.name.clone() }, &["agent"]);
    assert_error(app.customers.clone().export_customer_data(by_agent).await, Code::PermissionDenied, "PERMISSION_DENIED");

    let erase = |reason: &str| pb::EraseCustomerRequest { name: li.name.clone(), reason: reason.into(), etag: String::new() };
    assert_error(
        app.customers.clone().erase_customer(app.as_roles(erase("x"), &["agent"])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(app.customers.clone().erase_customer(app.admin(erase(" "))).await, Code::InvalidArgument, "REQUIRED");
    assert!(!traces(&app).await.is_empty(), "the secrets are there before");

    let erased = app.customers.clone().erase_customer(app.admin(erase("GDPR Art. 17 #4411"))).await.unwrap().into_inner().customer.unwrap();
    assert_eq!((erased.display_name.as_str(), erased.emails.len(), erased.phones.len()), ("Erased customer", 0, 0));
    assert!(erased.erase_time.is_some() && erased.delete_time.is_some());
    assert_eq!(traces(&app).await, [], "no row of any table mentions Li Lei's personal data");

    let after = export(&app, &li.name).await;
    assert!(after.related_persons.is_empty() && after.payment_accounts.is_empty());
    assert_eq!(after.communications[0].content, "");
    assert_eq!(after.transactions.len(), 1, "transactions stay, anonymous");
    assert_eq!(after.spending.unwrap().currencies[0].purchase_count, 1, "and so do the aggregates");
    let audit: Vec<_> = after.changes.iter().filter(|c| c.field_path.starts_with("erase_")).collect();
    assert_eq!(audit.len(), 2, "the erasure's own audit entry: time and reason");

    // Final and idempotent: a second erasure changes nothing, undeleting is refused, the address is free.
    let again = app.customers.clone().erase_customer(app.admin(erase("again"))).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(again.etag, erased.etag);
    let undelete = pb::UndeleteCustomerRequest { name: li.name.clone(), etag: String::new() };
    assert_error(app.customers.clone().undelete_customer(app.admin(undelete)).await, Code::FailedPrecondition, "CUSTOMER_ERASED");
    app.create(customer("Someone new", "lilei@example.com")).await;

    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 11).await;
    let erasures: Vec<_> = events.iter().filter(|e| e.r#type == "crm.profiles.v1.CustomerErased").collect();
    assert_eq!(erasures.len(), 1, "announced once");
    let announced = pb::CustomerErased::decode(erasures[0].data.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(announced.customer, li.name);
}
