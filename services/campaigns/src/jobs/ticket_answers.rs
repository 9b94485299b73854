//! Writes the answers of surveys about a ticket onto the ticket: every poll
//! interval, the answers due (queued in the answering transaction; found
//! across tenants through the `due_scan` policy) are sent to tickets'
//! SurveyService with the service's own token; a failure is tried again a
//! minute later. Tickets takes a survey's answer once, so a repeat after a
//! lost reply changes nothing.

use std::time::Duration;

use chrono::Utc;
use crm_kit::{Error, auth::ServiceTokens, client::Caller};
use tokio::sync::watch;
use uuid::Uuid;

use crate::{app::App, store::questionnaires::ticket_answers_due, tickets::TicketSurveys};

/// Answers written per round.
const PER_ROUND: i64 = 200;

async fn write(app: &App, surveys: &TicketSurveys, tokens: &ServiceTokens, tenant: Uuid, invitation: Uuid) -> Result<(), Error> {
    let Some(answer) = app.ticket_answer(tenant, invitation).await? else { return app.ticket_answer_done(tenant, invitation).await };
    let caller = Caller::service(&tokens.mint(tenant)?)?;
    match surveys.answer(&caller, answer.ticket, answer.csat, answer.nps, &answer.comment).await {
        Ok(_) => app.ticket_answer_done(tenant, invitation).await,
        Err(err) => {
            tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, "a survey answer could not be written onto its ticket; trying again");
            app.ticket_answer_later(tenant, invitation, Utc::now() + chrono::Duration::minutes(1)).await
        }
    }
}

/// Runs every `poll` until `shutdown` turns true.
pub fn spawn(app: App, surveys: TicketSurveys, tokens: ServiceTokens, poll: Duration, shutdown: watch::Receiver<bool>) {
    super::every(poll, shutdown, "survey answers onto tickets", move || {
        let (app, surveys, tokens) = (app.clone(), surveys.clone(), tokens.clone());
        async move {
            for (tenant, invitation) in ticket_answers_due(app.pool(), Utc::now(), PER_ROUND).await? {
                write(&app, &surveys, &tokens, tenant, invitation).await?;
            }
            Ok(())
        }
    });
}
