//! The holiday calendar: built-in holidays with their lunar dates computed
//! for the year asked, a tenant's own holidays, renaming and disabling
//! built-ins, and every kind of bad input.

use crm_proto::crm::campaigns::v1::{self as pb, holiday_service_client::HolidayServiceClient};
use crm_proto::google::r#type::Date;
use crm_testkit::auth::{token, with_token};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{assert_error, spawn_app, violations};

fn date(year: i32, month: i32, day: i32) -> Date {
    Date { year, month, day }
}

fn gregorian(month: i32, day: i32) -> pb::HolidayRule {
    pb::HolidayRule { kind: Some(pb::holiday_rule::Kind::Gregorian(pb::MonthDay { month, day })) }
}

fn lunar(month: i32, day: i32) -> pb::HolidayRule {
    pb::HolidayRule { kind: Some(pb::holiday_rule::Kind::Lunar(pb::MonthDay { month, day })) }
}

#[tokio::test]
async fn the_built_in_calendar_has_each_years_lunar_dates_in_calendar_order() {
    let app = spawn_app().await;
    let mut client = HolidayServiceClient::new(app.clients.channel.clone());
    let analyst = token(app.clients.tenant, &["analyst"]);

    let list = |year| with_token(pb::ListHolidaysRequest { year }, &analyst);
    let holidays = client.list_holidays(list(2033)).await.unwrap().into_inner().holidays;
    let dates_of = |holidays: &[pb::Holiday], id: &str| {
        holidays.iter().find(|h| h.name == format!("holidays/{id}")).unwrap_or_else(|| panic!("{id} listed")).dates.clone()
    };
    assert_eq!(dates_of(&holidays, "spring-festival-eve"), [date(2033, 1, 30)]);
    assert_eq!(dates_of(&holidays, "spring-festival"), [date(2033, 1, 31)]);
    assert_eq!(dates_of(&holidays, "mid-autumn-festival"), [date(2033, 9, 8)]);
    assert_eq!(dates_of(&holidays, "qingming"), [date(2033, 4, 4)]);
    // 2033's leap 11th month pushes the next Spring Festival to 2034-02-19.
    let next = client.list_holidays(list(2034)).await.unwrap().into_inner().holidays;
    assert_eq!(dates_of(&next, "spring-festival"), [date(2034, 2, 19)]);
    assert_eq!(dates_of(&next, "laba-festival"), [date(2034, 1, 27)]);

    // In calendar order, each with its names, built in and enabled.
    let firsts: Vec<(i32, i32)> = holidays.iter().map(|h| (h.dates[0].month, h.dates[0].day)).collect();
    assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
    let mid_autumn = holidays.iter().find(|h| h.name == "holidays/mid-autumn-festival").unwrap();
    assert_eq!((mid_autumn.display_name.as_str(), mid_autumn.english_name.as_str()), ("中秋节", "Mid-Autumn Festival"));
    assert!(mid_autumn.built_in && !mid_autumn.disabled);
    assert_eq!(mid_autumn.rule, Some(lunar(8, 15)));

    let got = client
        .get_holiday(with_token(pb::GetHolidayRequest { name: "holidays/dragon-boat-festival".into(), year: 2025 }, &analyst))
        .await
        .unwrap()
        .into_inner()
        .holiday
        .unwrap();
    assert_eq!(got.dates, [date(2025, 5, 31)]);
}

