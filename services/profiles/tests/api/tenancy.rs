//! Tenant isolation, through the API and at the SQL level with the service's role.

use crm_proto::crm::profiles::v1 as pb;
use crm_testkit::auth::{token, with_token};
use sqlx::Connection;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{assert_error, customer, inside, spawn_app};

#[tokio::test]
async fn another_tenant_can_neither_get_nor_list_nor_change_a_customer() {
    let app = spawn_app().await;
    let created = app.create(customer("Tenant A's customer", "a@example.com")).await;
    let other = token(Uuid::now_v7(), &["admin"]);
    let mut client = app.customers.clone();

    assert_error(
        client.get_customer(with_token(pb::GetCustomerRequest { name: created.name.clone() }, &other)).await,
        Code::NotFound,
        "NOT_FOUND",
    );
    let listed = client
        .list_customers(with_token(pb::ListCustomersRequest { show_deleted: true, ..Default::default() }, &other))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.customers.is_empty());
    let batch = client.batch_get_customers(with_token(pb::BatchGetCustomersRequest { names: vec![created.name.clone()] }, &other)).await;
    assert_error(batch, Code::NotFound, "NOT_FOUND");
    let delete =
        client.delete_customer(with_token(pb::DeleteCustomerRequest { name: created.name.clone(), etag: String::new() }, &other)).await;
    assert_error(delete, Code::NotFound, "NOT_FOUND");
    // The same email is free in the other tenant: uniqueness is per tenant.
    let create = client
        .create_customer(with_token(
            pb::CreateCustomerRequest { customer: Some(customer("B", "a@example.com")), request_id: String::new() },
            &other,
        ))
        .await;
    assert!(create.is_ok());
    assert!(app.get(&created.name).await.unwrap().delete_time.is_none());
}

#[tokio::test]
async fn rls_hides_other_tenants_even_from_a_query_without_a_tenant_filter() {
    let app = spawn_app().await;
    app.create(customer("A1", "a1@example.com")).await;
    app.create(customer("A2", "")).await;
    let mut conn = app.app_connection().await;

    let url = app.db.app_url.clone();
    let count = |tenant: Option<Uuid>| {
        let sql = "SELECT count(*) FROM customers"; // deliberately no WHERE tenant_id
        let url = url.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            if let Some(t) = tenant {
                sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(t.to_string()).execute(&mut *tx).await.unwrap();
            }
            sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut *tx).await.unwrap()
        }
    };
    assert_eq!(count(Some(app.tenant)).await, 2);
    assert_eq!(count(Some(Uuid::now_v7())).await, 0);
    assert_eq!(count(None).await, 0, "no tenant set: no rows at all");
    for table in ["customer_emails", "outbox", "outbox_pending", "outbox_positions", "idempotency_keys"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 0, "{table} leaks rows without a tenant");
    }

    // Writing a row for another tenant is refused by the policy's WITH CHECK.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(app.tenant.to_string()).execute(&mut *tx).await.unwrap();
    let foreign =
        sqlx::query("INSERT INTO customers (tenant_id, id, display_name, create_time, update_time) VALUES ($1, $2, 'x', now(), now())")
            .bind(Uuid::now_v7())
            .bind(Uuid::now_v7())
            .execute(&mut *tx)
            .await;
    assert!(foreign.unwrap_err().to_string().contains("row-level security"));
    tx.rollback().await.unwrap();

    // The service's role owns nothing, cannot bypass RLS and cannot change the schema.
    let (owner, bypass): (String, bool) = sqlx::query_as("SELECT tableowner::text, (SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user) FROM pg_tables WHERE tablename = 'customers'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let me: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut conn).await.unwrap();
    assert_ne!(owner, me);
    assert!(!bypass);
    assert!(sqlx::query("ALTER TABLE customers DISABLE ROW LEVEL SECURITY").execute(&mut conn).await.is_err());
    assert!(sqlx::query("DROP TABLE customers").execute(&mut conn).await.is_err());
}

#[tokio::test]
async fn a_tenant_transaction_begins_in_one_round_trip_and_leaves_nothing_on_its_connection() {
    // Arrange: one customer, and a pool of exactly one connection, so every
    // transaction below runs on the same server session.
    let app = spawn_app().await;
    app.create(customer("A1", "a1@example.com")).await;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&app.db.app_url).await.unwrap();
    let visible = |tenant: Uuid| {
        let pool = pool.clone();
        async move {
            let mut tx = crm_kit::db::begin_tenant(&pool, tenant).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            n
        }
    };
    let leftover = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT nullif(current_setting('crm.tenant_id', true), '')").fetch_one(&pool).await.unwrap()
    };

    // Act + Assert: each transaction sees its tenant only ...
    assert_eq!(visible(app.tenant).await, 1);
    assert_eq!(visible(Uuid::now_v7()).await, 0);
    // ... and the session keeps no tenant after a commit or a rollback.
    assert_eq!(leftover().await, None);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 0, "outside a tenant transaction nothing is visible");
    drop(crm_kit::db::begin_tenant(&pool, app.tenant).await.unwrap());
    assert_eq!(leftover().await, None, "a dropped transaction rolls the setting back too");
}

