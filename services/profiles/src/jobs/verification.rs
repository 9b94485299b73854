//! The verification job: every poll interval, for each tenant that verifies,
//! sends the reminders that are due. Every replica runs it; the notices'
//! primary key makes each reminder go out once.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::app::App;

/// Runs the job every `poll` until `shutdown` turns true.
pub fn spawn(app: App, poll: Duration, shutdown: watch::Receiver<bool>) {
    crm_kit::jobs::every(poll, shutdown, "verification reminders", move || {
        let app = app.clone();
        async move { round(&app).await }
    });
}

async fn round(app: &App) -> Result<(), crm_kit::Error> {
    for (tenant, fresh_days) in app.verifying_tenants().await? {
        let sent = app.send_verification_reminders(tenant, fresh_days, Utc::now()).await?;
        if sent > 0 {
            tracing::info!(%tenant, sent, "verification reminders sent");
        }
    }
    Ok(())
}
