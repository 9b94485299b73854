//! Importing related persons and occupancies (bulk move-ins and move-outs)
//! from spreadsheets: whose each row is, Chinese headers and values read, a
//! file imported twice adding nothing twice, the premises' history judged
//! row by row in file order, one event per batch, and who may run it.

use std::time::Duration;

use crm_proto::crm::{
    common::v1::PhoneNumber,
    events::v1::SubscribeRequest,
    profiles::v1::{
        self as pb, import_job::Kind, import_settings as ps, premises_service_client::PremisesServiceClient,
        related_person_service_client::RelatedPersonServiceClient,
    },
};
use crm_proto::google::r#type::Date;
use futures::StreamExt;
use tonic::Code;

use crate::{
    helpers::{TestApp, assert_error, customer, spawn_app},
    imports::run,
    transaction_imports::{refusals, start, upload_kind},
};

fn settings(dry_run: bool) -> pb::ImportSettings {
    pb::ImportSettings { mode: ps::Mode::CreateOnly as i32, calling_code: "86".into(), dry_run, ..Default::default() }
}

/// A customer with a mobile number.
async fn with_phone(app: &TestApp, name: &str, phone: &str) -> pb::Customer {
    let mut c = customer(name, "");
    c.phones = vec![PhoneNumber { number: phone.into(), label: String::new(), primary: true }];
    app.create(c).await
}

/// The next event of `types` from the start of the tenant's stream.
async fn first_event(app: &TestApp, type_name: &str) -> Vec<u8> {
    let request = app.admin(SubscribeRequest { after_position: 0, types: vec![type_name.into()] });
    let mut events = app.events.clone().subscribe(request).await.unwrap().into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap().event.unwrap();
    event.data.unwrap().value
}

fn sorted(mut found: Vec<(i64, String, String)>) -> Vec<(i64, String, String)> {
    found.sort();
    found
}

fn expected(rows: &[(i64, &str, &str)]) -> Vec<(i64, String, String)> {
    rows.iter().map(|(row, field, reason)| (*row, (*field).to_owned(), (*reason).to_owned())).collect()
}

const MEMBERS: &str = "客户手机,成员姓名,关系,手机,性别,生日,备注\n\
13800138000,李娜,妻子,13900139001,女,1990年3月2日,VIP\n\
13800138000,小明,儿子,,男,2015-06-01,\n\
13800138000,李娜,配偶,,,,\n\
13600000000,王五,父亲,,,,\n\
13800138000,,同事,,,,\n\
13800138000,张三,邻居,,,,\n\
+86 138 0013 8000,小明,儿子,,,,\n";

#[tokio::test]
async fn members_are_added_to_their_customers_once() {
    let app = spawn_app().await;
    let ada = with_phone(&app, "Ada", "+8613800138000").await;
    let job = upload_kind(&app, MEMBERS.as_bytes(), Kind::RelatedPersons).await;
    let suggested: Vec<&str> = job.suggested_mapping.iter().map(|m| m.field.as_str()).collect();
    assert_eq!(suggested, ["customer_phone", "display_name", "relation", "phone", "gender", "birthday", "note"]);

    let dry = run(&app, &job.name, settings(true)).await;
    let p = dry.progress.unwrap();
    assert_eq!((p.rows_valid, p.rows_created, p.rows_failed), (2, 2, 5), "{dry:?}");
    let persons = RelatedPersonServiceClient::new(app.channel.clone());
    let list = || pb::ListRelatedPersonsRequest { parent: ada.name.clone(), page_size: 50, ..Default::default() };
    assert!(persons.clone().list_related_persons(app.admin(list())).await.unwrap().into_inner().related_persons.is_empty());

    // A marketer may check the file, not add the persons; an agent may.
    assert_error(start(&app, &job.name, settings(false), &["marketer"]).await, Code::PermissionDenied, "PERMISSION_DENIED");
    start(&app, &job.name, settings(false), &["agent"]).await.unwrap();
    let done = run_to_end(&app, &job.name).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_valid, p.rows_created, p.rows_failed), (2, 2, 5), "{done:?}");
    assert_eq!(
        sorted(refusals(&app, &job.name).await),
        expected(&[
            (4, "display_name", "DUPLICATE_IN_FILE"),
            (5, "customer_phone", "CUSTOMER_NOT_FOUND"),
            (6, "display_name", "REQUIRED"),
            (7, "relation", "INVALID_RELATION"),
            // The same customer written another way is the same customer.
            (8, "display_name", "DUPLICATE_IN_FILE"),
        ])
    );
    let mut added = persons.clone().list_related_persons(app.admin(list())).await.unwrap().into_inner().related_persons;
    added.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    let li = &added[1];
    assert_eq!((li.display_name.as_str(), li.relation, li.gender), ("李娜", pb::Relation::Spouse as i32, pb::Gender::Female as i32));
    assert_eq!((li.phones[0].number.as_str(), li.birthday), ("+8613900139001", Some(Date { year: 1990, month: 3, day: 2 })));
    assert_eq!((added[0].display_name.as_str(), added[0].relation), ("小明", pb::Relation::Child as i32));

    let event = <pb::RelatedPersonsImported as prost::Message>::decode(
        first_event(&app, "crm.profiles.v1.RelatedPersonsImported").await.as_slice(),
    )
    .unwrap();
    let mut names = event.related_persons.clone();
    names.sort();
    let mut stored: Vec<String> = added.iter().map(|p| p.name.clone()).collect();
    stored.sort();
    assert_eq!((event.import_job, names), (job.name.clone(), stored));

    // The same list again adds nobody twice.
    let again = upload_kind(&app, format!("{MEMBERS}\n").as_bytes(), Kind::RelatedPersons).await;
    let done = run(&app, &again.name, settings(false)).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_valid, p.rows_created), (2, 0));
    assert_eq!(persons.clone().list_related_persons(app.admin(list())).await.unwrap().into_inner().related_persons.len(), 2);
}

