//! Importing customers from spreadsheets: uploads streamed in chunks (UTF-8
//! with a BOM, GBK as Chinese Excel writes it), refused at once when they are
//! not CSV we can read, the suggested column correspondence, dry runs that
//! write nothing, create-only and upsert runs with their conflict rules, the
//! refused rows paged and as a CSV, one event per batch, the same request id
//! answering the same job, and who may do it.

use std::time::{Duration, Instant};

use crm_proto::crm::{
    events::v1::SubscribeRequest,
    profiles::v1::{self as pb, import_job::State, import_service_client::ImportServiceClient, import_settings as ps},
};
use crm_testkit::auth::{token, with_token};
use futures::StreamExt;
use prost::Message;
use tonic::{Code, Status, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app, spawn_app_with, violations};

fn imports(app: &TestApp) -> ImportServiceClient<Channel> {
    ImportServiceClient::new(app.channel.clone())
}

/// The messages of an upload of `bytes` in chunks of `chunk` bytes.
pub fn upload_messages(bytes: &[u8], chunk: usize, encoding: &str, request_id: &str) -> Vec<pb::UploadImportFileRequest> {
    let mut messages: Vec<pb::UploadImportFileRequest> = bytes
        .chunks(chunk.max(1))
        .map(|data| pb::UploadImportFileRequest {
            file: Some(crm_proto::google::api::HttpBody { content_type: String::new(), data: data.to_vec(), extensions: vec![] }),
            ..Default::default()
        })
        .collect();
    if messages.is_empty() {
        messages.push(pb::UploadImportFileRequest::default());
    }
    messages[0].file_name = "customers.csv".into();
    messages[0].encoding = encoding.into();
    messages[0].request_id = request_id.into();
    messages
}

/// Uploads `bytes` as the admin.
pub async fn upload(app: &TestApp, bytes: &[u8], encoding: &str, request_id: &str) -> Result<pb::ImportJob, Status> {
    let messages = upload_messages(bytes, 7_000, encoding, request_id);
    let response = imports(app).upload_import_file(with_token(tokio_stream::iter(messages), &app.admin_token)).await?;
    Ok(response.into_inner().import_job.unwrap())
}

pub fn settings(mode: ps::Mode) -> pb::ImportSettings {
    pb::ImportSettings { mode: mode as i32, calling_code: "86".into(), ..Default::default() }
}

/// Starts `job` and waits for its run to end.
pub async fn run(app: &TestApp, job: &str, settings: pb::ImportSettings) -> pb::ImportJob {
    let request = app.admin(pb::StartImportJobRequest { name: job.into(), settings: Some(settings) });
    imports(app).start_import_job(request).await.expect("starts");
    finished(app, job).await
}

/// `job` once it is no longer RUNNING.
async fn finished(app: &TestApp, job: &str) -> pb::ImportJob {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = imports(app).get_import_job(app.admin(pb::GetImportJobRequest { name: job.into() })).await.unwrap().into_inner();
        let job = job.import_job.unwrap();
        if job.state != State::Running as i32 {
            return job;
        }
        assert!(Instant::now() < deadline, "the import did not finish: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn errors(app: &TestApp, job: &str) -> Vec<pb::ImportError> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = app.admin(pb::ListImportErrorsRequest { parent: job.into(), page_size: 2, page_token });
        let page = imports(app).list_import_errors(request).await.unwrap().into_inner();
        all.extend(page.import_errors);
        if page.next_page_token.is_empty() {
            return all;
        }
        page_token = page.next_page_token;
    }
}

async fn all_customers(app: &TestApp) -> Vec<pb::Customer> {
    let request = app.admin(pb::ListCustomersRequest { page_size: 1000, ..Default::default() });
    app.customers.clone().list_customers(request).await.unwrap().into_inner().customers
}

const SHEET: &str = "\u{feff}客户名,手机,邮箱,公司,标签,生日,备注\r\n\
张三,13800138000,zhang@example.com,上海电气,\"vip、老客户\",1990年3月2日,展会\r\n\
李四,13900139000,li@example.com,,新客户,1985/7/1,\r\n\
王五,not-a-phone,wang@example,北京,,soon,\r\n\
\r\n\
赵六,13700137000,ZHANG@example.com,,,,\r\n\
\"Smith, Anna\",+44 20 7946 0000,anna@example.com,\"ACME \"\"UK\"\"\",,02-29,\"two\nlines\"\r\n";

