//! Exporting customers and transactions: by filter and by segment, as CSV
//! (formulas neutralised) and XLSX (read back by a spreadsheet library), a
//! file an import takes back unchanged, personal data masked for callers
//! without `pii`, transactions by time range, every export audited (also
//! one the caller walked away from), and bad requests refused by name.

use std::{
    io::Cursor,
    time::{Duration, Instant, SystemTime},
};

use calamine::{Data, Reader, Xlsx};
use crm_proto::{
    crm::{
        common::v1::{EmailAddress, PhoneNumber, PostalAddress},
        profiles::v1::{
            self as pb, export::State, export_service_client::ExportServiceClient, import_settings as ps,
            transaction_service_client::TransactionServiceClient,
        },
    },
    google::r#type::{Date, Money},
};
use crm_testkit::auth::{token, with_token};
use futures::StreamExt;
use tonic::{Code, Request, Status, transport::Channel};

use crate::{
    helpers::{TestApp, assert_error, spawn_app, spawn_app_with, static_segment, violations},
    imports::{run, settings, upload},
};

fn exports(app: &TestApp) -> ExportServiceClient<Channel> {
    ExportServiceClient::new(app.channel.clone())
}

/// The whole file of a customer export, and its content type.
async fn export_customers(app: &TestApp, request: Request<pb::ExportCustomersRequest>) -> Result<(String, Vec<u8>), Status> {
    let mut stream = exports(app).export_customers(request).await?.into_inner();
    let (mut content_type, mut bytes) = (String::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?.chunk.unwrap();
        content_type = chunk.content_type;
        bytes.extend(chunk.data);
    }
    Ok((content_type, bytes))
}

/// The rows of a CSV export (BOM checked and dropped), split as RFC 4180 says.
fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).unwrap();
    let text = text.strip_prefix('\u{feff}').expect("a CSV export starts with a BOM");
    let (mut rows, mut row, mut cell, mut quoted, mut chars) = (Vec::new(), Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => cell.push(c),
        }
    }
    rows
}

fn column<'a>(rows: &'a [Vec<String>], name: &str) -> Vec<&'a str> {
    let at = rows[0].iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}: {:?}", rows[0]));
    rows[1..].iter().map(|r| r[at].as_str()).collect()
}

fn request(filter: &str) -> pb::ExportCustomersRequest {
    pb::ExportCustomersRequest { filter: filter.into(), order_by: "display_name".into(), ..Default::default() }
}

/// Ada: two emails, two phones, an address, a birthday, an external id, gold.
fn ada() -> pb::Customer {
    pb::Customer {
        display_name: "Ada Lovelace".into(),
        kind: pb::CustomerKind::Person as i32,
        given_name: "Ada".into(),
        family_name: "Lovelace".into(),
        emails: vec![
            EmailAddress { address: "ada@home.example".into(), label: "home".into(), primary: false },
            EmailAddress { address: "ada@work.example".into(), label: "work".into(), primary: true },
        ],
        phones: vec![
            PhoneNumber { number: "+8613812341234".into(), label: "mobile".into(), primary: true },
            PhoneNumber { number: "+442079460000".into(), label: "office".into(), primary: false },
        ],
        addresses: vec![PostalAddress {
            lines: vec!["1 St James's Square".into()],
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            country: "GB".into(),
            ..Default::default()
        }],
        company: "Analytical Engines, Ltd".into(),
        birthday: Some(Date { year: 1985, month: 12, day: 10 }),
        tags: vec!["gold".into(), "math".into()],
        attributes: Some(prost_types::Struct { fields: [("external_id".to_owned(), prost_types::Value::from("A-1".to_owned()))].into() }),
        ..Default::default()
    }
}

async fn audit(app: &TestApp) -> Vec<pb::Export> {
    exports(app).list_exports(app.admin(pb::ListExportsRequest::default())).await.unwrap().into_inner().exports
}

