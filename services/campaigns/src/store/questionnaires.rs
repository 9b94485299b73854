//! The `questionnaires` and `questionnaire_invitations` tables.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span},
};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::questionnaire::{Answer, Question};

/// A stored questionnaire.
#[derive(Debug, Clone, FromRow)]
pub struct QuestionnaireRow {
    pub id: Uuid,
    pub display_name: String,
    pub questions: Json<Vec<Question>>,
    pub answer_within_days: i32,
    pub create_time: DateTime<Utc>,
}

/// The questionnaires table for find.
pub const QUESTIONNAIRES: Table = Table { name: "questionnaires", columns: "id, display_name, questions, answer_within_days, create_time" };

/// A stored invitation.
#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: Uuid,
    pub questionnaire_id: Uuid,
    pub customer_id: Uuid,
    pub expire_time: DateTime<Utc>,
    pub answer_time: Option<DateTime<Utc>>,
    pub answers: Option<Json<Vec<Answer>>>,
    /// The ticket the survey is about.
    pub ticket_id: Option<Uuid>,
}

/// The invitations table for find.
pub const INVITATIONS: Table =
    Table { name: "questionnaire_invitations", columns: "id, questionnaire_id, customer_id, expire_time, answer_time, answers, ticket_id" };

/// Inserts a questionnaire.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, row: &QuestionnaireRow) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO questionnaires (tenant_id, id, display_name, questions, answer_within_days, create_time) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(row.id)
    .bind(&row.display_name)
    .bind(&row.questions)
    .bind(row.answer_within_days)
    .bind(row.create_time)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "questionnaires"))
    .await?;
    Ok(())
}

/// An invitation to send.
#[derive(Debug, Clone, Copy)]
pub struct NewInvitation<'a> {
    pub questionnaire_id: Uuid,
    pub customer_id: Uuid,
    pub journey_id: Option<Uuid>,
    pub ticket_id: Option<Uuid>,
    pub source: &'a str,
    pub expire_time: DateTime<Utc>,
}

/// The invitation from `i.source`: made now, or the one made before.
pub async fn invite(tx: &mut TenantTx, tenant: Uuid, i: &NewInvitation<'_>, now: DateTime<Utc>) -> Result<InvitationRow, Error> {
    let sql = format!(
        "WITH made AS (
             INSERT INTO questionnaire_invitations (tenant_id, id, questionnaire_id, customer_id, journey_id, source, expire_time, create_time,
                                                    ticket_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, source) DO NOTHING RETURNING {cols})
         SELECT {cols} FROM made
         UNION ALL SELECT {cols} FROM questionnaire_invitations WHERE tenant_id = $1 AND source = $6
         LIMIT 1",
        cols = INVITATIONS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(i.questionnaire_id)
        .bind(i.customer_id)
        .bind(i.journey_id)
        .bind(i.source)
        .bind(i.expire_time)
        .bind(now)
        .bind(i.ticket_id)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "questionnaire_invitations"))
        .await?)
}

/// Invites each of `customers` to questionnaire `questionnaire` from
/// campaign `campaign` (once per campaign and customer: a repeated page
/// finds the invitations made before); customer → invitation.
pub async fn invite_for_campaign(
    tx: &mut TenantTx,
    tenant: Uuid,
    questionnaire: Uuid,
    campaign: Uuid,
    customers: &[Uuid],
    expire_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, Uuid)>, Error> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = customers.iter().map(|_| Uuid::now_v7()).collect();
    let sources: Vec<String> = customers.iter().map(|c| format!("campaigns/{campaign}/customers/{c}")).collect();
    sqlx::query(
        "INSERT INTO questionnaire_invitations (tenant_id, id, questionnaire_id, customer_id, campaign_id, source, expire_time, create_time)
         SELECT $1, i, $2, c, $3, s, $4, $5 FROM unnest($6::uuid[], $7::uuid[], $8::text[]) AS t(i, c, s)
         ON CONFLICT (tenant_id, source) DO NOTHING",
    )
    .bind(tenant)
    .bind(questionnaire)
    .bind(campaign)
    .bind(expire_time)
    .bind(now)
    .bind(&ids)
    .bind(customers)
    .bind(&sources)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "questionnaire_invitations"))
    .await?;
    Ok(sqlx::query_as("SELECT customer_id, id FROM questionnaire_invitations WHERE tenant_id = $1 AND source = ANY($2)")
        .bind(tenant)
        .bind(&sources)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "questionnaire_invitations"))
        .await?)
}