#[tokio::test]
async fn a_sheet_is_uploaded_mapped_dry_run_and_imported_once() {
    let app = spawn_app().await;
    let mut events = app
        .events
        .clone()
        .subscribe(app.admin(SubscribeRequest { after_position: 0, types: vec!["crm.profiles.v1.CustomersImported".into()] }))
        .await
        .unwrap()
        .into_inner();

    let job = upload(&app, SHEET.as_bytes(), "", "").await.unwrap();
    assert_eq!(job.state, State::Uploaded as i32);
    assert_eq!((job.encoding.as_str(), job.delimiter.as_str(), job.total_rows), ("UTF-8", ",", 5));
    assert_eq!(job.headers, ["客户名", "手机", "邮箱", "公司", "标签", "生日", "备注"]);
    let suggested: Vec<(&str, f32)> = job.suggested_mapping.iter().map(|m| (m.field.as_str(), m.confidence)).collect();
    assert_eq!(
        suggested,
        [("display_name", 1.0), ("phone", 1.0), ("email", 1.0), ("company", 1.0), ("tags", 1.0), ("birthday", 1.0), ("", 0.0)]
    );

    // A dry run judges every row and writes no customer.
    let mut dry = settings(ps::Mode::CreateOnly);
    dry.dry_run = true;
    let checked = run(&app, &job.name, dry).await;
    assert_eq!(checked.state, State::Succeeded as i32);
    let progress = checked.progress.unwrap();
    assert_eq!((progress.rows_read, progress.rows_valid, progress.rows_failed, progress.rows_created), (5, 3, 2, 3));
    assert_eq!(progress.percent, 100.0);
    assert!(all_customers(&app).await.is_empty(), "a dry run writes nothing");
    let refused = errors(&app, &job.name).await;
    assert_eq!(refused.iter().map(|e| e.row).collect::<Vec<_>>(), [4, 5], "rows are records: the blank line is skipped");
    let reasons: Vec<(&str, i32, &str)> = refused[0].problems.iter().map(|p| (p.reason.as_str(), p.column, p.header.as_str())).collect();
    assert!(reasons.contains(&("INVALID_DATE", 5, "生日")), "{reasons:?}");
    assert!(refused[0].problems.iter().any(|p| p.column == 1 && p.value == "not-a-phone"), "{refused:?}");
    assert!(refused[0].problems.iter().any(|p| p.column == 2), "the email's column: {refused:?}");
    assert_eq!(refused[1].problems[0].reason, "DUPLICATE_IN_FILE", "{refused:?}");
    assert!(refused[1].problems[0].message.contains("row 2"), "{refused:?}");

    // The real run creates the valid rows, with every mapped field.
    let mut real = settings(ps::Mode::CreateOnly);
    real.mapping = job.suggested_mapping.clone();
    real.mapping[6].field = "attributes.备注".into();
    let done = run(&app, &job.name, real.clone()).await;
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_created, progress.rows_failed), (3, 2));
    let mut customers = all_customers(&app).await;
    customers.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    let names: Vec<&str> = customers.iter().map(|c| c.display_name.as_str()).collect();
    assert_eq!(names, ["Smith, Anna", "张三", "李四"]);
    let zhang = &customers[1];
    assert_eq!(zhang.phones[0].number, "+8613800138000");
    assert_eq!(zhang.emails[0].address, "zhang@example.com");
    assert_eq!(zhang.company, "上海电气");
    assert_eq!(zhang.tags, ["vip", "老客户"]);
    assert_eq!(zhang.birthday.as_ref().map(|b| (b.year, b.month, b.day)), Some((1990, 3, 2)));
    let note = zhang.attributes.as_ref().unwrap().fields.get("备注").unwrap();
    assert_eq!(note.kind, Some(prost_types::value::Kind::StringValue("展会".into())));
    let anna = &customers[0];
    assert_eq!((anna.company.as_str(), anna.phones[0].number.as_str()), ("ACME \"UK\"", "+442079460000"));
    assert_eq!(anna.birthday.as_ref().map(|b| (b.year, b.month, b.day)), Some((0, 2, 29)));

    // One event for the batch, naming the customers it created.
    let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap().event.unwrap();
    let imported = pb::CustomersImported::decode(event.data.unwrap().value.as_slice()).unwrap();
    assert_eq!(imported.import_job, job.name);
    let mut created = imported.created.clone();
    created.sort();
    let mut expected: Vec<String> = customers.iter().map(|c| c.name.clone()).collect();
    expected.sort();
    assert_eq!(created, expected);

    // A file is imported once.
    let again = imports(&app).start_import_job(app.admin(pb::StartImportJobRequest { name: job.name.clone(), settings: Some(real) })).await;
    assert_error(again, Code::FailedPrecondition, "ALREADY_IMPORTED");
}

