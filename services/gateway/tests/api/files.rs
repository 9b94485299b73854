//! Files through the gateway, against the real profiles ImportService: an
//! upload streamed into the client-streaming UploadImportFile (raw or as a
//! multipart form), and an import's refused rows streamed out of
//! DownloadImportErrors as a CSV, and customers exported by ExportCustomers
//! as CSV and XLSX downloads. What reached the backend is asserted by
//! what it made of it: the job's size, SHA-256, rows and name; and, for an
//! upload cut short, that no job exists at all (a truncated file must never
//! be taken for a complete one).

use std::time::Duration;

use crm_gateway::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use uuid::Uuid;

use crate::helpers::{Reply, TestGateway, path, reply, spawn_gateway_with_profiles_env};

/// The suite with an import worker that picks a started job up at once.
async fn spawn_files_gateway(customise: impl FnOnce(&mut Config)) -> TestGateway {
    spawn_gateway_with_profiles_env(&[("CRM_IMPORT_POLL_MS", "50".to_owned())], customise).await
}

/// `POST /v1/importJobs:upload{query}` with `body` as it is, of `content_type`.
async fn upload(gw: &TestGateway, query: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
    let request = gw
        .http
        .post(format!("{}/v1/importJobs:upload{query}", gw.base))
        .header("authorization", format!("Bearer {}", gw.admin_token))
        .header("content-type", content_type)
        .body(body);
    reply(request.send().await.expect("the gateway answers")).await
}

