//! Duplicate detection: candidates for a customer and for a draft (Chinese
//! names by pinyin, normalised emails, phones, companies; each with why),
//! the refusals, masking, and the background scan's pairs.

use std::time::Duration;

use crm_proto::crm::{
    common::v1::PhoneNumber,
    profiles::v1::{self as pb, duplicate_service_client::DuplicateServiceClient},
};
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app, spawn_app_with};

fn duplicates(app: &TestApp) -> DuplicateServiceClient<Channel> {
    DuplicateServiceClient::new(app.channel.clone())
}

fn with_phone(mut c: pb::Customer, number: &str) -> pb::Customer {
    c.phones = vec![PhoneNumber { number: number.into(), label: "mobile".into(), primary: true }];
    c
}

fn at(mut c: pb::Customer, company: &str) -> pb::Customer {
    c.company = company.into();
    c
}

/// Four customers: 张伟 and three that look like them in different ways, and one who does not.
async fn family(app: &TestApp) -> [String; 5] {
    let zhang = app.create(at(with_phone(customer("张伟", "zhang.wei@gmail.com"), "+8613800000001"), "华为技术有限公司")).await;
    let latin = app.create(customer("Wei Zhang", "zhangwei+shop@gmail.com")).await;
    let homophone = app.create(at(customer("章伟", ""), "华为技术")).await;
    let by_phone = app.create(with_phone(customer("W. Z.", ""), "+8613800000001")).await;
    let other = app.create(at(customer("李娜", "li.na@example.com"), "华为技术有限公司")).await;
    [zhang.name, latin.name, homophone.name, by_phone.name, other.name]
}

fn find(name: &str) -> pb::FindDuplicatesRequest {
    pb::FindDuplicatesRequest { name: name.into(), ..Default::default() }
}

#[tokio::test]
async fn candidates_say_why_they_match_and_come_best_first() {
    use pb::MatchSignal as S;
    let app = spawn_app().await;
    let [zhang, latin, homophone, by_phone, _other] = family(&app).await;
    let found = duplicates(&app).find_duplicates(app.as_roles(find(&zhang), &["agent"])).await.unwrap().into_inner().candidates;
    let summary: Vec<(String, f64, Vec<i32>)> =
        found.iter().map(|c| (c.customer.as_ref().unwrap().name.clone(), (c.score * 100.0).round() / 100.0, c.signals.clone())).collect();
    assert_eq!(
        summary,
        [
            (latin.clone(), 0.95, vec![S::Email as i32, S::Name as i32]),
            (homophone.clone(), 0.5, vec![S::NamePinyin as i32, S::Company as i32]),
            (by_phone.clone(), 0.5, vec![S::Phone as i32]),
        ],
        "ties oldest first; the same company alone (李娜) is no match"
    );

    // A draft, before creating: its phone in another form, normalised as CreateCustomer would.
    let draft = pb::FindDuplicatesRequest {
        customer: Some(with_phone(customer("Zhang W", ""), "+86 138-0000-0001")),
        max_candidates: 1,
        ..Default::default()
    };
    let found = duplicates(&app).find_duplicates(app.admin(draft)).await.unwrap().into_inner().candidates;
    assert_eq!(found.len(), 1, "max_candidates");
    assert_eq!(found[0].customer.as_ref().unwrap().name, zhang);

    // A lower bar shows the weaker ones too: a name alone.
    let lower = pb::FindDuplicatesRequest { min_score: 0.3, ..find(&latin) };
    let names: Vec<String> = duplicates(&app)
        .find_duplicates(app.admin(lower))
        .await
        .unwrap()
        .into_inner()
        .candidates
        .into_iter()
        .map(|c| c.customer.unwrap().name)
        .collect();
    assert!(names.contains(&homophone), "章伟 sounds like Wei Zhang: {names:?}");

    // Without pii, the candidates' emails and phones are masked.
    let masked = duplicates(&app).find_duplicates(app.as_roles(find(&zhang), &["readonly"])).await.unwrap().into_inner().candidates;
    let email = &masked[0].customer.as_ref().unwrap().emails[0].address;
    assert_ne!(email, "zhangwei+shop@gmail.com");
}

