//! ListCustomers: filters, ordering, keyset paging and page-token integrity.

use std::collections::HashSet;

use crm_proto::crm::{common::v1::PostalAddress, profiles::v1 as pb};
use sqlx::Connection;
use tonic::Code;

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

async fn list(app: &TestApp, request: pb::ListCustomersRequest) -> Result<pb::ListCustomersResponse, tonic::Status> {
    Ok(app.customers.clone().list_customers(app.admin(request)).await?.into_inner())
}

async fn names(app: &TestApp, filter: &str) -> Vec<String> {
    let response =
        list(app, pb::ListCustomersRequest { filter: filter.into(), order_by: "display_name".into(), ..Default::default() }).await.unwrap();
    response.customers.into_iter().map(|c| c.display_name).collect()
}

#[tokio::test]
async fn filters_select_the_right_customers() {
    let app = spawn_app().await;
    app.create(pb::Customer {
        category: pb::CustomerCategory::Vip as i32,
        tags: vec!["gold".into()],
        company: "Acme Corp".into(),
        addresses: vec![PostalAddress { city: "Berlin".into(), country: "DE".into(), ..Default::default() }],
        birthday: Some(crm_proto::google::r#type::Date { year: 1990, month: 11, day: 22 }),
        source_channel: pb::SourceChannel::WebForm as i32,
        ..customer("Ada", "ada@example.com")
    })
    .await;
    app.create(pb::Customer {
        category: pb::CustomerCategory::Regular as i32,
        tags: vec!["silver".into()],
        company: "Initech".into(),
        ..customer("Bob", "bob@example.com")
    })
    .await;
    app.create(pb::Customer { tags: vec!["gold".into(), "new".into()], ..customer("Cy 100%_sure", "") }).await;

    assert_eq!(names(&app, "category = VIP").await, ["Ada"]);
    assert_eq!(names(&app, "category != VIP").await, ["Bob", "Cy 100%_sure"]);
    assert_eq!(names(&app, "tags:gold").await, ["Ada", "Cy 100%_sure"]);
    assert_eq!(names(&app, "tags:gold AND NOT tags:new").await, ["Ada"]);
    assert_eq!(names(&app, "email = \"BOB@example.com\"").await, ["Bob"]);
    assert_eq!(names(&app, "company:acme OR company = Initech").await, ["Ada", "Bob"]);
    assert_eq!(names(&app, "display_name = B*").await, ["Bob"]);
    assert_eq!(names(&app, "display_name:\"100%_\"").await, ["Cy 100%_sure"], "LIKE metacharacters match literally");
    assert_eq!(names(&app, "display_name:\"%\" AND display_name:\"u\"").await, ["Cy 100%_sure"]);
    assert_eq!(names(&app, "city = Berlin AND country = DE").await, ["Ada"]);
    assert_eq!(names(&app, "birthday.month = 11 AND birthday.day = 22").await, ["Ada"]);
    assert_eq!(names(&app, "source_channel = WEB_FORM").await, ["Ada"]);
    assert_eq!(names(&app, "create_time > \"2000-01-01T00:00:00Z\"").await.len(), 3);
    assert!(names(&app, "create_time < \"2000-01-01T00:00:00Z\"").await.is_empty());
}

#[tokio::test]
async fn hostile_filters_and_orders_are_invalid_argument() {
    let app = spawn_app().await;
    for (filter, reason) in [
        ("display_name = \"x'); DROP TABLE customers; --\"", None),
        ("display_name; DROP TABLE customers", Some("INVALID_FILTER")),
        ("nope = 1", Some("INVALID_FILTER")),
        ("category = GOLD", Some("INVALID_FILTER")),
        (&*format!("{}a = 1{}", "(".repeat(100), ")".repeat(100)), Some("FILTER_TOO_COMPLEX")),
        (&*format!("display_name = \"{}\"", "x".repeat(10_000)), Some("FILTER_TOO_COMPLEX")),
    ] {
        let result = list(&app, pb::ListCustomersRequest { filter: filter.into(), ..Default::default() }).await;
        match reason {
            None => assert!(result.unwrap().customers.is_empty()),
            Some(reason) => {
                assert_error(result, Code::InvalidArgument, reason);
            }
        }
    }
    assert_error(
        list(&app, pb::ListCustomersRequest { order_by: "email".into(), ..Default::default() }).await,
        Code::InvalidArgument,
        "INVALID_ORDER_BY",
    );
    assert_error(
        list(&app, pb::ListCustomersRequest { page_size: -1, ..Default::default() }).await,
        Code::InvalidArgument,
        "INVALID_PAGE_SIZE",
    );
    // The table survived.
    app.create(customer("Still here", "")).await;
}

#[tokio::test]
async fn page_tokens_are_bound_to_their_query_and_tamper_proof() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create(customer(&format!("C{i}"), "")).await;
    }
    let first =
        list(&app, pb::ListCustomersRequest { page_size: 1, filter: "display_name = C*".into(), ..Default::default() }).await.unwrap();
    let token = first.next_page_token;
    assert!(!token.is_empty());
    let other_filter = list(&app, pb::ListCustomersRequest { page_size: 1, page_token: token.clone(), ..Default::default() }).await;
    assert_error(other_filter, Code::InvalidArgument, "PAGE_TOKEN_MISMATCH");
    let mut tampered = token.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = list(
        &app,
        pb::ListCustomersRequest {
            page_size: 1,
            filter: "display_name = C*".into(),
            page_token: String::from_utf8(tampered).unwrap(),
            ..Default::default()
        },
    )
    .await;
    assert_error(tampered, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
}