#[tokio::test]
async fn a_one_round_trip_read_sees_its_tenant_only_and_leaves_nothing_on_its_connection() {
    // Arrange: a customer of the app's tenant, and a pool of exactly one
    // connection, so every read below runs on the same server session.
    let app = spawn_app().await;
    let created = app.create(customer("A1", "a1@example.com")).await;
    let id: Uuid = created.name.trim_start_matches("customers/").parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&app.db.app_url).await.unwrap();
    let table = crm_profiles::store::CUSTOMERS;
    let read = |tenant: Uuid, id: Uuid| {
        let pool = pool.clone();
        async move { table.get::<crm_profiles::store::CustomerRow>(&pool, tenant, id).await.unwrap().map(|row| row.display_name) }
    };
    let leftover = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT nullif(current_setting('crm.tenant_id', true), '')").fetch_one(&pool).await.unwrap()
    };

    // Act + Assert: the first read prepares the statement on the session, later ones use it;
    // each finds its tenant's row only ...
    assert_eq!(read(app.tenant, id).await.as_deref(), Some("A1"));
    assert_eq!(read(app.tenant, id).await.as_deref(), Some("A1"));
    assert_eq!(read(Uuid::now_v7(), id).await, None, "another tenant cannot read it by id");
    assert_eq!(read(app.tenant, Uuid::now_v7()).await, None);
    // ... and the session keeps no tenant (a transaction left open would still hold it).
    assert_eq!(leftover().await, None);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM customers").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 0, "outside the read nothing is visible");

    // A statement that went away (a DISCARD, a pooler handing over another session) is prepared again.
    let statement: String =
        sqlx::query_scalar("SELECT name FROM pg_prepared_statements WHERE name LIKE 'crm_get_customers_%'").fetch_one(&pool).await.unwrap();
    sqlx::raw_sql(&format!("DEALLOCATE {statement}")).execute(&pool).await.unwrap();
    assert_eq!(read(app.tenant, id).await.as_deref(), Some("A1"));
    assert_eq!(leftover().await, None);

    // A migration that changes a selected column's type under the prepared plan ("cached plan
    // must not change result type") does not break reads: the statement is prepared afresh.
    let mut owner = sqlx::PgConnection::connect(&app.db.owner_url).await.unwrap();
    sqlx::query("ALTER TABLE customers ALTER COLUMN company TYPE varchar(500)").execute(&mut owner).await.unwrap();
    assert_eq!(read(app.tenant, id).await.as_deref(), Some("A1"));
}

#[tokio::test]
async fn the_kits_policies_read_the_tenant_once_per_statement_and_still_isolate() {
    // Arrange: events of two tenants (a customer each).
    let app = spawn_app().await;
    app.create(customer("A1", "a1@example.com")).await;
    let other_tenant = Uuid::now_v7();
    let mut client = app.customers.clone();
    client
        .create_customer(with_token(
            pb::CreateCustomerRequest { customer: Some(customer("B1", "b1@example.com")), request_id: String::new() },
            &token(other_tenant, &["admin"]),
        ))
        .await
        .unwrap();
    let mut conn = app.app_connection().await;

    // Assert: every policy of the kit's tables compares with the settings
    // read in a subquery (an initplan, once per statement: migration 0007),
    // not with an expression evaluated on every row.
    let per_row: Vec<(String, String)> = sqlx::query_as(
        "SELECT tablename::text, policyname::text FROM pg_policies
         WHERE tablename = ANY($1)
           AND (position('SELECT' IN coalesce(qual, with_check)) = 0 OR position('SELECT' IN coalesce(with_check, qual)) = 0)",
    )
    .bind([
        "outbox",
        "outbox_pending",
        "outbox_positions",
        "outbox_pruned",
        "idempotency_keys",
        "webhooks",
        "webhook_cursors",
        "webhook_attempts",
        "relay_cursors",
    ])
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(per_row, []);

    // ... which the plan shows as an initplan ...
    let pool = sqlx::PgPool::connect(&app.db.app_url).await.unwrap();
    let mut tx = inside(&pool, app.tenant).await;
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN (COSTS OFF) SELECT count(*) FROM outbox").fetch_all(&mut *tx).await.unwrap();
    assert!(plan.iter().any(|line| line.contains("InitPlan")), "{plan:#?}");
    tx.rollback().await.unwrap();

    // ... and each tenant still sees its own rows only, and cannot write another's.
    for tenant in [app.tenant, other_tenant] {
        let mut tx = inside(&pool, tenant).await;
        let (own, foreign): (i64, i64) =
            sqlx::query_as("SELECT count(*) FILTER (WHERE tenant_id = $1), count(*) FILTER (WHERE tenant_id <> $1) FROM outbox")
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert!(own >= 1, "{tenant} sees its events");
        assert_eq!(foreign, 0, "{tenant} sees another tenant's events");
        let foreign_insert = sqlx::query("INSERT INTO outbox (tenant_id, id, type, subject, data) VALUES ($1, $2, 't', 's', '\\x')")
            .bind(if tenant == app.tenant { other_tenant } else { app.tenant })
            .bind(Uuid::now_v7())
            .execute(&mut *tx)
            .await;
        assert!(foreign_insert.unwrap_err().to_string().contains("row-level security"));
        tx.rollback().await.unwrap();
    }
}