/// The tenant's import jobs (ListImportJobs).
async fn import_jobs(gw: &TestGateway) -> Vec<Value> {
    let listed = gw.call(Method::GET, "/v1/importJobs", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:#}", listed.body);
    listed.body["importJobs"].as_array().cloned().unwrap_or_default()
}

/// Watches the tenant's jobs for a while: none may appear. An upload cut
/// short must fail the backend's stream; had it ended cleanly, the backend
/// would have stored the bytes it got as a (truncated) file within moments.
async fn assert_no_job_is_stored(gw: &TestGateway) {
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let jobs = import_jobs(gw).await;
        assert!(jobs.is_empty(), "an upload cut short became a job: {jobs:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A CSV of customers, just over `min_len` bytes, and its number of data rows.
fn customers_csv(min_len: usize) -> (Vec<u8>, usize) {
    let mut file = b"name,email\n".to_vec();
    let mut rows = 0;
    while file.len() <= min_len {
        file.extend_from_slice(format!("Customer {rows},customer{rows}@example.com\n").as_bytes());
        rows += 1;
    }
    (file, rows)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends the head of `POST /v1/importJobs:upload{query}` (with
/// `extra_headers`, each ending in CRLF) declaring `declared` body bytes,
/// then only `sent` of them; returns the socket, still open.
async fn start_raw_upload(gw: &TestGateway, query: &str, declared: usize, extra_headers: &str, sent: &[u8]) -> TcpStream {
    let address = gw.base.strip_prefix("http://").expect("an http:// base");
    let mut socket = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/importJobs:upload{query} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/csv\r\nContent-Length: {declared}\r\n{extra_headers}\r\n",
        gw.admin_token
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(sent).await.unwrap();
    socket
}

/// Everything the gateway answers on `socket` until it closes it.
async fn read_answer(socket: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    // The gateway may close with a reset after answering: what was read counts.
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await.expect("an answer in time").ok();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Polls job `name` until its run has ended; returns it.
async fn wait_until_ended(gw: &TestGateway, name: &Value) -> Value {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let job = gw.call(Method::GET, &path(name), None).await;
        assert_eq!(job.status, StatusCode::OK, "{:#}", job.body);
        if job.body["state"] != "STATE_RUNNING" {
            return job.body;
        }
        assert!(Instant::now() < until, "the import still runs after 30 s: {:#}", job.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn download(gw: &TestGateway, job_id: &str) -> reqwest::Response {
    gw.http
        .get(format!("{}/v1/importJobs/{job_id}/errors:download", gw.base))
        .header("authorization", format!("Bearer {}", gw.admin_token))
        // Asked for, so that a compressed answer would show.
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("the gateway answers")
}

#[tokio::test]
async fn a_large_file_reaches_the_backend_whole_and_once() {
    // Arrange: three times the gateway's 1 MiB body limit, which does not apply here.
    let gw = spawn_files_gateway(|_| {}).await;
    let (file, rows) = customers_csv(3 * 1024 * 1024);
    let query = "?fileName=customers.csv&requestId=list-2026-11";

    // Act
    let uploaded = upload(&gw, query, "text/csv", file.clone()).await;

    // Assert: the backend read every byte, in order.
    assert_eq!(uploaded.status, StatusCode::OK, "{:#}", uploaded.body);
    let job = &uploaded.body;
    assert!(job["name"].as_str().is_some_and(|n| n.starts_with("importJobs/")), "{job:#}");
    assert_eq!(job["state"], "STATE_UPLOADED");
    assert_eq!(job["fileName"], "customers.csv");
    assert_eq!(job["sizeBytes"], file.len().to_string());
    assert_eq!(job["sha256"], sha256_hex(&file));
    assert_eq!(job["totalRows"], rows.to_string());
    assert_eq!(job["headers"], json!(["name", "email"]));

    // The same request id again is the same job, not a second one.
    let again = upload(&gw, query, "text/csv", file).await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);
    assert_eq!(again.body["name"], job["name"]);
    let jobs = import_jobs(&gw).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
}

#[tokio::test]
async fn a_browser_form_upload_streams_its_file_part() {
    // Arrange
    let gw = spawn_files_gateway(|_| {}).await;
    let file = "name,email\r\nAda,ada@example.com";
    let form = format!(
        "--b0undary\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
         --b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"browser.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{file}\r\n--b0undary--\r\n"
    );

    // Act
    let uploaded = upload(&gw, "?encoding=UTF-8", "multipart/form-data; boundary=b0undary", form).await;

    // Assert: the job is the part's file, nothing of the form around it.
    assert_eq!(uploaded.status, StatusCode::OK, "{:#}", uploaded.body);
    let job = &uploaded.body;
    assert_eq!(job["fileName"], "browser.csv");
    assert_eq!(job["encoding"], "UTF-8");
    assert_eq!(job["headers"], json!(["name", "email"]));
    assert_eq!(job["totalRows"], "1");
    assert_eq!(job["sizeBytes"], file.len().to_string());
    assert_eq!(job["sha256"], sha256_hex(file.as_bytes()));
}

#[tokio::test]
async fn an_order_list_uploads_as_a_transactions_job() {
    let gw = spawn_files_gateway(|_| {}).await;
    let file = "会员手机,订单号,交易时间,金额\n13800138000,T-1,2026-11-01 10:00,88\n";

    let uploaded = upload(&gw, "?fileName=orders.csv&kind=KIND_TRANSACTIONS", "text/csv", file).await;

    // The kind chose the vocabulary the columns are suggested from.
    assert_eq!(uploaded.status, StatusCode::OK, "{:#}", uploaded.body);
    assert_eq!(uploaded.body["kind"], "KIND_TRANSACTIONS");
    let fields: Vec<&str> = uploaded.body["suggestedMapping"].as_array().unwrap().iter().map(|m| m["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["customer_phone", "external_id", "occur_time", "amount"]);
}

#[tokio::test]
async fn refusals_are_json_errors_and_keep_nothing() {
    let gw = spawn_files_gateway(|_| {}).await;

    // The backend's: a broken XLSX (the start of a zip, PK\x03\x04, and no more), an encoding it does not read.
    let xlsx = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml".to_vec();
    let refused = upload(&gw, "?fileName=customers.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:#}", refused.body);
    assert_eq!(refused.body["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(refused.reason(), "UNREADABLE_XLSX");
    let refused = upload(&gw, "?fileName=customers.csv&encoding=EBCDIC", "text/csv", "name,email\nAda,ada@example.com\n").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:#}", refused.body);
    assert_eq!(refused.reason(), "UNKNOWN_ENCODING");

    // The gateway's own: a bad query parameter, a form without a file, no token.
    let refused = upload(&gw, "?bogus=1", "text/csv", "a,b\n").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:#}", refused.body);
    assert_eq!(refused.reason(), "UNKNOWN_QUERY_PARAMETER");
    let form = "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n";
    let refused = upload(&gw, "", "multipart/form-data; boundary=x", form).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{:#}", refused.body);
    assert_eq!(refused.reason(), "NO_FILE_PART");
    let anonymous = gw.http.post(format!("{}/v1/importJobs:upload?fileName=a.csv", gw.base)).header("content-type", "text/csv");
    let refused = reply(anonymous.body("name,email\n").send().await.unwrap()).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{:#}", refused.body);
    assert_eq!(refused.body["error"]["status"], "UNAUTHENTICATED");

    assert_eq!(import_jobs(&gw).await, Vec::<Value>::new(), "a refused upload is not kept");
}

#[tokio::test]
async fn an_upload_the_client_abandons_is_never_stored() {
    // Arrange: two of the gateway's 256 KiB messages reach the backend before the client goes.
    let gw = spawn_files_gateway(|_| {}).await;
    let (file, _) = customers_csv(600 * 1024);
    let query = "?fileName=cut.csv&requestId=cut-1";
    let socket = start_raw_upload(&gw, query, 10 * 1024 * 1024, "", &file).await;

    // Act: the client goes away mid-file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(socket);

    // Assert
    assert_no_job_is_stored(&gw).await;
    // Nor did it claim the request id: the retry of the whole file is a job of the whole file.
    let retried = upload(&gw, query, "text/csv", file.clone()).await;
    assert_eq!(retried.status, StatusCode::OK, "{:#}", retried.body);
    assert_eq!(retried.body["sizeBytes"], file.len().to_string());
    let jobs = import_jobs(&gw).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off_with_408_and_never_stored() {
    // Arrange: a first 256 KiB message reaches the backend before the client stalls.
    let gw = spawn_files_gateway(|c| c.request_timeout_ms = 1_000).await;
    let (start, _) = customers_csv(300 * 1024);
    let mut socket = start_raw_upload(&gw, "?fileName=stalled.csv", 1024 * 1024, "", &start).await;

    // Act: nothing more is sent.
    let answer = read_answer(&mut socket).await;

    // Assert
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_STALLED"), "{answer}");
    assert_no_job_is_stored(&gw).await;
}

#[tokio::test]
async fn an_upload_past_the_clients_deadline_is_cut_off_with_504_and_never_stored() {
    // Arrange: a first 256 KiB message reaches the backend, then the body
    // keeps trickling in, so the stall limit never fires.
    let gw = spawn_files_gateway(|_| {}).await;
    let (start, _) = customers_csv(300 * 1024);
    let mut socket = start_raw_upload(&gw, "?fileName=slow.csv", 1024 * 1024, "X-Request-Timeout: 300\r\n", &start).await;
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if socket.write_all(b"Ada,ada@example.com\n").await.is_err() {
                break;
            }
        }
    };

    // Act
    tokio::time::timeout(Duration::from_secs(5), trickle).await.expect("the trickle ends");
    let answer = read_answer(&mut socket).await;

    // Assert
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("DEADLINE_EXCEEDED"), "{answer}");
    assert_no_job_is_stored(&gw).await;
}

#[tokio::test]
async fn the_refused_rows_download_as_a_csv_to_fix() {
    // Arrange: an import of two rows, one with an invalid email address.
    let gw = spawn_files_gateway(|_| {}).await;
    let uploaded = upload(&gw, "?fileName=two.csv", "text/csv", "name,email\nAnn,ann@example.com\nBob,bob@example\n").await;
    assert_eq!(uploaded.status, StatusCode::OK, "{:#}", uploaded.body);
    let name = &uploaded.body["name"];
    let started = gw.call(Method::POST, &format!("{}:start", path(name)), Some(json!({"settings": {"mode": "MODE_CREATE_ONLY"}}))).await;
    assert_eq!(started.status, StatusCode::OK, "{:#}", started.body);
    let ended = wait_until_ended(&gw, name).await;
    assert_eq!(ended["state"], "STATE_SUCCEEDED", "{ended:#}");
    assert_eq!((&ended["progress"]["rowsCreated"], &ended["progress"]["rowsFailed"]), (&json!("1"), &json!("1")), "{ended:#}");

    // Act
    let id = name.as_str().unwrap().trim_start_matches("importJobs/");
    let response = download(&gw, id).await;

    // Assert: the file's header plus the error column, then Bob's row; Ann's was imported.
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment; filename=\"import-") && disposition.ends_with("-refused-rows.csv\""), "{disposition}");
    assert!(response.headers().get("content-length").is_none(), "streamed, not buffered");
    assert!(response.headers().get("content-encoding").is_none(), "sent as it arrives, not held by a compressor");
    let body = response.text().await.expect("the whole file");
    assert!(body.starts_with("\u{feff}name,email,错误 / Error\r\n"), "{body:?}");
    let rows: Vec<&str> = body.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{body:?}");
    assert!(rows[0].starts_with("Bob,bob@example,") && rows[0].contains("INVALID_EMAIL"), "{body:?}");
}

#[tokio::test]
async fn the_download_of_an_unknown_job_is_a_json_404() {
    let gw = spawn_files_gateway(|_| {}).await;

    let response = download(&gw, &Uuid::now_v7().to_string()).await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "NOT_FOUND");
}

/// `GET /v1/customers:export{query}` as the admin.
async fn export(gw: &TestGateway, query: &str) -> reqwest::Response {
    gw.http
        .get(format!("{}/v1/customers:export{query}", gw.base))
        .header("authorization", format!("Bearer {}", gw.admin_token))
        .send()
        .await
        .expect("the gateway answers")
}

#[tokio::test]
async fn customers_export_as_csv_and_xlsx_downloads() {
    // Arrange: two customers, one tagged.
    let gw = spawn_files_gateway(|_| {}).await;
    for (name, email, tags) in [("Ann", "ann@example.com", json!(["gold"])), ("Bob", "bob@example.com", json!([]))] {
        let created =
            gw.call(Method::POST, "/v1/customers", Some(json!({"displayName": name, "emails": [{"address": email}], "tags": tags}))).await;
        assert_eq!(created.status, StatusCode::OK, "{:#}", created.body);
    }

    // Act: the filter, the columns (repeated), the format, as query parameters.
    let csv = export(&gw, "?filter=tags:gold&columns=display_name&columns=email").await;
    let xlsx = export(&gw, "?format=EXPORT_FORMAT_XLSX").await;
    let bad = export(&gw, "?columns=emails").await;

    // Assert
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = csv.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment; filename=\"customers-") && disposition.ends_with(".csv\""), "{disposition}");
    assert!(csv.headers().get("content-length").is_none(), "streamed, not buffered");
    assert_eq!(csv.text().await.unwrap(), "\u{feff}display_name,email\r\nAnn,ann@example.com\r\n");
    assert_eq!(xlsx.status(), StatusCode::OK);
    assert_eq!(xlsx.headers()["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let workbook = xlsx.bytes().await.unwrap();
    assert!(workbook.starts_with(b"PK\x03\x04") && workbook.len() > 1_000, "a ZIP: {} bytes", workbook.len());
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    let details = body["error"]["details"].as_array().cloned().unwrap_or_default();
    let bad_request = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest").expect("field violations");
    assert_eq!(bad_request["fieldViolations"][0]["field"], "columns[0]", "{body:#}");
}
