//! Merging duplicates and undoing it: records move to the survivor and
//! back, the merged customers resolve to the survivor while merged, every
//! refusal changes nothing, concurrent merges never deadlock, and an
//! unmerge restores every link exactly (property-tested).

use std::time::{Duration, SystemTime};

use crm_proto::{
    crm::{
        common::v1::PhoneNumber,
        profiles::v1::{
            self as pb, communication_service_client::CommunicationServiceClient, merge_service_client::MergeServiceClient,
            occurrence_service_client::OccurrenceServiceClient, payment_account_service_client::PaymentAccountServiceClient,
            related_person_service_client::RelatedPersonServiceClient, segment_service_client::SegmentServiceClient,
            transaction_service_client::TransactionServiceClient,
        },
    },
    google::r#type::Money,
};
use crm_testkit::auth::{token, with_token};
use proptest::prelude::*;
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app, static_segment};

fn merges(app: &TestApp) -> MergeServiceClient<Channel> {
    MergeServiceClient::new(app.channel.clone())
}

fn merge(survivor: &str, duplicates: &[&str]) -> pb::MergeCustomersRequest {
    pb::MergeCustomersRequest {
        survivor: survivor.into(),
        duplicates: duplicates.iter().map(|d| d.to_string()).collect(),
        ..Default::default()
    }
}

/// What one customer's archive holds, made through the API.
#[derive(Debug, Clone, Default)]
struct Archive {
    purchases: Vec<i64>,
    communications: usize,
    related_persons: usize,
    accounts: Vec<bool>,
    occurrences: usize,
}

async fn fill(app: &TestApp, customer: &str, archive: &Archive, seed: usize) {
    if !archive.purchases.is_empty() {
        let requests = archive
            .purchases
            .iter()
            .enumerate()
            .map(|(i, units)| pb::CreateTransactionRequest {
                parent: customer.into(),
                transaction: Some(pb::Transaction {
                    external_id: uuid::Uuid::now_v7().to_string(),
                    kind: pb::TransactionKind::Purchase as i32,
                    amount: Some(Money { currency_code: "CNY".into(), units: *units, nanos: 0 }),
                    occur_time: Some((SystemTime::now() - Duration::from_secs(86_400 * (1 + i as u64 * 9))).into()),
                    ..Default::default()
                }),
            })
            .collect();
        let batch = pb::BatchCreateTransactionsRequest { parent: "customers/-".into(), requests };
        TransactionServiceClient::new(app.channel.clone()).batch_create_transactions(app.as_roles(batch, &["service"])).await.unwrap();
    }
    for i in 0..archive.communications {
        let c = pb::Communication {
            kind: pb::CommunicationKind::Call as i32,
            direction: pb::CommunicationDirection::Outbound as i32,
            subject: format!("Call {seed}-{i}"),
            occur_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 }),
            ..Default::default()
        };
        let request = pb::CreateCommunicationRequest { parent: customer.into(), communication: Some(c), request_id: String::new() };
        CommunicationServiceClient::new(app.channel.clone()).create_communication(app.admin(request)).await.unwrap();
    }
    for i in 0..archive.related_persons {
        let person =
            pb::RelatedPerson { relation: pb::Relation::Spouse as i32, display_name: format!("Relative {seed}-{i}"), ..Default::default() };
        let request = pb::CreateRelatedPersonRequest { parent: customer.into(), related_person: Some(person), request_id: String::new() };
        RelatedPersonServiceClient::new(app.channel.clone()).create_related_person(app.admin(request)).await.unwrap();
    }
    for (i, primary) in archive.accounts.iter().enumerate() {
        let account = pb::PaymentAccount {
            holder_name: format!("Holder {seed}"),
            bank: "中国工商银行".into(),
            account_number: format!("62220202{seed:05}{i:06}"),
            primary: *primary,
            ..Default::default()
        };
        let request =
            pb::CreatePaymentAccountRequest { parent: customer.into(), payment_account: Some(account), request_id: String::new() };
        PaymentAccountServiceClient::new(app.channel.clone()).create_payment_account(app.admin(request)).await.unwrap();
    }
    for i in 0..archive.occurrences {
        let o = pb::Occurrence {
            category: "complaint".into(),
            occur_date: Some(crm_proto::google::r#type::Date { year: 2026, month: 10, day: 8 }),
            description: format!("Event {seed}-{i}"),
            ..Default::default()
        };
        let request = pb::CreateOccurrenceRequest { parent: customer.into(), occurrence: Some(o), request_id: String::new() };
        OccurrenceServiceClient::new(app.channel.clone()).create_occurrence(app.admin(request)).await.unwrap();
    }
}

