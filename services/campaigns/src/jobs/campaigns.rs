//! The campaign job: every poll interval, looks at the campaigns that are
//! due (`app::campaigns`): stores a SCHEDULED campaign's audience page by
//! page, reading profiles with the service's own token for the campaign's
//! tenant (there is no caller to forward at its schedule time), and
//! completes RUNNING campaigns with nothing left in the queue. A snapshot
//! that fails half-way (profiles down, a crash) resumes from the page token
//! stored with the last batch when its lease ends. Once an A/B/n test's
//! winner is chosen, it sends the winner to the test's rest page by page
//! (each page's customers read from profiles as they are then), resuming
//! the same way from the cursor stored with the last page.

use std::time::Duration;

use chrono::Utc;
use crm_kit::{auth::ServiceTokens, client::Caller};
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    app::{App, campaign_tests::RestPage, campaigns::JobWork},
    profiles::ProfilesClient,
    store::{campaigns as store, templates::TemplateRow},
};

/// Audience members read per page from profiles (its largest page).
const PAGE_SIZE: i32 = 1000;
/// Campaigns looked at per round.
const PER_ROUND: i64 = 32;
/// How long one campaign's batches may go on in a round before the next campaign's turn.
const BATCHES_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the job every `poll` until `shutdown` turns true.
pub fn spawn(app: App, profiles: ProfilesClient, tokens: ServiceTokens, poll: Duration, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            if let Err(err) = round(&app, &profiles, &tokens).await {
                tracing::warn!(error = %crm_kit::error::cause_chain(&err), "campaign job round failed; retrying next round");
            }
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                _ = tokio::time::sleep(poll) => {}
            }
        }
    });
}

async fn round(app: &App, profiles: &ProfilesClient, tokens: &ServiceTokens) -> Result<(), crm_kit::Error> {
    for (tenant, id) in store::due_jobs(app.pool(), Utc::now(), PER_ROUND).await? {
        // Batches of a huge pause, resume or cancel, one transaction each, for up to a second.
        let started = std::time::Instant::now();
        let mut work = app.lease_campaign_job(tenant, id, Utc::now()).await?;
        while matches!(work, JobWork::Again) && started.elapsed() < BATCHES_FOR {
            work = app.lease_campaign_job(tenant, id, Utc::now()).await?;
        }
        match work {
            JobWork::Snapshot { campaign, templates } => {
                let span = tracing::info_span!("campaign.snapshot", campaign.id = %id);
                // One trace from StartCampaign through the snapshot to every send.
                crm_kit::telemetry::continue_trace(&span, &campaign.traceparent);
                if let Err(err) = snapshot(app, profiles, tokens, tenant, *campaign, &templates).instrument(span).await {
                    tracing::warn!(campaign = %id, error = %crm_kit::error::cause_chain(&err), "audience snapshot interrupted; it resumes when its lease ends");
                }
            }
            JobWork::SendRest { campaign, templates } => {
                let span = tracing::info_span!("campaign.send_winner", campaign.id = %id);
                crm_kit::telemetry::continue_trace(&span, &campaign.traceparent);
                if let Err(err) = send_rest(app, profiles, tokens, tenant, *campaign, &templates).instrument(span).await {
                    tracing::warn!(campaign = %id, error = %crm_kit::error::cause_chain(&err), "sending the winner interrupted; it resumes when its lease ends");
                }
            }
            JobWork::Decide { campaign } => {
                if let Err(err) = app.decide_campaign_test(tenant, &campaign, Utc::now()).await {
                    tracing::warn!(campaign = %id, error = %crm_kit::error::cause_chain(&err), "an A/B/n test could not be decided; looking again later");
                }
            }
            JobWork::Again | JobWork::Nothing => {}
        }
    }
    Ok(())
}

/// Stores the campaign's audience from where the last stored page left off.
async fn snapshot(
    app: &App,
    profiles: &ProfilesClient,
    tokens: &ServiceTokens,
    tenant: Uuid,
    mut campaign: store::CampaignRow,
    templates: &[TemplateRow],
) -> Result<(), crm_kit::Error> {
    let started = std::time::Instant::now();
    let mut members = 0usize;
    loop {
        let caller = Caller::service(&tokens.mint(tenant)?)?;
        let page_token = campaign.snapshot_page_token.clone().unwrap_or_default();
        let page = profiles.customers(&caller, &campaign.audience_filter, &page_token, PAGE_SIZE, "campaign.audience.filter").await?;
        members += page.customers.len();
        let done = app.store_audience_page(tenant, &campaign, templates, &page.customers, &page.next_page_token, Utc::now()).await?;
        if done {
            tracing::info!(campaign = %campaign.id, members, elapsed_ms = started.elapsed().as_millis() as u64, "audience stored");
            return Ok(());
        }
        campaign.snapshot_page_token = Some(page.next_page_token);
    }
}

/// Sends the test's winner to the campaign's rest from the cursor stored with it on.
async fn send_rest(
    app: &App,
    profiles: &ProfilesClient,
    tokens: &ServiceTokens,
    tenant: Uuid,
    mut campaign: store::CampaignRow,
    templates: &[TemplateRow],
) -> Result<(), crm_kit::Error> {
    let started = std::time::Instant::now();
    let mut members = 0usize;
    loop {
        let ids = app.campaign_rest_page(tenant, campaign.id, campaign.rest_cursor, i64::from(PAGE_SIZE)).await?;
        let caller = Caller::service(&tokens.mint(tenant)?)?;
        let customers = profiles.customers_by_id(&caller, &ids).await?;
        members += ids.len();
        let page = RestPage { last: ids.len() < PAGE_SIZE as usize, ids, customers };
        if !app.store_rest_page(tenant, &campaign, templates, &page, Utc::now()).await? {
            tracing::info!(campaign = %campaign.id, members, elapsed_ms = started.elapsed().as_millis() as u64, "the winner went to the rest");
            return Ok(());
        }
        campaign.rest_cursor = page.ids.last().copied().or(campaign.rest_cursor);
    }
}
