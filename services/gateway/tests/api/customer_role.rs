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

#[tokio::test]
async fn a_customers_reply_reopens_a_pending_ticket_and_an_agents_does_not() {
    let gw = spawn_gateway().await;
    let policy =
        json!({"displayName": "Normal", "priority": "PRIORITY_NORMAL", "firstResponseTarget": "3600s", "resolutionTarget": "7200s"});
    let created = gw.call(Method::POST, "/v1/slaPolicies", Some(policy)).await;
    assert_eq!(created.status, StatusCode::OK, "{:#}", created.body);
    let ada = gw.create_customer("Ada", "ada@example.com").await;
    let ticket = open(&gw, &ada, "Printer jams").await;
    let route = path(&ticket["name"]);
    let token = crm_testkit::auth::customer_token(gw.tenant, ada["name"].as_str().unwrap());
    let status = |reply: &Reply| reply.body["status"].as_str().unwrap_or_default().to_owned();

    let waiting =
        gw.call(Method::POST, &format!("{route}:transition"), Some(json!({"status": "STATUS_PENDING", "reason": "model?"}))).await;
    assert_eq!(waiting.status, StatusCode::OK, "{:#}", waiting.body);
    assert!(waiting.body["ticket"]["resolutionDue"].is_null(), "paused while waiting: {:#}", waiting.body);

    // The agent's own reply (public) leaves the ticket waiting on the customer.
    let agent = gw.call(Method::POST, &format!("{route}/comments"), Some(json!({"body": "Which model?", "public": true}))).await;
    assert_eq!(agent.status, StatusCode::OK, "{:#}", agent.body);
    assert_eq!(status(&gw.call(Method::GET, &route, None).await), "STATUS_PENDING");

    // The customer's reply is what the service waited for.
    let reply = call_as(&gw, &token, Method::POST, &format!("{route}/comments"), Some(json!({"body": "LaserJet 4", "public": true}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    let reopened = gw.call(Method::GET, &route, None).await;
    assert_eq!(status(&reopened), "STATUS_OPEN", "{:#}", reopened.body);
    assert!(reopened.body["resolutionDue"].is_string(), "the resolution clock runs again: {:#}", reopened.body);
    assert_eq!(reopened.body["reopenCount"].as_i64().unwrap_or(0), 0, "back from PENDING is not a reopening of a resolved ticket");
    let seen_by_customer = call_as(&gw, &token, Method::GET, &route, None).await;
    assert_eq!(status(&seen_by_customer), "STATUS_OPEN");

    let timeline = gw.call(Method::GET, &format!("{route}/events"), None).await;
    assert_eq!(timeline.status, StatusCode::OK, "{:#}", timeline.body);
    let entries = timeline.body["events"].as_array().expect("timeline entries");
    let change = entries
        .iter()
        .find(|e| e["kind"] == "STATUS_CHANGED" && e["detail"].as_str().unwrap_or_default().starts_with("PENDING → OPEN"))
        .unwrap_or_else(|| panic!("a STATUS_CHANGED entry: {:#}", timeline.body));
    assert_eq!(change["actor"], ada["name"], "{change:#}");
    assert!(change["detail"].as_str().unwrap().contains("the customer replied"), "{change:#}");

    // Already OPEN: another reply changes nothing.
    let again =
        call_as(&gw, &token, Method::POST, &format!("{route}/comments"), Some(json!({"body": "Also: tray 2", "public": true}))).await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);
    let after = gw.call(Method::GET, &format!("{route}/events"), None).await;
    let changes = after.body["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "STATUS_CHANGED").count();
    assert_eq!(changes, 2, "PENDING, then OPEN once: {:#}", after.body);
}

/// Staff-only fields of a ticket (JSON names): how the desk triages and works it.
const STAFF_ONLY: &[&str] = &[
    "priority",
    "category",
    "tags",
    "team",
    "assignee",
    "slaPolicy",
    "firstResponseDue",
    "resolutionDue",
    "firstResponseSla",
    "resolutionSla",
    "pendingDuration",
    "reopenCount",
];

/// Whether `ticket` shows none of the staff-only fields (absent or the default).
fn staff_fields_shown(ticket: &Value) -> Vec<&'static str> {
    let default = |v: &Value| {
        v.is_null()
            || v == ""
            || v == 0
            || v == "0s"
            || v.as_array().is_some_and(|a| a.is_empty())
            || v.as_str().is_some_and(|s| s.ends_with("_UNSPECIFIED"))
    };
    STAFF_ONLY.iter().copied().filter(|field| !default(&ticket[*field])).collect()
}

#[tokio::test]
async fn a_customer_sees_no_staff_only_field_through_any_rpc_it_can_call() {
    let gw = spawn_gateway().await;
    for priority in ["PRIORITY_NORMAL", "PRIORITY_URGENT"] {
        let policy = json!({"displayName": priority, "priority": priority, "firstResponseTarget": "3600s", "resolutionTarget": "7200s"});
        assert_eq!(gw.call(Method::POST, "/v1/slaPolicies", Some(policy)).await.status, StatusCode::OK);
    }
    let team = gw.call(Method::POST, "/v1/teams", Some(json!({"displayName": "VIP desk"}))).await;
    assert_eq!(team.status, StatusCode::OK, "{:#}", team.body);
    let ada = gw.create_customer("Ada", "ada@example.com").await;
    let token = crm_testkit::auth::customer_token(gw.tenant, ada["name"].as_str().unwrap());

    // CreateTicket, as the customer.
    let created = call_as(
        &gw,
        &token,
        Method::POST,
        "/v1/tickets",
        Some(json!({"customer": ada["name"], "subject": "Refund?", "description": "Order 7"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{:#}", created.body);
    assert_eq!(staff_fields_shown(&created.body), Vec::<&str>::new(), "CreateTicket: {:#}", created.body);
    assert_eq!(created.body["subject"], "Refund?");
    let route = path(&created.body["name"]);

    // The desk triages and works it: every staff-only field gets a value.
    let triage = json!({"priority": "PRIORITY_URGENT", "category": "billing", "tags": ["vip", "angry"], "team": team.body["name"]});
    let updated = gw.call(Method::PATCH, &format!("{route}?updateMask=priority,category,tags,team"), Some(triage)).await;
    assert_eq!(updated.status, StatusCode::OK, "{:#}", updated.body);
    let assigned = gw.call(Method::POST, &format!("{route}:assign"), Some(json!({"assignee": "agent-alice@corp"}))).await;
    assert_eq!(assigned.status, StatusCode::OK, "{:#}", assigned.body);
    let reply = json!({"body": "Refund on its way", "public": true});
    assert_eq!(gw.call(Method::POST, &format!("{route}/comments"), Some(reply)).await.status, StatusCode::OK);
    let note = json!({"body": "Customer is a known complainer", "public": false});
    assert_eq!(gw.call(Method::POST, &format!("{route}/comments"), Some(note)).await.status, StatusCode::OK);
    for (to, reason) in [("STATUS_PENDING", "waiting for the bank"), ("STATUS_OPEN", "")] {
        let moved = gw.call(Method::POST, &format!("{route}:transition"), Some(json!({"status": to, "reason": reason}))).await;
        assert_eq!(moved.status, StatusCode::OK, "{:#}", moved.body);
    }
    let staff_view = gw.call(Method::GET, &route, None).await;
    for field in ["priority", "category", "tags", "team", "assignee", "slaPolicy", "resolutionDue", "resolutionSla"] {
        assert!(staff_fields_shown(&staff_view.body).contains(&field), "staff see {field}: {:#}", staff_view.body);
    }

    // GetTicket and ListTickets, as the customer.
    let got = call_as(&gw, &token, Method::GET, &route, None).await;
    assert_eq!(got.status, StatusCode::OK, "{:#}", got.body);
    assert_eq!(staff_fields_shown(&got.body), Vec::<&str>::new(), "GetTicket: {:#}", got.body);
    assert_eq!((got.body["status"].as_str(), got.body["description"].as_str()), (Some("STATUS_OPEN"), Some("Order 7")));
    let listed = call_as(&gw, &token, Method::GET, "/v1/tickets", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:#}", listed.body);
    let tickets = listed.body["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(staff_fields_shown(&tickets[0]), Vec::<&str>::new(), "ListTickets: {:#}", listed.body);
    // Filtering on a staff-only field would tell its value.
    for filter in ["priority = PRIORITY_URGENT", "assignee = \"agent-alice@corp\"", "tags = \"vip\"", "category = \"billing\""] {
        let probe = call_as(&gw, &token, Method::GET, &format!("/v1/tickets?filter={}", urlencode(filter)), None).await;
        assert_eq!(probe.status, StatusCode::FORBIDDEN, "{filter}: {:#}", probe.body);
    }
    let allowed = call_as(&gw, &token, Method::GET, &format!("/v1/tickets?filter={}", urlencode("status = STATUS_OPEN")), None).await;
    assert_eq!(allowed.status, StatusCode::OK, "{:#}", allowed.body);

    // A stored answer replayed to a customer is seen as a customer sees it: here the desk's own
    // CreateTicket answer (same request id and body), which shows the priority to staff.
    let body = json!({"customer": ada["name"], "subject": "Same", "description": "Same"});
    let by_staff = gw.call(Method::POST, "/v1/tickets?requestId=same-request-1", Some(body.clone())).await;
    assert_eq!(by_staff.body["priority"], "PRIORITY_NORMAL", "{:#}", by_staff.body);
    let replayed = call_as(&gw, &token, Method::POST, "/v1/tickets?requestId=same-request-1", Some(body)).await;
    assert_eq!(replayed.status, StatusCode::OK, "{:#}", replayed.body);
    assert_eq!(replayed.body["name"], by_staff.body["name"], "a replay");
    assert_eq!(staff_fields_shown(&replayed.body), Vec::<&str>::new(), "replayed CreateTicket: {:#}", replayed.body);

    // AddComment and ListComments: their own name on their replies, none on the staff's, no internal notes.
    let own = call_as(&gw, &token, Method::POST, &format!("{route}/comments"), Some(json!({"body": "Thanks!", "public": true}))).await;
    assert_eq!(own.status, StatusCode::OK, "{:#}", own.body);
    assert_eq!(own.body["author"], ada["name"]);
    let comments = call_as(&gw, &token, Method::GET, &format!("{route}/comments"), None).await;
    assert_eq!(comments.status, StatusCode::OK, "{:#}", comments.body);
    let comments = comments.body["comments"].as_array().unwrap().clone();
    assert_eq!(comments.len(), 2, "the staff's reply and theirs, not the note: {comments:#?}");
    let staff_reply = comments.iter().find(|c| c["body"] == "Refund on its way").unwrap();
    assert!(staff_reply["author"].is_null() || staff_reply["author"] == "", "no staff identity: {staff_reply:#}");
    let theirs = comments.iter().find(|c| c["body"] == "Thanks!").unwrap();
    assert_eq!(theirs["author"], ada["name"]);
    let staff_comments = gw.call(Method::GET, &format!("{route}/comments"), None).await;
    let staff_reply =
        staff_comments.body["comments"].as_array().unwrap().iter().find(|c| c["body"] == "Refund on its way").cloned().unwrap();
    assert!(staff_reply["author"].as_str().is_some_and(|a| !a.is_empty()), "staff see who replied: {staff_reply:#}");
}