#[tokio::test]
async fn a_tenant_adds_its_own_holidays_and_renames_or_disables_built_ins() {
    let app = spawn_app().await;
    let mut client = HolidayServiceClient::new(app.clients.channel.clone());
    let marketer = token(app.clients.tenant, &["marketer"]);
    let create = |id: &str, name: &str, rule| {
        let holiday = pb::Holiday { display_name: name.into(), rule: Some(rule), ..Default::default() };
        with_token(pb::CreateHolidayRequest { holiday_id: id.into(), holiday: Some(holiday) }, &marketer)
    };

    // A holiday of its own, on a lunar date: its dates come with it.
    let own = client.create_holiday(create("founders-day", "建司纪念日", lunar(3, 3))).await.unwrap().into_inner().holiday.unwrap();
    assert_eq!((own.name.as_str(), own.built_in, own.etag.as_str()), ("holidays/founders-day", false, "r1"));
    let in_2026 = client
        .get_holiday(with_token(pb::GetHolidayRequest { name: own.name.clone(), year: 2026 }, &marketer))
        .await
        .unwrap()
        .into_inner()
        .holiday
        .unwrap();
    assert_eq!(in_2026.dates, [date(2026, 4, 19)]);
    // Its id is taken now, as the built-ins' are: a retry cannot make two.
    assert_error(client.create_holiday(create("founders-day", "again", lunar(3, 3))).await, Code::AlreadyExists, "HOLIDAY_EXISTS");
    assert_error(client.create_holiday(create("spring-festival", "mine", gregorian(1, 2))).await, Code::AlreadyExists, "HOLIDAY_EXISTS");

    // A built-in is renamed and disabled, under its etag; a stale etag is refused.
    let mask = |paths: &[&str]| Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() });
    let update = |holiday: pb::Holiday, paths: &[&str]| {
        with_token(pb::UpdateHolidayRequest { holiday: Some(holiday), update_mask: mask(paths) }, &marketer)
    };
    let christmas = pb::Holiday {
        name: "holidays/christmas".into(),
        display_name: "Xmas".into(),
        disabled: true,
        etag: "r1".into(),
        ..Default::default()
    };
    let changed =
        client.update_holiday(update(christmas.clone(), &["display_name", "disabled"])).await.unwrap().into_inner().holiday.unwrap();
    assert_eq!((changed.display_name.as_str(), changed.disabled, changed.etag.as_str()), ("Xmas", true, "r2"));
    assert!(changed.built_in && changed.update_time.is_some());
    assert_error(client.update_holiday(update(christmas, &["disabled"])).await, Code::Aborted, "ETAG_MISMATCH");
    let enabled = pb::Holiday { name: "holidays/christmas".into(), disabled: false, ..Default::default() };
    let changed = client.update_holiday(update(enabled, &["disabled"])).await.unwrap().into_inner().holiday.unwrap();
    assert_eq!((changed.display_name.as_str(), changed.disabled, changed.etag.as_str()), ("Xmas", false, "r3"));

    // Its own holiday's rule may change; a built-in's may not, nor can a built-in be deleted.
    let moved = pb::Holiday { name: own.name.clone(), rule: Some(gregorian(6, 18)), ..Default::default() };
    let moved = client.update_holiday(update(moved, &["rule"])).await.unwrap().into_inner().holiday.unwrap();
    assert_eq!(moved.rule, Some(gregorian(6, 18)));
    let fixed = pb::Holiday { name: "holidays/national-day".into(), rule: Some(gregorian(10, 2)), ..Default::default() };
    let refused = assert_error(client.update_holiday(update(fixed, &["rule"])).await, Code::InvalidArgument, "BUILT_IN_RULE");
    assert_eq!(violations(&refused), [("holiday.rule".to_owned(), "BUILT_IN_RULE".to_owned())]);
    let delete = |name: &str| with_token(pb::DeleteHolidayRequest { name: name.into(), etag: String::new() }, &marketer);
    assert_error(client.delete_holiday(delete("holidays/national-day")).await, Code::FailedPrecondition, "BUILT_IN_HOLIDAY");

    // Deleting its own holiday removes it.
    client.delete_holiday(delete(&own.name)).await.unwrap();
    let gone = client.get_holiday(with_token(pb::GetHolidayRequest { name: own.name.clone(), year: 0 }, &marketer)).await;
    assert_error(gone, Code::NotFound, "NOT_FOUND");
    assert_error(client.delete_holiday(delete(&own.name)).await, Code::NotFound, "NOT_FOUND");

    // Another tenant's calendar is untouched by all of it.
    let other = token(Uuid::now_v7(), &["marketer"]);
    let theirs = client.list_holidays(with_token(pb::ListHolidaysRequest { year: 2026 }, &other)).await.unwrap().into_inner().holidays;
    let christmas = theirs.iter().find(|h| h.name == "holidays/christmas").unwrap();
    assert_eq!((christmas.display_name.as_str(), christmas.disabled), ("圣诞节", false));
    assert_eq!(theirs.len(), 15, "only the built-ins");
}

