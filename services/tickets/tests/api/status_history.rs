//! The status history itself: the backfill of tickets from before it
//! (migration 1017) and stays whose times arrive out of order.

use std::borrow::Cow;

use chrono::{DateTime, Duration, TimeZone, Utc};
use crm_proto::crm::tickets::v1 as pb;
use crm_testkit::database::fresh_database;
use sqlx::{PgPool, migrate::Migrator, postgres::PgConnectOptions};
use uuid::Uuid;

use crate::helpers::spawn_app;

type Stay = (String, DateTime<Utc>, Option<DateTime<Utc>>);

/// A ticket's stays in order, read as the service's login role inside `tenant`.
async fn stays(pool: &PgPool, tenant: Uuid, ticket: Uuid) -> Vec<Stay> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.unwrap();
    let rows = sqlx::query_as("SELECT status, since, until FROM ticket_status_history WHERE ticket_id = $1 ORDER BY seq")
        .bind(ticket)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows
}

#[tokio::test]
async fn tickets_from_before_the_history_get_the_one_their_row_tells() {
    // Arrange: a database at migration 1016 with tickets of two tenants.
    let db = fresh_database("tickets").await.unwrap();
    let all = crm_kit::server::with_kit_migrations(&sqlx::migrate!("./migrations"));
    let before = Migrator { migrations: Cow::Owned(all.iter().filter(|m| m.version < 1017).cloned().collect()), ..Migrator::DEFAULT };
    let owner: PgConnectOptions = db.owner_url.parse().unwrap();
    let app = PgPool::connect(&db.app_url).await.unwrap();
    crm_kit::db::migrate(owner.clone(), &before, &app).await.unwrap();
    let at = |h: i64| Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap() + Duration::hours(h);
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    // (tenant, id, status, resolve_time, update_time)
    let tickets = [
        (first, Uuid::now_v7(), "OPEN", None, at(1)),
        (first, Uuid::now_v7(), "RESOLVED", Some(at(5)), at(5)),
        (second, Uuid::now_v7(), "CLOSED", Some(at(5)), at(30)),
        (second, Uuid::now_v7(), "CLOSED", None, at(3)), // merged away before resolution
    ];
    for (tenant, id, status, resolved, updated) in tickets {
        let mut tx = app.begin().await.unwrap();
        sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.unwrap();
        sqlx::query(
            "INSERT INTO tickets (tenant_id, id, customer_id, subject, type, priority, status, resolve_time, create_time, update_time)
             VALUES ($1, $2, $3, 'Old', 'QUESTION', 'NORMAL', $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(id)
        .bind(Uuid::now_v7())
        .bind(status)
        .bind(resolved)
        .bind(at(0))
        .bind(updated)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    // Act: the migration that adds the history runs as the schema owner, under forced RLS.
    crm_kit::db::migrate(owner, &all, &app).await.unwrap();

    // Assert: every tenant's tickets got their stays.
    let open = |s: &str, since: i64, until: Option<i64>| (s.to_owned(), at(since), until.map(at));
    assert_eq!(stays(&app, first, tickets[0].1).await, [open("OPEN", 0, None)]);
    assert_eq!(stays(&app, first, tickets[1].1).await, [open("OPEN", 0, Some(5)), open("RESOLVED", 5, None)]);
    assert_eq!(
        stays(&app, second, tickets[2].1).await,
        [open("OPEN", 0, Some(5)), open("RESOLVED", 5, Some(30)), open("CLOSED", 30, None)]
    );
    assert_eq!(stays(&app, second, tickets[3].1).await, [open("OPEN", 0, Some(3)), open("CLOSED", 3, None)]);
}

#[tokio::test]
async fn a_change_timed_before_the_current_stay_began_ends_it_where_it_began() {
    // Arrange: the ticket's current stay began "later" than the next change's
    // time (that change took its time before it queued for the row lock, or
    // another replica's clock is behind).
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let ticket = suite.open(&customer, "Help").await;
    let id = Uuid::parse_str(ticket.name.trim_start_matches("tickets/")).unwrap();
    let ahead = DateTime::from_timestamp_micros((Utc::now() + Duration::hours(1)).timestamp_micros()).unwrap();
    let app = PgPool::connect(suite.app_database_url()).await.unwrap();
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(suite.tenant.to_string()).execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE ticket_status_history SET since = $2 WHERE ticket_id = $1 AND until IS NULL")
        .bind(id)
        .bind(ahead)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Act
    let moved = suite.transition(&ticket.name, pb::Status::Pending).await;

    // Assert: the change goes through; the stays stay in order, none negative.
    assert_eq!(moved.unwrap().status, pb::Status::Pending as i32);
    let history = stays(&app, suite.tenant, id).await;
    let statuses: Vec<&str> = history.iter().map(|(s, ..)| s.as_str()).collect();
    assert_eq!(statuses.last(), Some(&"PENDING"), "{history:?}");
    let [.., (_, previous_since, previous_until), (_, since, None)] = history.as_slice() else { panic!("{history:?}") };
    assert_eq!((*previous_since, *previous_until), (ahead, Some(ahead)), "ended where it began");
    assert_eq!(*since, ahead, "the next stay starts there");
}
