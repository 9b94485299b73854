//! The `customer` role through REST: the services decide, the gateway only
//! forwards the token, so a customer app reaches its own data and no other.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestGateway, path, spawn_gateway};

/// Sends a request with `token` as the bearer.
async fn call_as(gw: &TestGateway, token: &str, method: Method, route: &str, body: Option<Value>) -> Reply {
    gw.call_with(method, route, body, &[("authorization", format!("Bearer {token}"))]).await
}

/// Opens a ticket for `customer` as admin.
async fn open(gw: &TestGateway, customer: &Value, subject: &str) -> Value {
    let reply = gw.call(Method::POST, "/v1/tickets", Some(json!({"customer": customer["name"], "subject": subject}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    reply.body.clone()
}

#[tokio::test]
async fn a_customer_app_reaches_its_own_data_and_no_one_elses() {
    let gw = spawn_gateway().await;
    let a = gw.create_customer("Ada", "ada@example.com").await;
    let b = gw.create_customer("Bob", "bob@example.com").await;
    let b_ticket = open(&gw, &b, "Bob's secret").await;
    let a_ticket = open(&gw, &a, "Ada's printer").await;
    let token = crm_testkit::auth::customer_token(gw.tenant, a["name"].as_str().unwrap());

    // Its own profile, PII unmasked; another customer's does not exist.
    let own = call_as(&gw, &token, Method::GET, &path(&a["name"]), None).await;
    assert_eq!(own.status, StatusCode::OK, "{:#}", own.body);
    assert_eq!(own.body["emails"][0]["address"], "ada@example.com");
    let other = call_as(&gw, &token, Method::GET, &path(&b["name"]), None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{:#}", other.body);
    assert_eq!(other.reason(), "NOT_FOUND");

    // PATCH: contacts of its own record only.
    let phones = json!({"phones": [{"number": "+8613812341234", "primary": true}]});
    let patched = call_as(&gw, &token, Method::PATCH, &format!("{}?updateMask=phones", path(&a["name"])), Some(phones.clone())).await;
    assert_eq!(patched.status, StatusCode::OK, "{:#}", patched.body);
    assert_eq!(patched.body["phones"][0]["number"], "+8613812341234");
    let renamed = call_as(
        &gw,
        &token,
        Method::PATCH,
        &format!("{}?updateMask=displayName", path(&a["name"])),
        Some(json!({"displayName": "Mallory"})),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::FORBIDDEN, "{:#}", renamed.body);
    let others = call_as(&gw, &token, Method::PATCH, &format!("{}?updateMask=phones", path(&b["name"])), Some(phones)).await;
    assert_eq!(others.status, StatusCode::NOT_FOUND, "{:#}", others.body);
    let deleted = call_as(&gw, &token, Method::DELETE, &path(&b["name"]), None).await;
    assert_eq!(deleted.status, StatusCode::FORBIDDEN, "{:#}", deleted.body);
    let listed = call_as(&gw, &token, Method::GET, "/v1/customers", None).await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN, "{:#}", listed.body);

    // Tickets: only its own are listed, whatever the filter asks for.
    let opened = call_as(&gw, &token, Method::POST, "/v1/tickets", Some(json!({"customer": a["name"], "subject": "App crashes"}))).await;
    assert_eq!(opened.status, StatusCode::OK, "{:#}", opened.body);
    let for_b = call_as(&gw, &token, Method::POST, "/v1/tickets", Some(json!({"customer": b["name"], "subject": "x"}))).await;
    assert_eq!(for_b.status, StatusCode::FORBIDDEN, "{:#}", for_b.body);
    let urgent = call_as(
        &gw,
        &token,
        Method::POST,
        "/v1/tickets",
        Some(json!({"customer": a["name"], "subject": "x", "priority": "PRIORITY_URGENT"})),
    )
    .await;
    assert_eq!(urgent.status, StatusCode::FORBIDDEN, "{:#}", urgent.body);
    let filter = format!("customer = \"{}\" OR status = STATUS_NEW", b["name"].as_str().unwrap());
    for route in ["/v1/tickets".to_owned(), format!("/v1/tickets?filter={}", urlencode(&filter))] {
        let list = call_as(&gw, &token, Method::GET, &route, None).await;
        assert_eq!(list.status, StatusCode::OK, "{:#}", list.body);
        let customers: Vec<&Value> = list.body["tickets"].as_array().unwrap().iter().map(|t| &t["customer"]).collect();
        assert_eq!(customers.len(), 2, "{route}: {:#}", list.body);
        assert!(customers.iter().all(|c| **c == a["name"]), "{route}: {:#}", list.body);
    }

    // Comments: public replies on its own tickets; B's ticket does not exist for it.
    let comment = json!({"body": "Any news?", "public": true});
    let on_own = call_as(&gw, &token, Method::POST, &format!("{}/comments", path(&a_ticket["name"])), Some(comment.clone())).await;
    assert_eq!(on_own.status, StatusCode::OK, "{:#}", on_own.body);
    assert_eq!(on_own.body["author"], a["name"]);
    let on_b = call_as(&gw, &token, Method::POST, &format!("{}/comments", path(&b_ticket["name"])), Some(comment)).await;
    assert_eq!(on_b.status, StatusCode::NOT_FOUND, "{:#}", on_b.body);
    let get_b = call_as(&gw, &token, Method::GET, &path(&b_ticket["name"]), None).await;
    assert_eq!(get_b.status, StatusCode::NOT_FOUND, "{:#}", get_b.body);
    let internal = call_as(
        &gw,
        &token,
        Method::POST,
        &format!("{}/comments", path(&a_ticket["name"])),
        Some(json!({"body": "psst", "public": false})),
    )
    .await;
    assert_eq!(internal.status, StatusCode::FORBIDDEN, "{:#}", internal.body);
    let transition =
        call_as(&gw, &token, Method::POST, &format!("{}:transition", path(&a_ticket["name"])), Some(json!({"status": "STATUS_CLOSED"})))
            .await;
    assert_eq!(transition.status, StatusCode::FORBIDDEN, "{:#}", transition.body);

    // Nothing of B's changed.
    let b_comments = gw.call(Method::GET, &format!("{}/comments", path(&b_ticket["name"])), None).await;
    assert!(b_comments.body["comments"].as_array().is_none_or(|c| c.is_empty()), "{:#}", b_comments.body);
    let b_now = gw.call(Method::GET, &path(&b["name"]), None).await;
    assert_eq!(b_now.body["displayName"], "Bob");
    assert!(b_now.body["phones"].is_null(), "{:#}", b_now.body);
}

/// Percent-encodes a query parameter value.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