#[tokio::test]
async fn customers_export_by_filter_and_segment_and_import_back_unchanged() {
    let app = spawn_app().await;
    let ada = app.create(ada()).await;
    let mut bob = crate::helpers::customer("=HYPERLINK(\"http://evil\")", "bob@example.com");
    bob.tags = vec!["gold".into()];
    let bob = app.create(bob).await;
    let cyd = app.create(crate::helpers::customer("Cyd", "cyd@example.com")).await;

    let (content_type, bytes) = export_customers(&app, app.as_roles(request("tags:gold"), &["marketer"])).await.unwrap();
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let rows = csv_rows(&bytes);
    let expected_header = [
        "resource_name",
        "display_name",
        "given_name",
        "family_name",
        "kind",
        "email",
        "other_emails",
        "phone",
        "other_phones",
        "company",
        "job_title",
        "industry",
        "address",
        "city",
        "region",
        "postal_code",
        "country",
        "birthday",
        "tags",
        "locale",
        "time_zone",
        "external_id",
        "owner",
        "category",
        "source_channel",
        "lifecycle_stage",
        "value_tier",
        "create_time",
        "update_time",
    ];
    assert_eq!(rows[0], expected_header);
    assert_eq!(rows.len(), 3, "Ada and Bob, not Cyd: {rows:?}");
    assert_eq!(column(&rows, "resource_name"), [bob.name.as_str(), ada.name.as_str()], "ordered by display name ('=' sorts first)");
    // A cell a spreadsheet would run as a formula is neutralised.
    assert_eq!(column(&rows, "display_name")[0], "'=HYPERLINK(\"http://evil\")");
    let ada_row = |name: &str| column(&rows, name)[1].to_owned();
    assert_eq!(ada_row("email"), "ada@work.example", "the primary address first");
    assert_eq!(ada_row("other_emails"), "ada@home.example");
    assert_eq!((ada_row("phone"), ada_row("other_phones")), ("+8613812341234".into(), "+442079460000".into()));
    assert_eq!(
        (ada_row("address"), ada_row("city"), ada_row("postal_code")),
        ("1 St James's Square".into(), "London".into(), "SW1Y 4JH".into())
    );
    assert_eq!(
        (ada_row("company"), ada_row("birthday"), ada_row("tags")),
        ("Analytical Engines, Ltd".into(), "1985-12-10".into(), "gold, math".into())
    );
    assert_eq!((ada_row("external_id"), ada_row("kind")), ("A-1".into(), "PERSON".into()));

    // A static segment's members, and columns of the caller's choice.
    let segment = static_segment(&app, "Cyd only", &[&cyd.name]).await;
    let by_segment =
        pb::ExportCustomersRequest { segment: segment.clone(), columns: vec!["email".into(), "display_name".into()], ..Default::default() };
    let (_, bytes) = export_customers(&app, app.admin(by_segment)).await.unwrap();
    assert_eq!(csv_rows(&bytes), [vec!["email", "display_name"], vec!["cyd@example.com", "Cyd"]]);

    // The exported file imports back: every column maps by its name, and an upsert by email finds both customers.
    let (_, bytes) = export_customers(&app, app.admin(request("tags:gold"))).await.unwrap();
    let job = upload(&app, &bytes, "", "").await.unwrap();
    let mapped: Vec<(&str, &str)> =
        job.suggested_mapping.iter().filter(|m| !m.field.is_empty()).map(|m| (m.header.as_str(), m.field.as_str())).collect();
    assert!(mapped.contains(&("email", "email")) && mapped.contains(&("other_emails", "email")), "{mapped:?}");
    assert!(!mapped.iter().any(|(header, _)| *header == "resource_name"), "the resource name is no field: {mapped:?}");
    let mut upsert = settings(ps::Mode::Upsert);
    upsert.match_key = ps::MatchKey::Email as i32;
    let done = run(&app, &job.name, upsert).await;
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_valid, progress.rows_created, progress.rows_failed), (2, 0, 0), "{done:?}");
    let after = app.get(&ada.name).await.unwrap();
    assert_eq!((after.display_name.as_str(), after.tags.clone()), (ada.display_name.as_str(), ada.tags.clone()));
    let emails: Vec<(&str, bool)> = after.emails.iter().map(|e| (e.address.as_str(), e.primary)).collect();
    assert_eq!(emails, [("ada@work.example", true), ("ada@home.example", false)], "the primary stays primary");
    assert_eq!(app.get(&bob.name).await.unwrap().display_name, bob.display_name, "the neutralised formula comes back as it was");

    // Every export is audited, newest first.
    let entries = audit(&app).await;
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e.state == State::Succeeded as i32 && e.actor == "test-user" && e.finish_time.is_some()), "{entries:?}");
    let counts: Vec<(i64, &str, &str, bool)> =
        entries.iter().map(|e| (e.row_count, e.filter.as_str(), e.segment.as_str(), e.personal_data)).collect();
    assert_eq!(counts, [(2, "tags:gold", "", true), (1, "", segment.as_str(), true), (2, "tags:gold", "", true)]);
    assert_eq!(entries[1].columns, ["email", "display_name"]);
    assert!(entries[0].size_bytes > 300, "{:?}", entries[0]);
    let one = exports(&app).get_export(app.admin(pb::GetExportRequest { name: entries[2].name.clone() })).await.unwrap().into_inner();
    assert_eq!(one.export.unwrap(), entries[2]);
}