#[tokio::test]
async fn the_refused_rows_download_as_a_csv_that_imports_once_fixed() {
    let app = spawn_app().await;
    let sheet =
        "name,phone,email\nAnn,+1 555 0100,ann@example.com\nBob,=cmd|' /C calc'!A0,bob@example\nCyd,+1 555 0102,\"cyd@example.com\"\n";
    let job = upload(&app, sheet.as_bytes(), "", "").await.unwrap();
    let done = run(&app, &job.name, settings(ps::Mode::CreateOnly)).await;
    assert_eq!(done.progress.unwrap().rows_failed, 1);

    let request = app.admin(pb::DownloadImportErrorsRequest { parent: job.name.clone() });
    let mut stream = imports(&app).download_import_errors(request).await.unwrap().into_inner();
    let mut csv = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap().chunk.unwrap();
        assert_eq!(chunk.content_type, "text/csv; charset=utf-8");
        csv.extend(chunk.data);
    }
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "\u{feff}name,phone,email,错误 / Error");
    assert!(lines[1].starts_with("Bob,'=cmd|' /C calc'!A0,bob@example,"), "a formula is neutralised: {csv}");
    assert!(lines[1].contains("INVALID_PHONE") || lines[1].contains("phone"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");

    // Fixed in the file and uploaded again, the row imports (the error column is not mapped).
    let fixed = csv.replace("'=cmd|' /C calc'!A0", "+1 555 0101").replace("bob@example,", "bob@example.com,");
    let job = upload(&app, fixed.as_bytes(), "", "").await.unwrap();
    assert_eq!(job.suggested_mapping[3].field, "", "the error column is left unmapped");
    let done = run(&app, &job.name, settings(ps::Mode::CreateOnly)).await;
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_created, progress.rows_failed), (1, 0));
    assert_eq!(all_customers(&app).await.len(), 3);
}

#[tokio::test]
async fn a_gbk_file_from_chinese_excel_is_detected_and_read() {
    let app = spawn_app().await;
    let text = "客户名,手机号,电子邮件,职位,地址\r\n陈小明,13800138001,chen@example.com,经理,南京路1号\r\n";
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable);
    let job = upload(&app, &gbk, "", "").await.unwrap();
    assert_eq!(job.encoding, "GB18030");
    assert_eq!(job.headers, ["客户名", "手机号", "电子邮件", "职位", "地址"]);
    let done = run(&app, &job.name, settings(ps::Mode::CreateOnly)).await;
    assert_eq!(done.progress.unwrap().rows_created, 1);
    let customer = &all_customers(&app).await[0];
    assert_eq!((customer.display_name.as_str(), customer.job_title.as_str()), ("陈小明", "经理"));
    assert_eq!(customer.addresses[0].lines, ["南京路1号"]);

    // Declared as UTF-8, the same bytes are refused at once, naming the first bad byte.
    let refused = upload(&app, &gbk, "UTF-8", "").await;
    let status = assert_error(refused, Code::InvalidArgument, "NOT_TEXT");
    assert!(status.message().contains("byte 0"), "{}", status.message());
}

