//! Positions apart from the outbox rows (migration 0005, `crm_kit::outbox`):
//! what an outbox held before keeps its positions and what was not stamped
//! yet is queued; stamping a window at a time never skips an event that
//! commits late.

use std::borrow::Cow;

use crm_testkit::database::fresh_database;
use sqlx::{PgPool, migrate::Migrator, postgres::PgConnectOptions};
use uuid::Uuid;

use crate::helpers::inside;

/// Writes an event of `tenant` as the old outbox held it; `stamped`: with a position, as a reader left it.
async fn old_event(pool: &PgPool, tenant: Uuid, subject: &str, stamped: bool) -> (Uuid, Option<i64>) {
    let mut tx = inside(pool, tenant).await;
    let id = Uuid::now_v7();
    let position: Option<i64> = sqlx::query_scalar(
        "INSERT INTO outbox (tenant_id, id, type, subject, data, position)
         VALUES ($1, $2, 'crm.profiles.v1.CustomerCreated', $3, '\\x', CASE WHEN $4 THEN nextval('outbox_position_seq') END)
         RETURNING position",
    )
    .bind(tenant)
    .bind(id)
    .bind(subject)
    .bind(stamped)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (id, position)
}

#[tokio::test]
async fn stamped_events_keep_their_positions_and_the_others_are_queued_for_readers() {
    // Arrange: a database without kit migration 5 (nor the kit's later ones,
    // which build on it), two tenants' events, some stamped.
    let db = fresh_database("profiles").await.unwrap();
    let all = crm_kit::server::with_kit_migrations(&sqlx::migrate!("./migrations"));
    let before =
        Migrator { migrations: Cow::Owned(all.iter().filter(|m| !(5..1000).contains(&m.version)).cloned().collect()), ..Migrator::DEFAULT };
    let owner: PgConnectOptions = db.owner_url.parse().unwrap();
    let app = PgPool::connect(&db.app_url).await.unwrap();
    crm_kit::db::migrate(owner.clone(), &before, &app).await.unwrap();
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let a1 = old_event(&app, first, "customers/a1", true).await;
    let b1 = old_event(&app, second, "customers/b1", false).await;
    let a2 = old_event(&app, first, "customers/a2", true).await;
    let a3 = old_event(&app, first, "customers/a3", false).await;

    // Act: migration 5 (and the later ones) runs as the schema owner, under forced RLS, after the service's later ones.
    crm_kit::db::migrate(owner, &all, &app).await.unwrap();

    // Assert: each tenant sees its own stamped events at their old positions and its unstamped ones queued.
    let mut tx = inside(&app, first).await;
    let kept: Vec<(i64, Uuid)> = sqlx::query_as("SELECT position, id FROM outbox_window($1, 0, 10, '{}') WHERE id IS NOT NULL")
        .bind(first)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(kept, [(a1.1.unwrap(), a1.0), (a2.1.unwrap(), a2.0)]);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_pending").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(queued, 1, "a3 only: b1 is the other tenant's");
    // A reader stamps a3 after a2, and a new event after it.
    sqlx::query("SELECT outbox_stamp($1, NULL)").bind(first).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let a4 = new_event(&app, first, "customers/a4").await;
    let mut tx = inside(&app, first).await;
    sqlx::query("SELECT outbox_stamp($1, NULL)").bind(first).execute(&mut *tx).await.unwrap();
    let read: Vec<(i64, Uuid, String)> = sqlx::query_as("SELECT position, id, subject FROM outbox_window($1, $2, 10, '{}')")
        .bind(first)
        .bind(a1.1.unwrap())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ids: Vec<Uuid> = read.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(ids, [a2.0, a3.0, a4]);
    assert!(read.windows(2).all(|w| w[0].0 < w[1].0), "positions increase: {read:?}");
    let mut tx = inside(&app, first).await;
    let last: Option<i64> = sqlx::query_scalar("SELECT outbox_last_position($1)").bind(first).fetch_one(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(last, Some(read[2].0));

    let mut tx = inside(&app, second).await;
    let stamped: Vec<f64> = sqlx::query_scalar("SELECT outbox_stamp($1, NULL)").bind(second).fetch_all(&mut *tx).await.unwrap();
    let read: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM outbox_window($1, 0, 10, '{}')").bind(second).fetch_all(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((stamped.len(), read), (1, vec![b1.0]));
    let forced: bool =
        sqlx::query_scalar("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'outbox'").fetch_one(&app).await.unwrap();
    assert!(forced, "the migration puts FORCE ROW LEVEL SECURITY back on the outbox");
}

#[tokio::test]
async fn stamping_a_window_at_a_time_never_skips_an_event_that_commits_late() {
    // Arrange: a migrated database; a transaction writes an event and stays open
    // while three later events commit.
    let db = fresh_database("profiles").await.unwrap();
    let all = crm_kit::server::with_kit_migrations(&sqlx::migrate!("./migrations"));
    let app = PgPool::connect(&db.app_url).await.unwrap();
    crm_kit::db::migrate(db.owner_url.parse().unwrap(), &all, &app).await.unwrap();
    let tenant = Uuid::now_v7();
    let mut late = inside(&app, tenant).await;
    let late_id = Uuid::now_v7();
    sqlx::query("INSERT INTO outbox (tenant_id, id, type, subject, data) VALUES ($1, $2, 't', 'late', '\\x')")
        .bind(tenant)
        .bind(late_id)
        .execute(&mut *late)
        .await
        .unwrap();
    let mut early = Vec::new();
    for subject in ["e1", "e2", "e3"] {
        early.push(new_event(&app, tenant, subject).await);
    }

    // Act: a reader stamps and reads two at a time; the late transaction
    // commits after the first window, its event's seq below all three.
    let window = |after: i64| {
        let app = app.clone();
        async move {
            let mut tx = inside(&app, tenant).await;
            sqlx::query("SELECT outbox_stamp($1, 2)").bind(tenant).execute(&mut *tx).await.unwrap();
            let rows: Vec<(i64, Uuid)> = sqlx::query_as("SELECT position, id FROM outbox_window($1, $2, 2, '{}')")
                .bind(tenant)
                .bind(after)
                .fetch_all(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            rows
        }
    };
    let first = window(0).await;
    late.commit().await.unwrap();
    let second = window(first.last().unwrap().0).await;
    let third = window(second.last().unwrap().0).await;

    // Assert: every event is read once, the late one after those stamped before it committed.
    let ids: Vec<Uuid> = first.iter().chain(&second).chain(&third).map(|(_, id)| *id).collect();
    assert_eq!(ids, [early[0], early[1], late_id, early[2]]);
    let positions: Vec<i64> = first.iter().chain(&second).chain(&third).map(|(p, _)| *p).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions increase: {positions:?}");
}

/// Writes an event of `tenant` into the migrated outbox (its trigger queues it).
async fn new_event(pool: &PgPool, tenant: Uuid, subject: &str) -> Uuid {
    let mut tx = inside(pool, tenant).await;
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO outbox (tenant_id, id, type, subject, data) VALUES ($1, $2, 'crm.profiles.v1.CustomerCreated', $3, '\\x')")
        .bind(tenant)
        .bind(id)
        .bind(subject)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}