#[tokio::test]
async fn personal_data_is_masked_without_pii_and_bad_requests_are_refused_by_name() {
    let app = spawn_app().await;
    app.create(ada()).await;

    // An analyst exports without `pii`: personal cells masked, the audit says no personal data left.
    let (_, bytes) = export_customers(&app, app.as_roles(request(""), &["analyst"])).await.unwrap();
    let rows = csv_rows(&bytes);
    assert_eq!(column(&rows, "display_name"), ["A***"]);
    assert_eq!(column(&rows, "email"), ["a***@work.example"]);
    // A masked number is no number any more: its leading + is neutralised like any other.
    assert_eq!(column(&rows, "other_phones"), ["'+44******0000"]);
    assert_eq!(column(&rows, "birthday"), ["1***"]);
    assert_eq!(column(&rows, "address"), ["1***"]);
    assert_eq!(column(&rows, "company"), ["Analytical Engines, Ltd"], "not personal data");
    assert!(!audit(&app).await[0].personal_data);
    let with_attribute = pb::ExportCustomersRequest { columns: vec!["attributes.external_id".into()], ..request("") };
    let (_, bytes) = export_customers(&app, app.as_roles(with_attribute, &["analyst"])).await.unwrap();
    assert_eq!(csv_rows(&bytes)[1], ["A-1"], "the external id is an identifier, not personal data");

    // Who may export, and filter on what.
    let denied = export_customers(&app, app.as_roles(request(""), &["readonly"])).await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
    let by_email = export_customers(&app, app.as_roles(request("email = \"ada@work.example\""), &["analyst"])).await;
    assert_error(by_email, Code::PermissionDenied, "PERMISSION_DENIED");
    let audit_denied = exports(&app).list_exports(app.as_roles(pb::ListExportsRequest::default(), &["marketer"])).await;
    assert_error(audit_denied, Code::PermissionDenied, "PERMISSION_DENIED");

    // Bad requests name what is wrong, and leave no audit entry.
    let before = audit(&app).await.len();
    let bad_columns = pb::ExportCustomersRequest { columns: vec!["email".into(), "emails".into()], ..request("") };
    let status = export_customers(&app, app.admin(bad_columns)).await.unwrap_err();
    assert_eq!(violations(&status), [("columns[1]".to_owned(), "UNKNOWN_COLUMN".to_owned())]);
    let twice = pb::ExportCustomersRequest { columns: vec!["email".into(), "email".into()], ..request("") };
    let status = export_customers(&app, app.admin(twice)).await.unwrap_err();
    assert_eq!(violations(&status), [("columns[1]".to_owned(), "DUPLICATE_COLUMN".to_owned())]);
    assert_error(export_customers(&app, app.admin(request("nope = 1"))).await, Code::InvalidArgument, "INVALID_FILTER");
    let bad_format = pb::ExportCustomersRequest { format: 9, ..request("") };
    assert_error(export_customers(&app, app.admin(bad_format)).await, Code::InvalidArgument, "INVALID_VALUE");
    let unknown = pb::ExportCustomersRequest { segment: format!("segments/{}", uuid::Uuid::now_v7()), ..request("") };
    assert_error(export_customers(&app, app.admin(unknown)).await, Code::NotFound, "NOT_FOUND");
    assert_eq!(audit(&app).await.len(), before);

    // Another tenant sees neither the customers nor the audit.
    let other = token(uuid::Uuid::now_v7(), &["admin"]);
    let (_, bytes) = export_customers(&app, with_token(request(""), &other)).await.unwrap();
    assert_eq!(csv_rows(&bytes).len(), 1, "the header only");
    let theirs = exports(&app).list_exports(with_token(pb::ListExportsRequest::default(), &other)).await.unwrap().into_inner();
    assert_eq!(theirs.exports.len(), 1, "their own export only");
}