#[tokio::test]
async fn bad_requests_are_refused_before_any_work() {
    let app = spawn_app().await;
    let [zhang, ..] = family(&app).await;
    let both = pb::FindDuplicatesRequest { customer: Some(customer("X", "")), ..find(&zhang) };
    assert_error(duplicates(&app).find_duplicates(app.admin(both)).await, Code::InvalidArgument, "ONE_SUBJECT");
    assert_error(
        duplicates(&app).find_duplicates(app.admin(pb::FindDuplicatesRequest::default())).await,
        Code::InvalidArgument,
        "ONE_SUBJECT",
    );
    let score = pb::FindDuplicatesRequest { min_score: 1.5, ..find(&zhang) };
    assert_error(duplicates(&app).find_duplicates(app.admin(score)).await, Code::InvalidArgument, "OUT_OF_RANGE");
    let many = pb::FindDuplicatesRequest { max_candidates: 101, ..find(&zhang) };
    assert_error(duplicates(&app).find_duplicates(app.admin(many)).await, Code::InvalidArgument, "OUT_OF_RANGE");
    let bad_draft = pb::FindDuplicatesRequest { customer: Some(with_phone(customer("X", ""), "not a phone")), ..Default::default() };
    assert_error(duplicates(&app).find_duplicates(app.admin(bad_draft)).await, Code::InvalidArgument, "INVALID_PHONE");
    let unknown = find(&format!("customers/{}", uuid::Uuid::now_v7()));
    assert_error(duplicates(&app).find_duplicates(app.admin(unknown)).await, Code::NotFound, "NOT_FOUND");
    // Permission before existence.
    let unknown = find(&format!("customers/{}", uuid::Uuid::now_v7()));
    assert_error(duplicates(&app).find_duplicates(app.as_roles(unknown, &["nobody"])).await, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn the_scan_pairs_new_customers_and_forgets_deleted_ones() {
    let app = spawn_app_with(|c| c.duplicate_scan_ms = 100).await;
    let [zhang, latin, homophone, by_phone, _other] = family(&app).await;
    let list = |min_score: f64| pb::ListDuplicatesRequest { min_score, page_size: 2, ..Default::default() };
    // The scan leaves changes younger than 5 s to its next round.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let pairs = loop {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = duplicates(&app)
                .list_duplicates(app.admin(pb::ListDuplicatesRequest { page_token: token, ..list(0.0) }))
                .await
                .unwrap()
                .into_inner();
            all.extend(page.duplicates);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        if all.len() >= 4 || std::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let found: Vec<(String, String)> = pairs.iter().map(|p| (p.customer.clone(), p.duplicate.clone())).collect();
    // Most alike first, the older customer first in each pair; 张伟 and the phone match both at 0.5,
    // and the two 伟 by pinyin (章伟 and Wei Zhang, a name alone at 0.35) are below the default bar.
    assert_eq!(found[0], (zhang.clone(), latin.clone()));
    assert!(found.contains(&(zhang.clone(), by_phone.clone())) && found.contains(&(zhang.clone(), homophone.clone())), "{found:?}");
    assert!(pairs.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(pairs.iter().all(|p| p.score >= 0.5 && p.find_time.is_some()));
    let weaker = duplicates(&app).list_duplicates(app.admin(list(0.45))).await.unwrap().into_inner();
    assert_eq!(weaker.duplicates.len(), 2, "paged");

    app.customers
        .clone()
        .delete_customer(app.admin(pb::DeleteCustomerRequest { name: homophone.clone(), etag: String::new() }))
        .await
        .unwrap();
    let after =
        duplicates(&app).list_duplicates(app.admin(pb::ListDuplicatesRequest { page_size: 100, ..list(0.0) })).await.unwrap().into_inner();
    assert!(after.duplicates.iter().all(|p| p.customer != homophone && p.duplicate != homophone), "a deleted customer's pairs are gone");
    let bad = pb::ListDuplicatesRequest { min_score: 0.1, ..list(0.0) };
    assert_error(duplicates(&app).list_duplicates(app.admin(bad)).await, Code::InvalidArgument, "OUT_OF_RANGE");
}
