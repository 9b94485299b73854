//! GDPR / PIPL erasure: the statements that remove one customer's personal
//! data from every table of profiles, in the caller's transaction — other
//! customers' records linked to this person included. What
//! stays holds no personal data: the emptied record (deleted, with its
//! `erase_time`), transactions and spending, and the field history's
//! skeleton (which field changed when, by whom) without its values.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use tracing::Instrument;
use uuid::Uuid;

use super::customers::{COLUMNS, CustomerRow};

/// What an erased customer is called.
pub const ERASED_NAME: &str = "Erased customer";

/// Empties customer `id` and everything personal under it; the record after.
pub async fn erase(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
    let statements: [(&str, &str); 9] = [
        // Other customers' records of this person (a spouse linked to this record): their values in the
        // field history first, while the link still finds them, then the records themselves.
        (
            "field_changes",
            "UPDATE field_changes SET old_value = 'null', new_value = 'null', old_masked = 'null', new_masked = 'null'
             WHERE tenant_id = $1 AND record IN (
                 SELECT 'customers/' || customer_id || '/relatedPersons/' || id FROM related_persons
                 WHERE tenant_id = $1 AND linked_customer_id = $2)",
        ),
        (
            "related_persons",
            "UPDATE related_persons SET display_name = '', phones = '[]', emails = '[]', gender = '', birthday_year = NULL,
                 birthday_month = NULL, birthday_day = NULL, note = '', linked_customer_id = NULL, revision = revision + 1
             WHERE tenant_id = $1 AND linked_customer_id = $2",
        ),
        ("customer_emails", "DELETE FROM customer_emails WHERE tenant_id = $1 AND customer_id = $2"),
        ("related_persons", "DELETE FROM related_persons WHERE tenant_id = $1 AND customer_id = $2"),
        ("payment_accounts", "DELETE FROM payment_accounts WHERE tenant_id = $1 AND customer_id = $2"),
        (
            "communications",
            "UPDATE communications SET subject = '', content = '', outcome = '', revision = revision + 1 WHERE tenant_id = $1 AND customer_id = $2",
        ),
        ("occurrences", "UPDATE occurrences SET description = '', revision = revision + 1 WHERE tenant_id = $1 AND customer_id = $2"),
        (
            "rename_requests",
            "UPDATE rename_requests SET display_name = '', given_name = '', family_name = '', reason = '', previous_display_name = '',
                 previous_given_name = '', previous_family_name = '', review_comment = '', revision = revision + 1
             WHERE tenant_id = $1 AND customer_id = $2",
        ),
        (
            "field_changes",
            "UPDATE field_changes SET old_value = 'null', new_value = 'null', old_masked = 'null', new_masked = 'null'
             WHERE tenant_id = $1 AND customer_id = $2",
        ),
    ];
    for (table, sql) in statements {
        sqlx::query(sql).bind(tenant).bind(id).execute(&mut **tx).instrument(db_span("UPDATE", table)).await?;
    }
    Ok(sqlx::query_as(&format!(
        "UPDATE customers SET display_name = $3, given_name = '', family_name = '', emails = '[]', phones = '[]', addresses = '[]',
             company = '', job_title = '', industry = '', birthday_year = NULL, birthday_month = NULL, birthday_day = NULL,
             time_zone = '', locale = '', tags = '{{}}', attributes = '{{}}', disable_reason = '', match_keys = '{{}}',
             delete_time = coalesce(delete_time, $4), erase_time = $4, update_time = $4, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(ERASED_NAME)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "customers"))
    .await?)
}