#[tokio::test]
async fn an_xlsx_export_reads_back_cell_for_cell() {
    let app = spawn_app().await;
    app.create(ada()).await;
    app.create(crate::helpers::customer("=1+2", "eq@example.com")).await;
    let (_, csv) = export_customers(&app, app.admin(request(""))).await.unwrap();
    let xlsx_request = pb::ExportCustomersRequest { format: pb::ExportFormat::Xlsx as i32, ..request("") };
    let (content_type, bytes) = export_customers(&app, app.admin(xlsx_request)).await.unwrap();
    assert_eq!(content_type, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).unwrap();
    let (name, sheet) = book.worksheets().remove(0);
    assert_eq!(name, "Sheet1");
    let cells: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::String(s) => s.clone(),
                    Data::Empty => String::new(),
                    other => panic!("every cell is text: {other:?}"),
                })
                .collect()
        })
        .collect();
    // The same cells as the CSV, except that a text cell needs no neutralising: it is never run.
    let mut expected = csv_rows(&csv);
    expected[1][1] = "=1+2".into();
    for row in &mut expected {
        while row.last().is_some_and(String::is_empty) {
            row.pop();
        }
    }
    let trimmed: Vec<Vec<String>> = cells
        .into_iter()
        .map(|mut r| {
            while r.last().is_some_and(String::is_empty) {
                r.pop();
            }
            r
        })
        .collect();
    assert_eq!(trimmed, expected);

    // The workbook imports back as it is: text cells keep the numbers' plus and the dates' text.
    let xlsx_request = pb::ExportCustomersRequest { format: pb::ExportFormat::Xlsx as i32, ..request("") };
    let (_, bytes) = export_customers(&app, app.admin(xlsx_request)).await.unwrap();
    let job = upload(&app, &bytes, "", "").await.unwrap();
    let mut upsert = settings(ps::Mode::Upsert);
    upsert.match_key = ps::MatchKey::Email as i32;
    upsert.dry_run = true;
    let done = run(&app, &job.name, upsert).await;
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_valid, progress.rows_created, progress.rows_failed), (2, 0, 0), "{done:?}");
}