#[tokio::test]
async fn files_that_are_not_csv_or_too_large_are_refused_at_once() {
    let app = spawn_app_with(|c| c.import_max_bytes = 100_000).await;
    let cases: [(&[u8], &str); 4] = [
        (b"PK\x03\x04\x14\x00\x06\x00rest of a zip", "UNREADABLE_XLSX"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1encrypted", "ENCRYPTED_FILE"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "NOT_A_SPREADSHEET"),
        (b"", "EMPTY_FILE"),
    ];
    for (bytes, reason) in cases {
        assert_error(upload(&app, bytes, "", "").await, Code::InvalidArgument, reason);
    }
    let big = format!("name\n{}", "x\n".repeat(60_000));
    assert_error(upload(&app, big.as_bytes(), "", "").await, Code::InvalidArgument, "FILE_TOO_LARGE");
    assert_error(upload(&app, b"name\nx\n", "EBCDIC", "").await, Code::InvalidArgument, "UNKNOWN_ENCODING");
    // A stream that ends short of the size its client declared (a client that gave up) is not a file.
    let mut messages = upload_messages(b"name\nAnn\nBob\n", 4, "", "");
    messages[0].size_bytes = 100;
    let cut = imports(&app).upload_import_file(with_token(tokio_stream::iter(messages), &app.admin_token)).await;
    assert_error(cut, Code::InvalidArgument, "UPLOAD_INCOMPLETE");
    // Nothing of a refused upload is kept.
    let jobs = imports(&app).list_import_jobs(app.admin(pb::ListImportJobsRequest::default())).await.unwrap().into_inner();
    assert!(jobs.import_jobs.is_empty());
}

#[tokio::test]
async fn the_same_request_id_is_the_same_job_and_another_file_under_it_is_refused() {
    let app = spawn_app().await;
    let first = upload(&app, SHEET.as_bytes(), "", "upload-1").await.unwrap();
    let again = upload(&app, SHEET.as_bytes(), "", "upload-1").await.unwrap();
    assert_eq!(again.name, first.name);
    assert_eq!(again.sha256, first.sha256);
    let other = upload(&app, b"name\nx\n", "", "upload-1").await;
    assert_error(other, Code::AlreadyExists, "REQUEST_ID_REUSED");
    let jobs = imports(&app).list_import_jobs(app.admin(pb::ListImportJobsRequest::default())).await.unwrap().into_inner();
    assert_eq!(jobs.import_jobs.len(), 1);
}

#[tokio::test]
async fn an_upsert_updates_by_phone_under_its_conflict_rules_and_reports_ambiguous_rows() {
    let app = spawn_app().await;
    let mut existing = customer("Old Name", "old@example.com");
    existing.phones = vec![crm_proto::crm::common::v1::PhoneNumber { number: "+8613800138000".into(), ..Default::default() }];
    existing.company = "Old Co".into();
    existing.tags = vec!["kept".into()];
    let existing = app.create(existing).await;
    for name in ["Twin A", "Twin B"] {
        let mut twin = customer(name, "");
        twin.phones = vec![crm_proto::crm::common::v1::PhoneNumber { number: "+8613900139000".into(), ..Default::default() }];
        app.create(twin).await;
    }
    let sheet = "name,phone,company,job title,tags,email\n\
                 New Name,13800138000,New Co,Buyer,added,new@example.com\n\
                 Someone,13900139000,,,,\n\
                 Fresh,13700137000,Fresh Co,,,fresh@example.com\n";
    let job = upload(&app, sheet.as_bytes(), "", "").await.unwrap();
    let mut upsert = settings(ps::Mode::Upsert);
    upsert.match_key = ps::MatchKey::Phone as i32;
    upsert.conflict_rule = ps::ConflictRule::FillBlanks as i32;
    upsert.field_rules.insert("company".into(), ps::ConflictRule::Overwrite as i32);
    upsert.field_rules.insert("display_name".into(), ps::ConflictRule::Keep as i32);
    let done = run(&app, &job.name, upsert).await;
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_updated, progress.rows_created, progress.rows_failed), (1, 1, 1), "{:?}", errors(&app, &job.name).await);

    let updated = app.get(&existing.name).await.unwrap();
    assert_eq!(updated.display_name, "Old Name", "KEEP");
    assert_eq!(updated.company, "New Co", "OVERWRITE");
    assert_eq!(updated.job_title, "Buyer", "a blank filled");
    assert_eq!(updated.tags, ["kept", "added"], "a list added to");
    let emails: Vec<&str> = updated.emails.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(emails, ["old@example.com", "new@example.com"]);
    let refused = errors(&app, &job.name).await;
    assert_eq!((refused[0].row, refused[0].problems[0].reason.as_str()), (3, "AMBIGUOUS_MATCH"));
    assert!(all_customers(&app).await.iter().any(|c| c.display_name == "Fresh"));
}

#[tokio::test]
async fn a_row_matching_a_stored_customer_is_reported_not_merged_in_create_only() {
    let app = spawn_app().await;
    let stored = app.create(customer("Ann", "ann@example.com")).await;
    let job = upload(&app, b"name,email\nAnn Again,ANN@example.com\n", "", "").await.unwrap();
    let done = run(&app, &job.name, settings(ps::Mode::CreateOnly)).await;
    assert_eq!(done.progress.unwrap().rows_failed, 1);
    let refused = errors(&app, &job.name).await;
    assert_eq!(refused[0].problems[0].reason, "EMAIL_ALREADY_USED");
    assert!(refused[0].problems[0].message.contains(&stored.name), "{refused:?}");
    assert_eq!(all_customers(&app).await.len(), 1);
}