/// Pages through every customer with `page_size` and `order_by`; returns ids in order.
async fn page_all(app: &TestApp, page_size: i32, order_by: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(app, pb::ListCustomersRequest { page_size, page_token: token, order_by: order_by.into(), ..Default::default() })
            .await
            .unwrap();
        assert!(page.customers.len() <= page_size.clamp(1, 1000) as usize);
        seen.extend(page.customers.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            return seen;
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn paging_ten_thousand_customers_sees_each_exactly_once_while_others_insert() {
    let app = spawn_app().await;
    // Seed 10 000 customers directly (as the service role, under RLS), with
    // clashing display names and create times so that tie-breaking matters.
    let mut conn = sqlx::PgConnection::connect(&app.db.app_url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(app.tenant.to_string()).execute(&mut *tx).await.unwrap();
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, display_name, create_time, update_time)
         SELECT $1, uuidv7_like, 'Name ' || (n % 97), now() - (n % 13) * interval '1 second', now()
         FROM (SELECT n, (lpad(to_hex(n), 8, '0') || '-0000-7000-8000-000000000000')::uuid AS uuidv7_like FROM generate_series(1, 10000) n) s",
    )
    .bind(app.tenant)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let existing: HashSet<String> = page_all(&app, 1000, "").await.into_iter().collect();
    assert_eq!(existing.len(), 10_000);

    // Concurrent writers insert while readers page with several sizes and orders.
    let writer = {
        let mut client = app.customers.clone();
        let token = app.admin_token.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let request = crm_testkit::auth::with_token(
                    pb::CreateCustomerRequest { customer: Some(customer(&format!("Name {}", i % 97), "")), request_id: String::new() },
                    &token,
                );
                client.create_customer(request).await.unwrap();
            }
        })
    };
    for (page_size, order_by) in [(7, "display_name"), (333, "create_time desc"), (1000, "display_name desc, create_time")] {
        let ids = page_all(&app, page_size, order_by).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "no customer twice (page_size {page_size}, {order_by})");
        assert!(existing.iter().all(|id| unique.contains(id)), "every existing customer seen (page_size {page_size}, {order_by})");
    }
    writer.await.unwrap();
}