/// A customer's export without what any write moves on (etags, update
/// times, the field history, when the stage last changed), lists by name.
async fn export(app: &TestApp, name: &str) -> pb::CustomerDataExport {
    let request = pb::ExportCustomerDataRequest { name: name.into() };
    let mut e = app.customers.clone().export_customer_data(app.admin(request)).await.unwrap().into_inner().export.unwrap();
    e.changes.clear();
    e.export_time = None;
    if let Some(c) = e.customer.as_mut() {
        c.etag.clear();
        c.update_time = None;
        c.lifecycle_time = None;
    }
    macro_rules! settle {
        ($($list:ident),*) => {$(
            for r in &mut e.$list {
                r.etag.clear();
                r.update_time = None;
            }
            e.$list.sort_by(|a, b| a.name.cmp(&b.name));
        )*};
    }
    settle!(related_persons, payment_accounts, communications, occurrences);
    e.transactions.sort_by(|a, b| a.name.cmp(&b.name));
    e
}

async fn members(app: &TestApp, segment: &str) -> (i64, Vec<String>) {
    let segments = SegmentServiceClient::new(app.channel.clone());
    let count = segments.clone().get_segment(app.admin(pb::GetSegmentRequest { name: segment.into() })).await.unwrap().into_inner();
    let listed = segments
        .clone()
        .list_segment_members(app.admin(pb::ListSegmentMembersRequest {
            segment: segment.into(),
            page_size: 100,
            page_token: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<String> = listed.customers.into_iter().map(|c| c.name).collect();
    names.sort();
    (count.segment.unwrap().member_count, names)
}

#[tokio::test]
async fn a_merge_moves_every_record_to_the_survivor_and_an_unmerge_puts_them_back() {
    let app = spawn_app().await;
    let mut ann = customer("Ann Lee", "ann@acme.com");
    ann.company = "Acme".into();
    let ann = app.create(ann).await;
    let mut lee = customer("Ann L.", "ann.lee@home.net");
    lee.job_title = "CTO".into();
    lee.phones = vec![PhoneNumber { number: "+8613800000001".into(), label: "mobile".into(), primary: true }];
    let lee = app.create(lee).await;
    let third = app.create(customer("A. Lee", "")).await;
    fill(&app, &ann.name, &Archive { purchases: vec![100], accounts: vec![true], ..Default::default() }, 1).await;
    fill(
        &app,
        &lee.name,
        &Archive { purchases: vec![50, 70], communications: 2, related_persons: 1, accounts: vec![true], ..Default::default() },
        2,
    )
    .await;
    fill(&app, &third.name, &Archive { occurrences: 1, ..Default::default() }, 3).await;
    let vip = static_segment(&app, "VIP", &[&lee.name]).await;
    let before: Vec<pb::CustomerDataExport> = futures::future::join_all([&ann.name, &lee.name, &third.name].map(|n| export(&app, n))).await;

    let mut request = merge(&ann.name, &[&lee.name, &third.name]);
    request.field_sources.insert("display_name".into(), lee.name.clone());
    assert_error(
        merges(&app).merge_customers(app.as_roles(request.clone(), &["marketer"])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    let done = merges(&app).merge_customers(app.as_roles(request, &["agent"])).await.unwrap().into_inner();
    let log = done.customer_merge.unwrap();
    let survivor = done.survivor.unwrap();
    assert_eq!((survivor.display_name.as_str(), survivor.company.as_str(), survivor.job_title.as_str()), ("Ann L.", "Acme", "CTO"));
    let emails: Vec<&str> = survivor.emails.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(emails, ["ann@acme.com", "ann.lee@home.net"]);
    assert_eq!(log.moved_records["transactions"], 2);
    assert_eq!((log.moved_records["communications"], log.moved_records["relatedPersons"]), (2, 1));
    assert_eq!((log.moved_records["paymentAccounts"], log.moved_records["occurrences"], log.moved_records["staticSegments"]), (1, 1, 1));
    assert!(log.unmerge_deadline.is_some() && log.unmerge_time.is_none());

    // While merged: a merged customer reads as the survivor, which holds everything.
    assert_eq!(app.get(&lee.name).await.unwrap().name, ann.name);
    let merged = export(&app, &ann.name).await;
    assert_eq!(merged.transactions.len(), 3);
    assert_eq!(merged.spending.as_ref().unwrap().currencies[0].purchase_count, 3);
    assert_eq!(merged.communications.len(), 2);
    assert_eq!(merged.payment_accounts.iter().filter(|a| a.primary).count(), 1, "the survivor's primary account stays the one");
    assert_eq!(members(&app, &vip).await, (1, vec![ann.name.clone()]));
    let request = pb::ExportCustomerDataRequest { name: lee.name.clone() };
    let gone = app.customers.clone().export_customer_data(app.admin(request)).await.unwrap().into_inner().export.unwrap();
    assert_eq!(gone.customer.unwrap().merged_into, ann.name);
    let events = crm_testkit::events::collect_of(&app.channel, &app.admin_token, 0, 1, &["crm.profiles.v1.CustomersMerged"]).await;
    assert_eq!(events.len(), 1);

    // A merged customer cannot be merged again or undeleted.
    let again = merge(&third.name, &[&lee.name]);
    assert_error(merges(&app).merge_customers(app.admin(again)).await, Code::FailedPrecondition, "ALREADY_MERGED");
    let undelete = pb::UndeleteCustomerRequest { name: lee.name.clone(), etag: String::new() };
    assert_error(app.customers.clone().undelete_customer(app.admin(undelete)).await, Code::FailedPrecondition, "CUSTOMER_MERGED");

    let unmerge = pb::UnmergeCustomersRequest { name: log.name.clone() };
    let undone = merges(&app).unmerge_customers(app.as_roles(unmerge.clone(), &["agent"])).await.unwrap().into_inner();
    assert!(undone.customer_merge.unwrap().unmerge_time.is_some());
    let after: Vec<pb::CustomerDataExport> = futures::future::join_all([&ann.name, &lee.name, &third.name].map(|n| export(&app, n))).await;
    assert_eq!(after, before, "every customer and record exactly as before");
    assert_eq!(members(&app, &vip).await, (1, vec![lee.name.clone()]));
    assert_error(merges(&app).unmerge_customers(app.admin(unmerge)).await, Code::FailedPrecondition, "ALREADY_UNMERGED");
}

#[tokio::test]
async fn bad_merges_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let a = app.create(customer("A", "a@example.com")).await;
    let b = app.create(customer("B", "b@example.com")).await;
    let c = app.create(customer("C", "c@example.com")).await;
    let refused = |request: pb::MergeCustomersRequest, code: Code, reason: &'static str| {
        let mut client = merges(&app);
        let request = app.admin(request);
        async move {
            assert_error(client.merge_customers(request).await, code, reason);
        }
    };
    refused(merge(&a.name, &[&a.name]), Code::InvalidArgument, "SELF_MERGE").await;
    refused(merge(&a.name, &[&b.name, &b.name]), Code::InvalidArgument, "DUPLICATE_NAME").await;
    refused(merge(&a.name, &[]), Code::InvalidArgument, "INVALID_BATCH_SIZE").await;
    let many: Vec<String> = (0..11).map(|_| format!("customers/{}", uuid::Uuid::now_v7())).collect();
    refused(merge(&a.name, &many.iter().map(String::as_str).collect::<Vec<_>>()), Code::InvalidArgument, "INVALID_BATCH_SIZE").await;
    let unknown = format!("customers/{}", uuid::Uuid::now_v7());
    refused(merge(&a.name, &[&unknown]), Code::NotFound, "NOT_FOUND").await;
    let mut bad_field = merge(&a.name, &[&b.name]);
    bad_field.field_sources.insert("etag".into(), b.name.clone());
    refused(bad_field, Code::InvalidArgument, "NOT_CHOOSABLE").await;
    let mut bad_source = merge(&a.name, &[&b.name]);
    bad_source.field_sources.insert("company".into(), c.name.clone());
    refused(bad_source, Code::InvalidArgument, "NOT_MERGED").await;
    // Another tenant's customer does not exist here.
    let other_tenant = token(uuid::Uuid::now_v7(), &["admin"]);
    let create = pb::CreateCustomerRequest { customer: Some(customer("Stranger", "s@example.com")), request_id: String::new() };
    let stranger = app.customers.clone().create_customer(with_token(create, &other_tenant)).await.unwrap().into_inner().customer.unwrap();
    refused(merge(&a.name, &[&stranger.name]), Code::NotFound, "NOT_FOUND").await;
    assert_eq!(app.get(&b.name).await.unwrap().name, b.name, "nothing was merged");

    let done = merges(&app).merge_customers(app.admin(merge(&a.name, &[&b.name]))).await.unwrap().into_inner().customer_merge.unwrap();
    refused(merge(&c.name, &[&a.name, &b.name]), Code::FailedPrecondition, "ALREADY_MERGED").await;

    // A later edit of the survivor: the unmerge refuses, naming it.
    let edit = pb::UpdateCustomerRequest {
        customer: Some(pb::Customer { name: a.name.clone(), company: "Edited".into(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["company".into()] }),
    };
    app.customers.clone().update_customer(app.admin(edit)).await.unwrap();
    let unmerge = pb::UnmergeCustomersRequest { name: done.name.clone() };
    let status = assert_error(merges(&app).unmerge_customers(app.admin(unmerge.clone())).await, Code::FailedPrecondition, "MERGE_CONFLICT");
    assert!(status.message().contains(&a.name), "{status:?}");

    // Past the window.
    let merged = merges(&app).merge_customers(app.admin(merge(&c.name, &[&a.name]))).await.unwrap().into_inner().customer_merge.unwrap();
    let mut db = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut db).await.unwrap();
    sqlx::query("UPDATE customer_merges SET merge_time = merge_time - interval '31 days' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(merged.name.trim_start_matches("customerMerges/")).unwrap())
        .execute(&mut db)
        .await
        .unwrap();
    let late = pb::UnmergeCustomersRequest { name: merged.name.clone() };
    assert_error(merges(&app).unmerge_customers(app.admin(late)).await, Code::FailedPrecondition, "UNMERGE_WINDOW_PASSED");
    // Erasing a customer of a merge drops the rows its log kept: it can no longer be undone.
    let d = app.create(customer("D", "d@example.com")).await;
    let e = app.create(customer("E", "e@example.com")).await;
    let kept = merges(&app).merge_customers(app.admin(merge(&d.name, &[&e.name]))).await.unwrap().into_inner().customer_merge.unwrap();
    let erase = pb::EraseCustomerRequest { name: e.name.clone(), reason: "GDPR Art. 17".into(), etag: String::new() };
    app.customers.clone().erase_customer(app.admin(erase)).await.unwrap();
    let erased = pb::UnmergeCustomersRequest { name: kept.name.clone() };
    assert_error(merges(&app).unmerge_customers(app.admin(erased)).await, Code::FailedPrecondition, "MERGE_ERASED");
    let missing = pb::UnmergeCustomersRequest { name: format!("customerMerges/{}", uuid::Uuid::now_v7()) };
    assert_error(merges(&app).unmerge_customers(app.admin(missing)).await, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn concurrent_merges_of_the_same_customers_never_deadlock_and_one_wins() {
    let app = spawn_app().await;
    for round in 0..5 {
        let a = app.create(customer(&format!("A{round}"), "")).await;
        let b = app.create(customer(&format!("B{round}"), "")).await;
        let c = app.create(customer(&format!("C{round}"), "")).await;
        // Opposite directions and an overlapping third: every pair of them wants the same rows.
        let requests = [merge(&a.name, &[&b.name]), merge(&b.name, &[&a.name]), merge(&c.name, &[&a.name, &b.name])];
        let results = futures::future::join_all(requests.map(|r| {
            let mut client = merges(&app);
            let request = app.admin(r);
            async move { client.merge_customers(request).await }
        }))
        .await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {results:?}");
        for lost in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(lost.code(), Code::FailedPrecondition, "refused, not deadlocked: {lost:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Whatever the customers hold and whichever fields are chosen, an
    /// unmerge gives every customer back exactly its fields, records,
    /// spending and static segments.
    #[test]
    fn an_unmerge_restores_every_link(
        archives in prop::collection::vec(
            (prop::collection::vec(1..500_i64, 0..3), 0..3_usize, 0..2_usize, prop::collection::vec(any::<bool>(), 0..3), 0..2_usize),
            2..5,
        ),
        choices in prop::collection::vec((0..4_usize, 0..5_usize), 0..4),
        in_segment in prop::collection::vec(any::<bool>(), 5),
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let app = spawn_app().await;
            let mut names = Vec::new();
            for (i, (purchases, communications, related_persons, accounts, occurrences)) in archives.iter().enumerate() {
                let mut c = customer(&format!("Customer {i}"), &format!("c{i}@example.com"));
                c.company = if i % 2 == 0 { format!("Company {i}") } else { String::new() };
                let created = app.create(c).await;
                // At most one primary account each, as the service allows.
                let accounts: Vec<bool> = accounts.iter().enumerate().map(|(k, p)| *p && k == 0).collect();
                let archive = Archive { purchases: purchases.clone(), communications: *communications, related_persons: *related_persons, accounts, occurrences: *occurrences };
                fill(&app, &created.name, &archive, i).await;
                names.push(created.name);
            }
            let members_of: Vec<&str> = names.iter().zip(&in_segment).filter(|(_, m)| **m).map(|(n, _)| n.as_str()).collect();
            let segment = if members_of.is_empty() { None } else { Some(static_segment(&app, "Static", &members_of).await) };
            let before: Vec<pb::CustomerDataExport> = futures::future::join_all(names.iter().map(|n| export(&app, n))).await;
            let segment_before = match &segment { Some(s) => Some(members(&app, s).await), None => None };

            let fields = ["display_name", "company", "emails", "tags"];
            let mut request = merge(&names[0], &names[1..].iter().map(String::as_str).collect::<Vec<_>>());
            for (field, source) in &choices {
                request.field_sources.insert(fields[*field].into(), names[source % names.len()].clone());
            }
            let done = merges(&app).merge_customers(app.admin(request)).await.unwrap().into_inner().customer_merge.unwrap();
            merges(&app).unmerge_customers(app.admin(pb::UnmergeCustomersRequest { name: done.name })).await.unwrap();

            let after: Vec<pb::CustomerDataExport> = futures::future::join_all(names.iter().map(|n| export(&app, n))).await;
            for (a, b) in after.iter().zip(&before) {
                assert_eq!(a.customer, b.customer);
                assert_eq!(a.transactions, b.transactions);
                assert_eq!(a.spending, b.spending);
                assert_eq!(a.related_persons, b.related_persons);
                assert_eq!(a.payment_accounts, b.payment_accounts);
                assert_eq!(a.communications, b.communications);
                assert_eq!(a.occurrences, b.occurrences);
            }
            assert_eq!(after, before);
            if let Some(s) = &segment {
                assert_eq!(Some(members(&app, s).await), segment_before);
            }
        });
    }
}