#[tokio::test]
async fn bad_holidays_are_refused_with_the_field_named_and_readers_cannot_write() {
    let app = spawn_app().await;
    let mut client = HolidayServiceClient::new(app.clients.channel.clone());
    let marketer = token(app.clients.tenant, &["marketer"]);
    let create = |id: &str, name: &str, rule: Option<pb::HolidayRule>, token: &str| {
        let holiday = pb::Holiday { display_name: name.into(), rule, ..Default::default() };
        with_token(pb::CreateHolidayRequest { holiday_id: id.into(), holiday: Some(holiday) }, token)
    };
    for (id, name, rule, field, reason) in [
        ("Bad_Id", "x", Some(gregorian(1, 2)), "holiday_id", "INVALID_HOLIDAY_ID"),
        ("ok", "", Some(gregorian(1, 2)), "holiday.display_name", "INVALID_DISPLAY_NAME"),
        ("ok", "x", None, "holiday.rule", "MISSING_RULE"),
        ("ok", "x", Some(gregorian(2, 30)), "holiday.rule", "INVALID_RULE"),
        ("ok", "x", Some(lunar(8, 31)), "holiday.rule", "INVALID_RULE"),
        ("ok", "x", Some(lunar(13, 1)), "holiday.rule", "INVALID_RULE"),
        ("ok", "x", Some(pb::HolidayRule { kind: Some(pb::holiday_rule::Kind::SolarTermDegrees(20)) }), "holiday.rule", "INVALID_RULE"),
    ] {
        let refused = assert_error(client.create_holiday(create(id, name, rule, &marketer)).await, Code::InvalidArgument, reason);
        assert_eq!(violations(&refused), [(field.to_owned(), reason.to_owned())], "{id} {name}");
    }
    let out_of_range = client.list_holidays(with_token(pb::ListHolidaysRequest { year: 1800 }, &marketer)).await;
    let refused = assert_error(out_of_range, Code::InvalidArgument, "INVALID_YEAR");
    assert_eq!(violations(&refused), [("year".to_owned(), "INVALID_YEAR".to_owned())]);

    // Readers read; writing needs holidays.write; a customer reads nothing.
    let analyst = token(app.clients.tenant, &["analyst"]);
    assert_error(
        client.create_holiday(create("ok", "x", Some(gregorian(1, 2)), &analyst)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    let customer = crm_testkit::auth::customer_token(app.clients.tenant, &format!("customers/{}", Uuid::now_v7()));
    let listed = client.list_holidays(with_token(pb::ListHolidaysRequest { year: 0 }, &customer)).await;
    assert_error(listed, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn a_tenant_keeps_at_most_200_holidays_of_its_own_even_when_created_at_once() {
    let app = spawn_app().await;
    let client = HolidayServiceClient::new(app.clients.channel.clone());
    let marketer = token(app.clients.tenant, &["marketer"]);
    let create = |i: usize| {
        let holiday = pb::Holiday { display_name: format!("Store day {i}"), rule: Some(gregorian(1, 2)), ..Default::default() };
        with_token(pb::CreateHolidayRequest { holiday_id: format!("store-day-{i}"), holiday: Some(holiday) }, &marketer)
    };
    // 210 creations, 10 at a time: exactly 200 succeed, the rest are refused with the cap named.
    let mut created = 0;
    let mut refused = 0;
    for batch in (0..210).collect::<Vec<_>>().chunks(10) {
        let calls: Vec<_> = batch
            .iter()
            .map(|i| {
                let (mut client, request) = (client.clone(), create(*i));
                tokio::spawn(async move { client.create_holiday(request).await })
            })
            .collect();
        for call in calls {
            match call.await.unwrap() {
                Ok(_) => created += 1,
                Err(status) => {
                    assert_error::<()>(Err(status), Code::FailedPrecondition, "TOO_MANY_HOLIDAYS");
                    refused += 1;
                }
            }
        }
    }
    assert_eq!((created, refused), (200, 10));
}
