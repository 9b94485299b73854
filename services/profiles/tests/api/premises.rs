//! Premises and occupancy (房产客户关系, 迁入/迁出): unit codes unique per
//! tenant, a move-in ending the role's current holder on the same day, the
//! billing party (resident, else tenant, else owner), histories per premises
//! and per customer, and one holder per role and day — refused by the
//! service, by the database for the service's own role, and among
//! concurrent move-ins exactly one wins.

use crm_proto::{
    crm::profiles::v1::{self as pb, premises_service_client::PremisesServiceClient},
    google::r#type::Date,
};
use crm_testkit::auth::{customer_token, with_token};
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

fn client(app: &TestApp) -> PremisesServiceClient<Channel> {
    PremisesServiceClient::new(app.channel.clone())
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

async fn premises(app: &TestApp, unit_code: &str) -> Result<pb::Premises, tonic::Status> {
    let p = pb::Premises {
        unit_code: unit_code.into(),
        building: "3号楼".into(),
        floor: "15".into(),
        area: 89.5,
        kind: pb::PremisesKind::Apartment as i32,
        ..Default::default()
    };
    let request = pb::CreatePremisesRequest { premises: Some(p), request_id: String::new() };
    Ok(client(app).create_premises(app.as_roles(request, &["agent"])).await?.into_inner().premises.unwrap())
}

async fn move_in(
    app: &TestApp,
    premises: &str,
    customer: &str,
    role: pb::OccupancyRole,
    on: Option<Date>,
) -> Result<pb::MoveInResponse, tonic::Status> {
    let request = pb::MoveInRequest {
        premises: premises.into(),
        customer: customer.into(),
        role: role as i32,
        move_in_date: on,
        request_id: String::new(),
    };
    Ok(client(app).move_in(app.as_roles(request, &["agent"])).await?.into_inner())
}

async fn billing(app: &TestApp, name: &str) -> (String, i32) {
    let p = client(app).get_premises(app.as_roles(pb::GetPremisesRequest { name: name.into() }, &["analyst"])).await.unwrap().into_inner();
    let p = p.premises.unwrap();
    (p.billing_party, p.billing_role)
}

#[tokio::test]
async fn move_ins_end_the_current_holder_and_the_billing_party_follows() {
    let app = spawn_app().await;
    let unit = premises(&app, "3-2-1502").await.unwrap();
    assert_error(premises(&app, "3-2-1502").await, Code::AlreadyExists, "UNIT_CODE_TAKEN");
    assert_eq!(billing(&app, &unit.name).await, (String::new(), 0), "vacant");

    let (owner, tenant, resident, buyer) = (
        app.create(customer("王业主", "owner@example.com")).await,
        app.create(customer("李租户", "tenant@example.com")).await,
        app.create(customer("张住户", "resident@example.com")).await,
        app.create(customer("赵买家", "buyer@example.com")).await,
    );
    move_in(&app, &unit.name, &owner.name, pb::OccupancyRole::Owner, date(2020, 1, 1)).await.unwrap();
    assert_eq!(billing(&app, &unit.name).await, (owner.name.clone(), pb::OccupancyRole::Owner as i32));
    move_in(&app, &unit.name, &tenant.name, pb::OccupancyRole::Tenant, date(2025, 3, 1)).await.unwrap();
    assert_eq!(billing(&app, &unit.name).await, (tenant.name.clone(), pb::OccupancyRole::Tenant as i32), "the tenant pays");
    move_in(&app, &unit.name, &resident.name, pb::OccupancyRole::Resident, date(2025, 3, 1)).await.unwrap();
    assert_eq!(billing(&app, &unit.name).await, (resident.name.clone(), pb::OccupancyRole::Resident as i32), "the resident pays");

    // The flat is sold: the new owner's move-in ends the old owner's on the same day.
    let sold = move_in(&app, &unit.name, &buyer.name, pb::OccupancyRole::Owner, date(2026, 6, 1)).await.unwrap();
    let ended = sold.ended.expect("the old owner's occupancy ended");
    assert_eq!((ended.customer.as_str(), ended.move_out_date), (owner.name.as_str(), date(2026, 6, 1)));

    let history = client(&app)
        .list_occupancies(app.as_roles(pb::ListOccupanciesRequest { parent: unit.name.clone(), ..Default::default() }, &["marketer"]))
        .await
        .unwrap()
        .into_inner()
        .occupancies;
    let holders: Vec<&str> = history.iter().map(|o| o.customer.as_str()).collect();
    assert_eq!(holders, [buyer.name.as_str(), resident.name.as_str(), tenant.name.as_str(), owner.name.as_str()], "latest move-in first");

    // The resident moves out; the tenant pays again. A customer sees their own history only.
    let resident_occupancy = history[1].name.clone();
    let out = pb::MoveOutRequest { name: resident_occupancy.clone(), move_out_date: date(2026, 11, 1), etag: String::new() };
    client(&app).move_out(app.as_roles(out.clone(), &["agent"])).await.unwrap();
    assert_eq!(billing(&app, &unit.name).await, (tenant.name.clone(), pb::OccupancyRole::Tenant as i32));
    assert_error(client(&app).move_out(app.as_roles(out, &["agent"])).await, Code::FailedPrecondition, "ALREADY_MOVED_OUT");
    let own = with_token(
        pb::ListCustomerOccupanciesRequest { parent: owner.name.clone(), ..Default::default() },
        &customer_token(app.tenant, &owner.name),
    );
    assert_eq!(client(&app).list_customer_occupancies(own).await.unwrap().into_inner().occupancies.len(), 1);
    let others = with_token(
        pb::ListCustomerOccupanciesRequest { parent: owner.name.clone(), ..Default::default() },
        &customer_token(app.tenant, &buyer.name),
    );
    assert_error(client(&app).list_customer_occupancies(others).await, Code::NotFound, "NOT_FOUND");

    let delete = pb::DeletePremisesRequest { name: unit.name.clone(), etag: String::new() };
    assert_error(client(&app).delete_premises(app.as_roles(delete, &["agent"])).await, Code::FailedPrecondition, "PREMISES_HAS_HISTORY");
}

#[tokio::test]
async fn overlapping_occupancies_are_refused_by_the_service_and_by_the_database() {
    let app = spawn_app().await;
    let unit = premises(&app, "1-1-101").await.unwrap();
    let (a, b) = (app.create(customer("A", "a@example.com")).await, app.create(customer("B", "b@example.com")).await);
    let first = move_in(&app, &unit.name, &a.name, pb::OccupancyRole::Owner, date(2024, 5, 1)).await.unwrap().occupancy.unwrap();
    assert_error(
        move_in(&app, &unit.name, &b.name, pb::OccupancyRole::Owner, date(2024, 5, 1)).await,
        Code::FailedPrecondition,
        "OCCUPANCY_OVERLAP",
    );
    assert_error(
        move_in(&app, &unit.name, &b.name, pb::OccupancyRole::Owner, date(2023, 1, 1)).await,
        Code::FailedPrecondition,
        "OCCUPANCY_OVERLAP",
    );
    let early = pb::MoveOutRequest { name: first.name.clone(), move_out_date: date(2024, 4, 30), etag: String::new() };
    assert_error(client(&app).move_out(app.as_roles(early, &["agent"])).await, Code::InvalidArgument, "MOVE_OUT_BEFORE_MOVE_IN");
    let nowhere = format!("premises/{}", uuid::Uuid::now_v7());
    assert_error(move_in(&app, &nowhere, &b.name, pb::OccupancyRole::Owner, date(2024, 6, 1)).await, Code::NotFound, "NOT_FOUND");
    assert_error(
        move_in(&app, &unit.name, &b.name, pb::OccupancyRole::Unspecified, date(2024, 6, 1)).await,
        Code::InvalidArgument,
        "INVALID_ROLE",
    );

    // As the service's own login role (RLS applies), bypassing the service: the exclusion constraint refuses.
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    let id = |name: &str| uuid::Uuid::parse_str(name.rsplit('/').next().unwrap()).unwrap();
    let refused = sqlx::query(
        "INSERT INTO occupancies (tenant_id, premises_id, id, customer_id, role, move_in_date, create_time, update_time)
         VALUES ($1, $2, $3, $4, 'OWNER', '2025-01-01', now(), now())",
    )
    .bind(app.tenant)
    .bind(id(&unit.name))
    .bind(uuid::Uuid::now_v7())
    .bind(id(&b.name))
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("occupancies_one_holder_per_role"), "{refused}");

    // Eight agents move eight customers into a vacant unit as its resident on the same day: exactly one wins.
    let vacant = premises(&app, "1-1-102").await.unwrap();
    let mut people = Vec::new();
    for i in 0..8 {
        people.push(app.create(customer(&format!("R{i}"), &format!("r{i}@example.com"))).await.name);
    }
    let attempts = people.iter().map(|p| move_in(&app, &vacant.name, p, pb::OccupancyRole::Resident, date(2026, 1, 1)));
    let results = futures::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.code() == Code::FailedPrecondition));
}