#[tokio::test]
async fn bad_settings_are_refused_naming_each_field_and_jobs_end_as_asked() {
    let app = spawn_app().await;
    let job = upload(&app, b"name,phone,email\nAnn,+1 555 0100,ann@example.com\n", "", "").await.unwrap();
    let bad = pb::ImportSettings {
        mode: ps::Mode::Upsert as i32,
        mapping: vec![
            pb::ColumnMapping { column: 0, field: "display_name".into(), ..Default::default() },
            pb::ColumnMapping { column: 0, field: "company".into(), ..Default::default() },
            pb::ColumnMapping { column: 1, field: "nickname".into(), ..Default::default() },
            pb::ColumnMapping { column: 9, field: "email".into(), ..Default::default() },
        ],
        calling_code: "86x".into(),
        ..Default::default()
    };
    let refused =
        imports(&app).start_import_job(app.admin(pb::StartImportJobRequest { name: job.name.clone(), settings: Some(bad) })).await;
    let status = assert_error(refused, Code::InvalidArgument, "INVALID_FIELDS");
    let named: Vec<(String, String)> = violations(&status);
    for expected in [
        ("settings.mapping[1].column", "DUPLICATE_COLUMN"),
        ("settings.mapping[2].field", "UNKNOWN_FIELD"),
        ("settings.mapping[3].column", "OUT_OF_RANGE"),
        ("settings.match_key", "MATCH_KEY_REQUIRED"),
        ("settings.calling_code", "INVALID_CALLING_CODE"),
    ] {
        assert!(named.iter().any(|(f, r)| f == expected.0 && r == expected.1), "{expected:?} in {named:?}");
    }
    let no_mode = imports(&app)
        .start_import_job(app.admin(pb::StartImportJobRequest { name: job.name.clone(), settings: Some(Default::default()) }))
        .await;
    assert_error(no_mode, Code::InvalidArgument, "MODE_REQUIRED");

    // Cancelled, it cannot be started; cancelling again answers the same.
    for _ in 0..2 {
        let cancelled = imports(&app).cancel_import_job(app.admin(pb::CancelImportJobRequest { name: job.name.clone() })).await;
        assert_eq!(cancelled.unwrap().into_inner().import_job.unwrap().state, State::Cancelled as i32);
    }
    let start = imports(&app)
        .start_import_job(app.admin(pb::StartImportJobRequest { name: job.name.clone(), settings: Some(settings(ps::Mode::CreateOnly)) }))
        .await;
    assert_error(start, Code::FailedPrecondition, "JOB_CANCELLED");
}

