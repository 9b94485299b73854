//! A/B/n tests of bulk campaigns: the winner chosen by the campaign job
//! (the domain's test over the variants' numbers), the winner sent to the
//! rest page by page, the rest cancelled with the campaign, and the report
//! of every group with lift against the holdout.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use crm_kit::Error;
use uuid::Uuid;

use super::{
    App,
    ab_tests::{TestReport, samples},
    campaigns::{Outgoing, tally},
};
use crate::{
    domain::{
        ab_test::{self, REST, variant_index},
        campaign::State,
        customer::Customer,
    },
    resources::CAMPAIGN,
    store::{
        campaign_tests,
        campaigns::{self as store, CAMPAIGNS, CampaignRow},
        templates::TemplateRow,
    },
};

/// One page of a tested campaign's rest, as profiles has them now.
#[derive(Debug, Default)]
pub struct RestPage {
    /// The members, in customer-id order after the stored cursor.
    pub ids: Vec<Uuid>,
    /// Profiles answers for every id asked (one it no longer knows as deleted).
    pub customers: HashMap<Uuid, Customer>,
    /// No page follows.
    pub last: bool,
}

/// When campaign `row` began sending: its test's numbers count from then.
fn test_start(row: &CampaignRow, now: DateTime<Utc>) -> DateTime<Utc> {
    row.run_time.unwrap_or(now)
}

impl App {
    /// Decides campaign `row`'s test if it can be decided now: its numbers
    /// are read without holding the campaign's row (a pause or a cancel
    /// never waits for them), then the winner is written, with
    /// `CampaignChanged`, if the campaign is still RUNNING and undecided.
    /// The deadline counts only once none of the test's messages is still
    /// queued (a pause past it does not decide on messages not sent).
    /// Whether it was decided.
    pub async fn decide_campaign_test(&self, tenant: Uuid, row: &CampaignRow, now: DateTime<Utc>) -> Result<bool, Error> {
        let Some(test) = row.undecided_test() else { return Ok(false) };
        let since = test_start(row, now);
        let window = Duration::days(i64::from(row.attribution_window_days));
        let mut tx = self.begin(tenant).await?;
        let groups = campaign_tests::groups(&mut tx, tenant, row.id, since, None, window).await?;
        let sending = store::has_queued(&mut tx, tenant, row.id).await?;
        tx.commit().await?;
        let deadline_passed = now >= since + Duration::minutes(test.decide_after_minutes) && !sending;
        let Some(decision) = ab_test::decide(&test.test, &samples(&test.test, &groups), deadline_passed) else { return Ok(false) };
        let mut tx = self.begin(tenant).await?;
        let current: CampaignRow = CAMPAIGNS.find(&mut tx, tenant, row.id, true).await?.ok_or_else(|| CAMPAIGN.not_found(row.id))?;
        if current.state != State::Running || !current.ab_winner.is_empty() {
            return Ok(false);
        }
        campaign_tests::decide(&mut tx, tenant, row.id, &decision, now).await?;
        let decided: CampaignRow = CAMPAIGNS.find(&mut tx, tenant, row.id, false).await?.ok_or_else(|| CAMPAIGN.not_found(row.id))?;
        super::campaigns::changed(&mut tx, tenant, &decided, Some(current.state)).await?;
        // The rest goes out at once.
        store::wake_job(&mut tx, tenant, row.id, now).await?;
        tx.commit().await?;
        tracing::info!(%tenant, campaign = %row.id, winner = %decision.winner, reason = decision.reason, "a campaign's A/B/n test was decided");
        Ok(true)
    }

    /// Up to `limit` of campaign `id`'s rest after customer `after`.
    pub async fn campaign_rest_page(&self, tenant: Uuid, id: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<Uuid>, Error> {
        let mut tx = self.begin(tenant).await?;
        let page = campaign_tests::rest_page(&mut tx, tenant, id, after, limit).await?;
        tx.commit().await?;
        Ok(page)
    }

    /// Sends the winner of campaign `campaign`'s test to `page`, the next
    /// page of its rest: each member rendered and checked by the contact
    /// policy, then due at once (or at the winner's local send time).
    /// Nothing is stored when the campaign is no longer
    /// RUNNING or another replica stored this page first. Returns whether
    /// the job is to go on with the next page.
    pub async fn store_rest_page(
        &self,
        tenant: Uuid,
        campaign: &CampaignRow,
        templates: &[TemplateRow],
        page: &RestPage,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let (rest, customers, last) = (&page.ids, &page.customers, page.last);
        let lease = Duration::from_std(self.lease).map_err(Error::internal)?;
        let mut tx = self.begin(tenant).await?;
        let current: CampaignRow =
            CAMPAIGNS.find(&mut tx, tenant, campaign.id, true).await?.ok_or_else(|| CAMPAIGN.not_found(campaign.id))?;
        if current.state != State::Running || !current.rest_pending() || current.rest_cursor != campaign.rest_cursor {
            tx.commit().await?;
            return Ok(false);
        }
        let winner = variant_index(&current.ab_winner).unwrap_or(0);
        let mut messages = Outgoing::of(&current, templates);
        let mut out = messages.swap_remove(winner.min(messages.len() - 1));
        out.variant = REST.to_owned();
        // A gap in profiles' answer is a customer it no longer knows too.
        let gone: Vec<Customer> = rest.iter().filter(|id| !customers.contains_key(id)).map(|id| Customer::gone(*id)).collect();
        let members: Vec<(&Customer, &Outgoing)> =
            rest.iter().filter_map(|id| customers.get(id)).chain(gone.iter()).map(|c| (c, &out)).collect();
        let stored = self.store_messages(&mut tx, tenant, &current, &members, now, now).await?;
        let mut deltas = tally(&stored);
        if !stored.is_empty() {
            *deltas.entry(("AWAITING_WINNER", "")).or_default() -= i64::try_from(stored.len()).unwrap_or(i64::MAX);
        }
        store::add_counts(&mut tx, tenant, campaign.id, &deltas).await?;
        super::campaigns::release_batch(&mut tx, tenant, campaign.id, now, i64::try_from(stored.len()).unwrap_or(i64::MAX)).await?;
        campaign_tests::set_rest_progress(&mut tx, tenant, campaign.id, rest.last().copied(), last).await?;
        // The next page within this lease, or (the last) the completion check at once.
        store::wake_job(&mut tx, tenant, campaign.id, if last { now } else { now + lease }).await?;
        tx.commit().await?;
        Ok(!last)
    }

    /// Campaign `row`'s test with each group's numbers, if it has one.
    pub async fn campaign_test_report(&self, tenant: Uuid, row: &CampaignRow) -> Result<Option<TestReport>, Error> {
        if row.ab_test.is_none() {
            return Ok(None);
        }
        let mut tx = self.begin(tenant).await?;
        let since = test_start(row, Utc::now());
        let window = Duration::days(i64::from(row.attribution_window_days));
        let groups = campaign_tests::groups(&mut tx, tenant, row.id, since, row.ab_decide_time, window).await?;
        tx.commit().await?;
        Ok(Some(TestReport {
            step: String::new(),
            version: 0,
            winner: row.ab_winner.clone(),
            decision: row.ab_decision.clone(),
            detail: row.ab_detail.clone(),
            groups,
        }))
    }
}
