//! Customers through REST: the standard methods, field masks, etags, paging.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{path, spawn_gateway};

#[tokio::test]
async fn customers_lifecycle_over_http() {
    let gw = spawn_gateway().await;

    // Create.
    let created = gw.create_customer("Ada Lovelace", "ada@example.com").await;
    let name = created["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("customers/"));
    assert_eq!(created["displayName"], "Ada Lovelace", "lowerCamel JSON names");

    // Get, with the resource's etag as ETag.
    let got = gw.call(Method::GET, &path(&created["name"]), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["name"], name.as_str());
    assert_eq!(got.etag(), got.body["etag"].as_str().unwrap());
    assert!(got.headers.contains_key("x-request-id"));

    // Patch with an updateMask query parameter and If-Match.
    let patched = gw
        .call_with(
            Method::PATCH,
            &format!("{}?updateMask=displayName", path(&created["name"])),
            Some(json!({"displayName": "Ada King"})),
            &[("authorization", format!("Bearer {}", gw.admin_token)), ("if-match", format!("\"{}\"", got.etag()))],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:#}", patched.body);
    assert_eq!(patched.body["displayName"], "Ada King");
    assert_ne!(patched.etag(), got.etag(), "an update changes the etag");

    // A stale If-Match is a conflict.
    let stale = gw
        .call_with(
            Method::PATCH,
            &format!("{}?update_mask=display_name", path(&created["name"])),
            Some(json!({"displayName": "Ada Byron"})),
            &[("authorization", format!("Bearer {}", gw.admin_token)), ("if-match", format!("\"{}\"", got.etag()))],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{:#}", stale.body);
    assert_eq!(stale.body["error"]["status"], "ABORTED");

    // Delete (soft) and undelete with the custom verb.
    let deleted = gw.call(Method::DELETE, &path(&created["name"]), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:#}", deleted.body);
    let got = gw.call(Method::GET, &path(&created["name"]), None).await;
    assert!(got.body["deleteTime"].is_string(), "{:#}", got.body);
    let undeleted = gw.call(Method::POST, &format!("{}:undelete", path(&created["name"])), Some(json!({}))).await;
    assert_eq!(undeleted.status, StatusCode::OK, "{:#}", undeleted.body);
    assert!(undeleted.body["deleteTime"].is_null());
}

#[tokio::test]
async fn listing_pages_through_a_filter() {
    let gw = spawn_gateway().await;
    for i in 0..3 {
        gw.create_customer(&format!("Gold {i}"), &format!("gold{i}@example.com")).await;
    }
    gw.create_customer("Other", "other@example.com").await;

    let first = gw.call(Method::GET, "/v1/customers?filter=display_name%3Agold&pageSize=2&orderBy=display_name", None).await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    assert_eq!(first.body["customers"].as_array().unwrap().len(), 2);
    let token = first.body["nextPageToken"].as_str().expect("a next page").to_owned();
    let second = gw
        .call(Method::GET, &format!("/v1/customers?filter=display_name%3Agold&page_size=2&orderBy=display_name&pageToken={token}"), None)
        .await;
    assert_eq!(second.status, StatusCode::OK, "{:#}", second.body);
    let names: Vec<&str> = second.body["customers"].as_array().unwrap().iter().map(|c| c["displayName"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Gold 2"]);
    assert!(second.body.get("nextPageToken").is_none(), "the last page has no token: {:#}", second.body);
}