/// Job `name` once it has ended (started by someone else).
async fn run_to_end(app: &TestApp, name: &str) -> pb::ImportJob {
    let client = pb::import_service_client::ImportServiceClient::new(app.channel.clone());
    for _ in 0..600 {
        let job = client.clone().get_import_job(app.admin(pb::GetImportJobRequest { name: name.into() })).await.unwrap().into_inner();
        let job = job.import_job.unwrap();
        if job.state != pb::import_job::State::Running as i32 {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the import did not end");
}

const MOVES: &str = "房号,客户手机,身份,迁入日期,迁出日期\n\
A-101,13800138000,业主,2020-01-01,\n\
A-101,13900139000,业主,2023-05-01,\n\
A-102,13800138000,租户,2021-01-01,2022-01-01\n\
A-102,13700137000,租户,2024/1/1,\n\
A-102,13700137000,租户,,2026年11月1日\n\
A-103,13800138000,业主,2020-01-01,\n\
A-101,13700137000,业主,2023-01-01,\n\
A-101,13800138000,住户,,\n\
A-101,13800138000,guest,2020-01-01,\n\
A-102,13900139000,租户,,2026-12-01\n\
A-101,13700137000,业主,2019-01-01,2019-12-31\n";

#[tokio::test]
async fn a_file_of_moves_rewrites_the_premises_history_in_file_order_once() {
    let app = spawn_app().await;
    let premises = PremisesServiceClient::new(app.channel.clone());
    let mut units = Vec::new();
    for code in ["A-101", "A-102"] {
        let p = pb::Premises { unit_code: code.into(), ..Default::default() };
        let request = app.as_roles(pb::CreatePremisesRequest { premises: Some(p), request_id: String::new() }, &["agent"]);
        units.push(premises.clone().create_premises(request).await.unwrap().into_inner().premises.unwrap());
    }
    let ada = with_phone(&app, "Ada", "+8613800138000").await;
    let bob = with_phone(&app, "Bob", "+8613900139000").await;
    let cid = with_phone(&app, "Cid", "+8613700137000").await;

    let job = upload_kind(&app, MOVES.as_bytes(), Kind::Occupancies).await;
    let suggested: Vec<&str> = job.suggested_mapping.iter().map(|m| m.field.as_str()).collect();
    assert_eq!(suggested, ["unit_code", "customer_phone", "role", "move_in_date", "move_out_date"]);
    let done = run(&app, &job.name, settings(false)).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_valid, p.rows_created, p.rows_updated, p.rows_failed), (6, 5, 1, 5), "{done:?}");
    assert_eq!(
        sorted(refusals(&app, &job.name).await),
        expected(&[
            (7, "unit_code", "PREMISES_NOT_FOUND"),
            (8, "move_in_date", "OCCUPANCY_OVERLAP"),
            (9, "move_in_date", "REQUIRED"),
            (10, "role", "INVALID_ROLE"),
            (11, "customer_phone", "NOT_THE_HOLDER"),
        ])
    );

    let history = |unit: &pb::Premises| {
        let request = app.admin(pb::ListOccupanciesRequest { parent: unit.name.clone(), ..Default::default() });
        let premises = premises.clone();
        async move {
            let listed = premises.clone().list_occupancies(request).await.unwrap().into_inner().occupancies;
            listed
                .into_iter()
                .map(|o| (o.customer, o.role, o.move_in_date.map(|d| d.year), o.move_out_date.map(|d| (d.year, d.month))))
                .collect::<Vec<_>>()
        }
    };
    let (owner, tenant) = (pb::OccupancyRole::Owner as i32, pb::OccupancyRole::Tenant as i32);
    // Bob's move-in ended Ada's that day; Cid's past stay fits before hers. Latest move-in first.
    assert_eq!(
        history(&units[0]).await,
        [
            (bob.name.clone(), owner, Some(2023), None),
            (ada.name.clone(), owner, Some(2020), Some((2023, 5))),
            (cid.name.clone(), owner, Some(2019), Some((2019, 12)))
        ]
    );
    assert_eq!(
        history(&units[1]).await,
        [(cid.name.clone(), tenant, Some(2024), Some((2026, 11))), (ada.name.clone(), tenant, Some(2021), Some((2022, 1)))]
    );
    let event =
        <pb::OccupanciesImported as prost::Message>::decode(first_event(&app, "crm.profiles.v1.OccupanciesImported").await.as_slice())
            .unwrap();
    assert_eq!((event.import_job.as_str(), event.started.len(), event.ended.len()), (job.name.as_str(), 5, 4));

    // The same file again changes nothing: every move is stored already.
    let again = upload_kind(&app, format!("{MOVES}\n").as_bytes(), Kind::Occupancies).await;
    let done = run(&app, &again.name, settings(false)).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_valid, p.rows_created, p.rows_updated, p.rows_failed), (6, 0, 0, 5), "{done:?}");
    assert_eq!(history(&units[0]).await.len(), 3);
}