#[tokio::test]
async fn only_importers_of_the_tenant_see_its_jobs() {
    let app = spawn_app().await;
    let job = upload(&app, b"name\nAnn\n", "", "").await.unwrap();
    let as_analyst = imports(&app).get_import_job(app.as_roles(pb::GetImportJobRequest { name: job.name.clone() }, &["analyst"])).await;
    assert_error(as_analyst, Code::PermissionDenied, "PERMISSION_DENIED");
    let messages = upload_messages(b"name\nAnn\n", 100, "", "");
    let upload_as_analyst =
        imports(&app).upload_import_file(with_token(tokio_stream::iter(messages), &token(app.tenant, &["analyst"]))).await;
    assert_eq!(upload_as_analyst.unwrap_err().code(), Code::PermissionDenied);
    let as_marketer = imports(&app).get_import_job(app.as_roles(pb::GetImportJobRequest { name: job.name.clone() }, &["marketer"])).await;
    assert!(as_marketer.is_ok());
    let other_tenant = with_token(pb::GetImportJobRequest { name: job.name.clone() }, &token(uuid::Uuid::now_v7(), &["admin"]));
    assert_error(imports(&app).get_import_job(other_tenant).await, Code::NotFound, "NOT_FOUND");

    // A marketer may dry-run a list, not create customers from it (nor change fields it may not write).
    let start = |settings: pb::ImportSettings| {
        let request = app.as_roles(pb::StartImportJobRequest { name: job.name.clone(), settings: Some(settings) }, &["marketer"]);
        let mut client = imports(&app);
        async move { client.start_import_job(request).await }
    };
    assert_error(start(settings(ps::Mode::CreateOnly)).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let mut dry = settings(ps::Mode::CreateOnly);
    dry.dry_run = true;
    start(dry).await.expect("a marketer's dry run");
    assert_eq!(finished(&app, &job.name).await.state, State::Succeeded as i32);
    assert!(all_customers(&app).await.is_empty());
}

/// A workbook as a spreadsheet program writes it: a cover sheet first, then
/// the customers with numbers typed as numbers and a birthday as a date,
/// and a blank row between two customers.
fn workbook() -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut book = Workbook::new();
    let cover = book.add_worksheet();
    cover.set_name("说明").unwrap();
    cover.write_string(0, 0, "填写说明：每行一位客户").unwrap();
    let sheet = book.add_worksheet();
    sheet.set_name("客户").unwrap();
    for (column, header) in ["客户名", "手机", "邮箱", "生日", "积分"].iter().enumerate() {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    let date = Format::new().set_num_format("yyyy-mm-dd");
    sheet.write_string(1, 0, "张三").unwrap();
    sheet.write_number(1, 1, 13800138000.0).unwrap();
    sheet.write_string(1, 2, "zhang@example.com").unwrap();
    sheet.write_datetime_with_format(1, 3, ExcelDateTime::from_ymd(1990, 3, 2).unwrap(), &date).unwrap();
    sheet.write_number(1, 4, 12.5).unwrap();
    sheet.write_string(3, 0, "李四").unwrap();
    sheet.write_number(3, 1, 13900139000.0).unwrap();
    sheet.write_string(3, 2, "not-an-email").unwrap();
    book.save_to_buffer().unwrap()
}

#[tokio::test]
async fn an_xlsx_written_by_a_spreadsheet_library_imports_from_a_named_sheet_numbered_as_excel_numbers_rows() {
    let app = spawn_app().await;
    let bytes = workbook();
    let upload_sheet = |sheet: &str| {
        let mut messages = upload_messages(&bytes, 4_096, "", "");
        messages[0].sheet = sheet.into();
        let (mut client, request) = (imports(&app), with_token(tokio_stream::iter(messages), &app.admin_token));
        async move { client.upload_import_file(request).await }
    };
    let missing = upload_sheet("Sheet9").await;
    let status = assert_error(missing, Code::InvalidArgument, "SHEET_NOT_FOUND");
    assert!(status.message().contains("说明") && status.message().contains("客户"), "the sheets are named: {}", status.message());

    let job = upload_sheet("客户").await.unwrap().into_inner().import_job.unwrap();
    assert_eq!((job.format.as_str(), job.sheet.as_str(), job.encoding.as_str(), job.total_rows), ("XLSX", "客户", "", 2));
    assert_eq!(job.headers, ["客户名", "手机", "邮箱", "生日", "积分"]);
    let mut run_settings = settings(ps::Mode::CreateOnly);
    run_settings.mapping = job.suggested_mapping.clone();
    run_settings.mapping[4].field = "attributes.积分".into();
    let done = run(&app, &job.name, run_settings).await;
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_created, progress.rows_failed), (1, 1), "{:?}", errors(&app, &job.name).await);
    let refused = errors(&app, &job.name).await;
    assert_eq!(refused[0].row, 4, "as Excel numbers it (the blank row 3 counts)");
    let zhang = &all_customers(&app).await[0];
    assert_eq!(zhang.phones[0].number, "+8613800138000", "a number cell reads as the digits the user typed");
    assert_eq!(zhang.birthday.as_ref().map(|b| (b.year, b.month, b.day)), Some((1990, 3, 2)), "a date cell reads as a date");
    let points = zhang.attributes.as_ref().unwrap().fields.get("积分").unwrap();
    assert_eq!(points.kind, Some(prost_types::value::Kind::StringValue("12.5".into())));

    // The first sheet by default: the cover, a header without rows.
    let cover = upload_sheet("").await.unwrap().into_inner().import_job.unwrap();
    assert_eq!((cover.sheet.as_str(), cover.total_rows), ("说明", 0));
}