#[tokio::test]
async fn transactions_export_by_time_range_oldest_first() {
    let app = spawn_app().await;
    let ada = app.create(ada()).await;
    let days_ago = |days: u64| Some(prost_types::Timestamp::from(SystemTime::now() - Duration::from_secs(days * 86_400)));
    let transactions = TransactionServiceClient::new(app.channel.clone());
    for (external_id, units, days) in [("T-1", 10, 10), ("T-2", 20, 5), ("T-3", 30, 1)] {
        let transaction = pb::Transaction {
            external_id: external_id.into(),
            kind: pb::TransactionKind::Purchase as i32,
            amount: Some(Money { currency_code: "CNY".into(), units, nanos: 500_000_000 }),
            occur_time: days_ago(days),
            store: "Haidian".into(),
            line_items: vec![pb::TransactionLineItem {
                product: "Filter".into(),
                sku: "F-1".into(),
                quantity: 2,
                unit_price: Some(Money { currency_code: "CNY".into(), units: 5, nanos: 250_000_000 }),
            }],
            ..Default::default()
        };
        let request = pb::CreateTransactionRequest { parent: ada.name.clone(), transaction: Some(transaction) };
        transactions.clone().create_transaction(app.admin(request)).await.unwrap();
    }
    let request = pb::ExportTransactionsRequest { start_time: days_ago(7), end_time: days_ago(0), ..Default::default() };
    let mut stream = exports(&app).export_transactions(app.as_roles(request, &["analyst"])).await.unwrap().into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend(chunk.unwrap().chunk.unwrap().data);
    }
    let rows = csv_rows(&bytes);
    assert_eq!(column(&rows, "external_id"), ["T-2", "T-3"]);
    assert_eq!(column(&rows, "amount"), ["20.50", "30.50"]);
    assert_eq!(column(&rows, "customer"), [ada.name.as_str(), ada.name.as_str()]);
    assert_eq!(column(&rows, "line_items")[0], "Filter × 2 @ 5.25");
    let entry = &audit(&app).await[0];
    assert_eq!((entry.kind, entry.row_count, entry.personal_data), (pb::export::Kind::Transactions as i32, 2, false));
    assert!(entry.range_start_time.is_some() && entry.range_end_time.is_some());

    let backwards = pb::ExportTransactionsRequest { start_time: days_ago(1), end_time: days_ago(2), ..Default::default() };
    let status = exports(&app).export_transactions(app.admin(backwards)).await.unwrap_err();
    assert_eq!(violations(&status), [("end_time".to_owned(), "EMPTY_RANGE".to_owned())]);
    let denied = exports(&app).export_transactions(app.as_roles(pb::ExportTransactionsRequest::default(), &["readonly"])).await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn an_export_the_caller_walks_away_from_is_audited_as_failed_and_frees_its_place() {
    let app = spawn_app_with(|config| config.export_concurrency = 1).await;
    // Enough customers that the file outgrows every buffer between the service and a caller that stops reading.
    let mut sheet = String::from("name,email,address,company\n");
    for i in 0..20_000 {
        sheet.push_str(&format!("Customer {i},c{i}@example.com,{i} Long Road With A Long Name,Company {i} Holdings Limited\n"));
    }
    let job = upload(&app, sheet.as_bytes(), "", "").await.unwrap();
    let done = run(&app, &job.name, settings(ps::Mode::CreateOnly)).await;
    assert_eq!(done.progress.unwrap().rows_created, 20_000);

    // Read whole across four pages in a descending order: every customer once, in order.
    let descending =
        pb::ExportCustomersRequest { order_by: "display_name desc".into(), columns: vec!["display_name".into()], ..request("") };
    let (_, bytes) = export_customers(&app, app.admin(descending)).await.unwrap();
    let names: Vec<String> = csv_rows(&bytes).into_iter().skip(1).map(|mut r| r.remove(0)).collect();
    let mut expected: Vec<String> = (0..20_000).map(|i| format!("Customer {i}")).collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(names, expected);

    let mut stream = exports(&app).export_customers(app.admin(request(""))).await.unwrap().into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.chunk.unwrap().data.is_empty());
    // While it is held open (and unread), this server streams no other export.
    let busy = export_customers(&app, app.admin(request(""))).await;
    assert_error(busy, Code::Unavailable, "TOO_MANY_EXPORTS");
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let entry = audit(&app).await.remove(0);
        if entry.state != State::Running as i32 {
            break entry;
        }
        assert!(Instant::now() < deadline, "the export never ended: {entry:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry.state, State::Failed as i32, "{entry:?}");
    assert!(entry.failure_message.starts_with("the caller went away or stopped reading after"), "{entry:?}");
    assert!(entry.row_count > 0 && entry.row_count < 20_000, "{entry:?}");
    // Its place is free again (once its entry is finished, moments after).
    let small = || app.admin(pb::ExportCustomersRequest { filter: "display_name = \"Customer 7\"".into(), ..request("") });
    let deadline = Instant::now() + Duration::from_secs(5);
    let bytes = loop {
        match export_customers(&app, small()).await {
            Ok((_, bytes)) => break bytes,
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(status) => panic!("the place was not freed: {status:?}"),
        }
    };
    assert_eq!(csv_rows(&bytes).len(), 2);
}