/// Records `answers` on invitation `id` if it is unanswered and not expired at `now`; None otherwise.
pub async fn answer(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    answers: &[Answer],
    now: DateTime<Utc>,
) -> Result<Option<InvitationRow>, Error> {
    let sql = format!(
        "UPDATE questionnaire_invitations SET answer_time = $3, answers = $4
         WHERE tenant_id = $1 AND id = $2 AND answer_time IS NULL AND expire_time > $3 RETURNING {}",
        INVITATIONS.columns
    );
    let answered: Option<InvitationRow> = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(now)
        .bind(Json(answers))
        .fetch_optional(&mut **tx)
        .instrument(db_span("UPDATE", "questionnaire_invitations"))
        .await?;
    // About a ticket: the answer goes onto it too, by the job (tickets may be down right now).
    if answered.as_ref().is_some_and(|a| a.ticket_id.is_some()) {
        sqlx::query("INSERT INTO ticket_answers_due (tenant_id, invitation_id, due_time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tenant)
            .bind(id)
            .bind(now)
            .execute(&mut **tx)
            .instrument(db_span("INSERT", "ticket_answers_due"))
            .await?;
    }
    Ok(answered)
}

/// Answers due to be written onto their tickets, across tenants (ids and instants only).
pub async fn ticket_answers_due(pool: &sqlx::PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    let sql = "SELECT tenant_id, invitation_id FROM ticket_answers_due WHERE due_time <= $1 ORDER BY due_time LIMIT $2";
    crm_kit::db::scan_due(pool, "ticket-answers-scan", "ticket_answers_due", sql, now, limit).await
}

/// The answer of invitation `id` is on its ticket: its queue row goes.
pub async fn ticket_answer_done(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM ticket_answers_due WHERE tenant_id = $1 AND invitation_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "ticket_answers_due"))
        .await?;
    Ok(())
}

/// Tries invitation `id`'s ticket write again at `due` (backing off).
pub async fn ticket_answer_later(tx: &mut TenantTx, tenant: Uuid, id: Uuid, due: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("UPDATE ticket_answers_due SET due_time = $3, attempts = attempts + 1 WHERE tenant_id = $1 AND invitation_id = $2")
        .bind(tenant)
        .bind(id)
        .bind(due)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "ticket_answers_due"))
        .await?;
    Ok(())
}

/// Whose invitations results count: a journey's, a campaign's, or (both None) all.
#[derive(Debug, Clone, Copy, Default)]
pub struct SentBy {
    pub journey: Option<Uuid>,
    pub campaign: Option<Uuid>,
}

/// How many invitations of `questionnaire` were sent (by `by`), and the
/// answers of those answered.
pub async fn results(tx: &mut TenantTx, tenant: Uuid, questionnaire: Uuid, by: SentBy) -> Result<(i64, Vec<Vec<Answer>>), Error> {
    let invited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM questionnaire_invitations
         WHERE tenant_id = $1 AND questionnaire_id = $2 AND ($3::uuid IS NULL OR journey_id = $3) AND ($4::uuid IS NULL OR campaign_id = $4)",
    )
    .bind(tenant)
    .bind(questionnaire)
    .bind(by.journey)
    .bind(by.campaign)
    .fetch_one(&mut **tx)
    .instrument(db_span("SELECT", "questionnaire_invitations"))
    .await?;
    let answered: Vec<Json<Vec<Answer>>> = sqlx::query_scalar(
        "SELECT answers FROM questionnaire_invitations
         WHERE tenant_id = $1 AND questionnaire_id = $2 AND answers IS NOT NULL AND ($3::uuid IS NULL OR journey_id = $3)
           AND ($4::uuid IS NULL OR campaign_id = $4)",
    )
    .bind(tenant)
    .bind(questionnaire)
    .bind(by.journey)
    .bind(by.campaign)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "questionnaire_invitations"))
    .await?;
    Ok((invited, answered.into_iter().map(|Json(a)| a).collect()))
}

/// `customer`'s latest invitation still open at `now` (unanswered, unexpired), with its questions.
pub async fn latest_open(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, Json<Vec<Question>>)>, Error> {
    Ok(sqlx::query_as(
        "SELECT i.id, q.questions FROM questionnaire_invitations i
         JOIN questionnaires q ON q.tenant_id = i.tenant_id AND q.id = i.questionnaire_id
         WHERE i.tenant_id = $1 AND i.customer_id = $2 AND i.answer_time IS NULL AND i.expire_time > $3
         ORDER BY i.create_time DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(customer)
    .bind(now)
    .fetch_optional(&mut **tx)
    .instrument(db_span("SELECT", "questionnaire_invitations"))
    .await?)
}