#[tokio::test]
async fn files_and_refused_rows_are_deleted_after_the_retention_period() {
    let app = spawn_app_with(|config| config.import_retention_secs = 2).await;
    // A job run to its end with a refused row, and one uploaded and never started.
    let run_job = upload(&app, b"name,email\nAnn,ann@example.com\nBob,bob@example\n", "", "").await.unwrap();
    let done = run(&app, &run_job.name, settings(ps::Mode::CreateOnly)).await;
    assert_eq!(done.progress.as_ref().unwrap().rows_failed, 1);
    assert_eq!(errors(&app, &run_job.name).await.len(), 1, "kept for now");
    assert!(done.purge_time.is_none());
    let idle_job = upload(&app, b"name,email\nCyd,cyd@example.com\n", "", "").await.unwrap();

    // Both are purged once the period has passed since they ended (or were uploaded).
    let deadline = Instant::now() + Duration::from_secs(30);
    let purged = |job: pb::ImportJob| job.purge_time.is_some();
    loop {
        let jobs = imports(&app).list_import_jobs(app.admin(pb::ListImportJobsRequest::default())).await.unwrap().into_inner().import_jobs;
        if jobs.len() == 2 && jobs.into_iter().all(purged) {
            break;
        }
        assert!(Instant::now() < deadline, "the jobs were never purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nothing personal is left: no stored file, no refused row; the counts stay.
    assert!(errors(&app, &run_job.name).await.is_empty());
    let mut db = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut db).await.unwrap();
    let left: (i64, i64) = sqlx::query_as("SELECT (SELECT count(*) FROM import_file_chunks), (SELECT count(*) FROM import_errors)")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(left, (0, 0));
    let after = finished(&app, &run_job.name).await;
    assert_eq!(after.progress.unwrap().rows_failed, 1, "the job's counts stay");
    // A job whose file is gone cannot be started.
    let start = imports(&app)
        .start_import_job(
            app.admin(pb::StartImportJobRequest { name: idle_job.name.clone(), settings: Some(settings(ps::Mode::CreateOnly)) }),
        )
        .await;
    assert_error(start, Code::FailedPrecondition, "FILE_EXPIRED");
}

#[tokio::test]
async fn an_upsert_by_external_id_dry_runs_then_updates_the_customers_it_names() {
    let app = spawn_app().await;
    let with_id = |name: &str, email: &str, id: &str| {
        let mut c = customer(name, email);
        c.attributes = Some(prost_types::Struct { fields: [("external_id".to_owned(), prost_types::Value::from(id.to_owned()))].into() });
        c
    };
    let ann = app.create(with_id("Ann", "ann@example.com", "C-1")).await;
    let bob = app.create(with_id("Bob", "bob@example.com", "C-2")).await;
    let sheet = "客户编号,姓名,公司\nC-1,Ann Smith,Acme\nC-2,,Beta\nC-3,Cyd,Gamma\n";
    let job = upload(&app, sheet.as_bytes(), "", "").await.unwrap();
    let suggested: Vec<&str> = job.suggested_mapping.iter().map(|m| m.field.as_str()).collect();
    assert_eq!(suggested, ["external_id", "display_name", "company"]);
    let mut upsert = settings(ps::Mode::Upsert);
    upsert.match_key = ps::MatchKey::ExternalId as i32;

    // A dry run says what the run would do, and does none of it.
    let dry = run(&app, &job.name, pb::ImportSettings { dry_run: true, ..upsert.clone() }).await;
    let progress = dry.progress.unwrap();
    assert_eq!((progress.rows_updated, progress.rows_created, progress.rows_failed), (2, 1, 0), "{dry:?}");
    assert_eq!(app.get(&ann.name).await.unwrap().display_name, "Ann");
    assert_eq!(all_customers(&app).await.len(), 2);

    // The real run updates the two it names by their external ids and creates the third.
    let done = run(&app, &job.name, upsert).await;
    let progress = done.progress.unwrap();
    assert_eq!((progress.rows_updated, progress.rows_created, progress.rows_failed), (2, 1, 0), "{done:?}");
    let ann = app.get(&ann.name).await.unwrap();
    assert_eq!((ann.display_name.as_str(), ann.company.as_str()), ("Ann Smith", "Acme"));
    let bob = app.get(&bob.name).await.unwrap();
    assert_eq!((bob.display_name.as_str(), bob.company.as_str()), ("Bob", "Beta"), "a blank cell changes nothing");
    let cyd = all_customers(&app).await.into_iter().find(|c| c.display_name == "Cyd").expect("created");
    let id = cyd.attributes.unwrap().fields.remove("external_id").unwrap();
    assert_eq!(id.kind, Some(prost_types::value::Kind::StringValue("C-3".into())));
}

#[tokio::test]
async fn a_running_job_cancelled_stops_between_batches_and_keeps_what_it_wrote() {
    let app = spawn_app().await;
    let mut sheet = String::from("name,email\n");
    for i in 0..20_000 {
        sheet.push_str(&format!("Customer {i},c{i}@example.com\n"));
    }
    let job = upload(&app, sheet.as_bytes(), "", "").await.unwrap();
    let start = pb::StartImportJobRequest { name: job.name.clone(), settings: Some(settings(ps::Mode::CreateOnly)) };
    imports(&app).start_import_job(app.admin(start)).await.unwrap();
    // Let the worker take it and write a batch or two.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rows_created(&app, &job.name).await == 0 {
        assert!(Instant::now() < deadline, "the job never started writing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let cancelled = imports(&app).cancel_import_job(app.admin(pb::CancelImportJobRequest { name: job.name.clone() })).await.unwrap();
    assert_eq!(cancelled.into_inner().import_job.unwrap().state, State::Cancelled as i32);

    // What was written stays, exactly as the job counts it; nothing more is written after.
    let count = || async {
        let mut db = app.app_connection().await;
        sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut db).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM customers").fetch_one(&mut db).await.unwrap()
    };
    let written = count().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count().await, written, "no batch commits after the cancel");
    let job = finished(&app, &job.name).await;
    assert_eq!(job.state, State::Cancelled as i32);
    assert_eq!(job.progress.unwrap().rows_created, written);
    assert!(written > 0 && written < 20_000, "{written}");
}

