//! pgbench scripts running each hot call's own statements — the same
//! statements, in the same transactions and round trips, as the service's
//! login role with RLS on — so that a call's throughput can be quoted as a
//! ratio to what Postgres does with its statements alone on the same cluster.
//!
//! Copied from the statements crm-profiles sends (`log_statement = all` on
//! one call of each kind); where pgbench cannot do what the service does,
//! the script does the nearest thing, and says so:
//! - pgbench cannot send a compound statement prepared, so the transaction
//!   scripts run in the simple protocol: Postgres parses and plans each
//!   statement every time, which the service (prepared statements) does not
//!   — this favours the service a little (GetCustomer's is prepared: see
//!   [`get`]);
//! - new ids are `gen_random_uuid()` (random) where the service's are
//!   UUIDv7 (time-ordered; cheaper B-tree inserts) — this favours the
//!   service a little too;
//! - the script's event payloads and history values are of the service's
//!   sizes, not the same bytes;
//! - CreateCustomer's new row comes back as one JSON text column, because
//!   pgbench keeps the id for the next statements with `\gset`, which
//!   cannot store NULL columns.

use crm_testkit::bench::ScriptFile;
use uuid::Uuid;

use super::CUSTOMERS;

/// The column list every customer read returns.
const COLUMNS: &str = crm_profiles::store::CUSTOMERS.columns;

/// `BEGIN` with the tenant set, in one round trip (the kit's `begin_tenant`).
fn begin(tenant: Uuid) -> String {
    format!("BEGIN \\; SELECT set_config('crm.tenant_id', '{tenant}', true);\n")
}

/// The dynamic segments a change re-evaluates: one read at the end of every write.
fn segments(tenant: Uuid) -> String {
    format!("SELECT id, filter FROM segments WHERE tenant_id = '{tenant}' AND kind = 'DYNAMIC' ORDER BY id FOR KEY SHARE;\n")
}

/// The event append and its wake-up (the kit's `outbox::append`), with a payload of the service's size.
fn outbox(tenant: Uuid, event: &str, subject: &str) -> String {
    format!(
        "WITH written AS (INSERT INTO outbox (tenant_id, id, type, subject, data, traceparent) \
         VALUES ('{tenant}', gen_random_uuid(), 'crm.profiles.v1.{event}', '{subject}', decode(repeat('0a', 240), 'hex'), '')) \
         SELECT pg_notify('crm_outbox', '{tenant}');\n"
    )
}

/// The field history rows of a change: `fields` as (path, old JSON, new JSON).
fn history(tenant: Uuid, customer: &str, operation: &str, fields: &[(&str, &str, &str)]) -> String {
    // Column `k` of `fields` as an SQL array's elements.
    let list = |k: usize| fields.iter().map(|f| format!("'{}'", [f.0, f.1, f.2][k].replace('\'', "''"))).collect::<Vec<_>>().join(", ");
    format!(
        "INSERT INTO field_changes (tenant_id, customer_id, id, record, operation, field_path, old_value, new_value, old_masked, \
         new_masked, actor, request_id, change_time) \
         SELECT '{tenant}', {customer}, gen_random_uuid(), 'customers/' || {customer}, '{operation}', field, old::jsonb, new::jsonb, \
         old::jsonb, new::jsonb, 'bench-user', gen_random_uuid()::text, now() \
         FROM unnest(ARRAY[{}]::text[], ARRAY[{}]::text[], ARRAY[{}]::text[]) AS c(field, old, new);\n",
        list(0),
        list(1),
        list(2),
    )
}

/// GetCustomer: the service reads a customer in one round trip (`SET LOCAL`
/// of the tenant and `EXECUTE` of a statement prepared on the connection, as
/// one simple query — the kit's `Table::get`). pgbench cannot prepare a
/// statement per connection, so its nearest equal is the prepared SELECT
/// alone, with the tenant set for the whole session (`options` in the URL):
/// the same single round trip and plan under RLS, minus the `SET LOCAL`.
/// Run with `-M prepared` (see [`PREPARED`]).
pub fn get(tenant: Uuid) -> ScriptFile {
    ScriptFile::write(&format!(
        "\\set n random(1, {CUSTOMERS})\n\
         SELECT {COLUMNS} FROM customers WHERE tenant_id = '{tenant}' AND id = (SELECT id FROM bench_ids WHERE n = :n);\n"
    ))
}

/// The references pgbench runs prepared (`-M prepared`), with the tenant set for the session.
pub const PREPARED: &[&str] = &[super::GET];

/// ListCustomers, first page of 50: the keyset SELECT of 51 rows (one more tells whether a next page exists).
pub fn list(tenant: Uuid) -> ScriptFile {
    ScriptFile::write(&format!(
        "{}SELECT {COLUMNS} FROM customers c WHERE c.tenant_id = '{tenant}' AND c.delete_time IS NULL AND c.disable_time IS NULL \
         ORDER BY c.create_time ASC, c.id ASC LIMIT 51;\n\
         COMMIT;\n",
        begin(tenant)
    ))
}