/// Rows created so far by `job`.
async fn rows_created(app: &TestApp, job: &str) -> i64 {
    let job = imports(app).get_import_job(app.admin(pb::GetImportJobRequest { name: job.into() })).await.unwrap().into_inner();
    job.import_job.unwrap().progress.map_or(0, |p| p.rows_created)
}

#[tokio::test]
async fn the_duplicate_matcher_reports_likely_duplicates_and_upserts_the_one_a_row_is_like() {
    let app = spawn_app().await;
    let mut zhang = customer("张伟", "");
    zhang.phones = vec![crm_proto::crm::common::v1::PhoneNumber { number: "+8613800000001".into(), label: String::new(), primary: true }];
    zhang.company = "华为技术有限公司".into();
    let zhang = app.create(zhang).await;
    let anna = app.create(customer("Anna Smith", "anna@example.com")).await;
    for email in ["fang1@example.com", "fang2@example.com"] {
        let mut wang = customer("王芳", email);
        wang.phones =
            vec![crm_proto::crm::common::v1::PhoneNumber { number: "+8613700137000".into(), label: String::new(), primary: true }];
        app.create(wang).await;
    }
    let sheet = "name,phone,email,company,title\n张伟,13800000001,,华为技术有限公司,工程师\nAnna Smith,,ANNA@example.com,,CTO\n李四,13900139000,,,\n王芳,13700137000,,,\n张伟,13800000001,,,高级工程师\n";
    let job = upload(&app, sheet.as_bytes(), "", "").await.unwrap();

    // CREATE_ONLY: rows like a stored customer are reported, not created and not merged.
    let mut create = settings(ps::Mode::CreateOnly);
    (create.match_key, create.dry_run) = (ps::MatchKey::Duplicates as i32, true);
    let done = run(&app, &job.name, create).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_created, p.rows_failed), (1, 4), "{done:?}");
    let reasons: Vec<(i64, String)> = errors(&app, &job.name).await.iter().map(|e| (e.row, e.problems[0].reason.clone())).collect();
    let likely = |row: i64| (row, "LIKELY_DUPLICATE".to_owned());
    assert_eq!(reasons, [likely(2), likely(3), likely(5), likely(6)]);

    // UPSERT: each row updates the one customer it is like; a row like two is ambiguous.
    let mut upsert = settings(ps::Mode::Upsert);
    upsert.match_key = ps::MatchKey::Duplicates as i32;
    let done = run(&app, &job.name, upsert).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_created, p.rows_updated, p.rows_failed), (1, 2, 2), "{done:?}");
    let reasons: Vec<(i64, String)> = errors(&app, &job.name).await.iter().map(|e| (e.row, e.problems[0].reason.clone())).collect();
    // A second row about 张伟 in the batch would undo the first from his stored state: refused.
    assert_eq!(reasons, [(5, "AMBIGUOUS_MATCH".to_owned()), (6, "DUPLICATE_IN_FILE".to_owned())]);
    assert_eq!(app.get(&zhang.name).await.unwrap().job_title, "工程师");
    assert_eq!(app.get(&anna.name).await.unwrap().job_title, "CTO");
}