/// CreateCustomer with one email address: the address check, the row with its
/// match keys (and the tenant's duplicate-scan row), the address claim, the
/// event, the field history, the segments.
pub fn create(tenant: Uuid) -> ScriptFile {
    let address = "p:a-:b@example.com";
    let emails = format!(r#"[{{"label": "", "address": "{address}", "primary": false}}]"#);
    let consent = r#"{"sms": {"state": "", "update_time": null}, "push": {"state": "", "update_time": null}, "email": {"state": "", "update_time": null}, "do_not_contact": false}"#;
    let keys = format!(r#"{{e:{address},"n:bench customer :a","s:bench customer :a"}}"#);
    ScriptFile::write(&format!(
        "\\set a random(1, 2000000000)\n\\set b random(1, 2000000000)\n{begin}\
         SELECT address, customer_id FROM customer_emails WHERE tenant_id = '{tenant}' AND address = ANY('{{{address}}}') \
         AND customer_id <> '00000000-0000-0000-0000-000000000000' ORDER BY address;\n\
         WITH fresh AS (SELECT gen_random_uuid() AS id), \
              scan AS (INSERT INTO duplicate_scans (tenant_id) VALUES ('{tenant}') ON CONFLICT DO NOTHING), \
              keys AS (INSERT INTO customer_match_keys (tenant_id, key, customer_id) SELECT '{tenant}', unnest('{keys}'::text[]), id FROM fresh), \
              inserted AS (INSERT INTO customers (tenant_id, id, create_time, update_time, display_name, emails, consent, match_keys) \
                      SELECT '{tenant}', id, now(), now(), 'Bench customer :a', '{emails}', '{consent}', '{keys}' FROM fresh \
                      RETURNING {COLUMNS}) \
         SELECT id, row_to_json(inserted)::text AS returned FROM inserted \\gset\n\
         DELETE FROM customer_emails WHERE tenant_id = '{tenant}' AND customer_id = ':id';\n\
         INSERT INTO customer_emails (tenant_id, address, customer_id) SELECT '{tenant}', unnest('{{{address}}}'::text[]), ':id';\n\
         {outbox}{history}{segments}COMMIT;\n",
        begin = begin(tenant),
        outbox = outbox(tenant, "CustomerCreated", "customers/:id"),
        history = history(
            tenant,
            "':id'::uuid",
            "CREATE",
            &[
                ("display_name", "null", r#""Bench customer :a""#),
                ("emails", "null", &format!(r#"[{{"address":"{address}"}}]"#)),
                ("attributes", "null", "{}"),
                ("consent", "null", r#"{"email":{},"push":{},"sms":{}}"#),
            ],
        ),
        segments = segments(tenant),
    ))
}

/// UpdateCustomer renaming a customer: the row locked, the tenant's rename
/// rule read, the row written with its match keys, the event, the field
/// history, the segments. (The service writes every column; the script only
/// the changed one — the same new row version either way — and keeps the
/// email key it does not know.)
pub fn update(tenant: Uuid) -> ScriptFile {
    let id = "(SELECT id FROM bench_ids WHERE n = :n)";
    let keys = r#"{"n:renamed :r","s:renamed :r"}"#;
    ScriptFile::write(&format!(
        "\\set n random(1, {CUSTOMERS})\n\\set r random(1, 2000000000)\n{begin}\
         SELECT {COLUMNS} FROM customers WHERE tenant_id = '{tenant}' AND id = {id} FOR UPDATE;\n\
         SELECT approval_required, update_time FROM rename_settings WHERE tenant_id = '{tenant}';\n\
         WITH gone AS (DELETE FROM customer_match_keys WHERE tenant_id = '{tenant}' AND customer_id = {id} \
                       AND key NOT LIKE 'e:%' AND key <> ALL('{keys}'::text[])), \
              added AS (INSERT INTO customer_match_keys (tenant_id, key, customer_id) \
                        SELECT '{tenant}', unnest('{keys}'::text[]), {id} ON CONFLICT DO NOTHING) \
         UPDATE customers SET update_time = now(), revision = revision + 1, display_name = 'Renamed :r', \
         match_keys = '{keys}'::text[] || ARRAY(SELECT k FROM unnest(match_keys) k WHERE k LIKE 'e:%') \
         WHERE tenant_id = '{tenant}' AND id = {id} RETURNING {COLUMNS};\n\
         {outbox}{history}{segments}COMMIT;\n",
        begin = begin(tenant),
        outbox = outbox(tenant, "CustomerUpdated", "customers/bench"),
        history = history(tenant, id, "UPDATE", &[("display_name", r#""Bench customer""#, r#""Renamed :r""#)]),
        segments = segments(tenant),
    ))
}
