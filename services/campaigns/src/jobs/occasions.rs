//! Starts birthday and holiday journeys: every poll interval, each ACTIVE
//! journey with such a trigger (found across tenants in `occasion_journeys`,
//! ids only, through its `schedule_scan` policy) gets a pass for each of its occasions of today and
//! tomorrow (UTC): the customers the occasion concerns — those born on that
//! day, or everyone on a holiday of the tenant's calendar — are read from
//! profiles page by page, and each is started on the journey, due at the
//! journey's time of day in their own zone (`domain::occasions`). A pass
//! records its page token with each page's starts, so a crash resumes it and
//! a finished pass is not run again.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use crm_kit::{Error, auth::ServiceTokens, client::Caller};
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    app::{App, journey_runs::Greeting},
    domain::{
        journey::Trigger,
        occasions::{birthday_filter, birthday_key, greeting_due, holiday_key, pass_dates},
    },
    profiles::ProfilesClient,
    store::journey_runs::{Entrance, occasion_journeys},
};

/// Birthday and holiday journeys looked at per round, across tenants.
const JOURNEYS_PER_ROUND: i64 = 100_000;
/// Customers read from profiles per page.
const PAGE: i32 = 500;

/// The scheduler's parts.
#[derive(Clone)]
pub struct Occasions {
    app: App,
    profiles: ProfilesClient,
    tokens: ServiceTokens,
}

/// One pass: the journey, the occasion's key, whom to read, when to greet.
struct Pass<'a> {
    tenant: Uuid,
    entrance: &'a Entrance,
    key: String,
    filter: String,
    date: chrono::NaiveDate,
    minute_of_day: u16,
}

impl Occasions {
    pub fn new(app: App, profiles: ProfilesClient, tokens: ServiceTokens) -> Self {
        Self { app, profiles, tokens }
    }

    /// Runs every `poll` until `shutdown` turns true.
    pub fn spawn(self, poll: Duration, shutdown: watch::Receiver<bool>) {
        super::every(poll, shutdown, "birthday and holiday journeys", move || {
            let this = self.clone();
            async move { this.round(Utc::now()).await }
        });
    }

    async fn round(&self, now: DateTime<Utc>) -> Result<(), Error> {
        for (tenant, journey) in occasion_journeys(self.app.pool(), now, JOURNEYS_PER_ROUND).await? {
            if let Err(err) = self.journey(tenant, journey, now).await {
                tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, %journey, "an occasion pass stopped; it resumes next round");
            }
        }
        Ok(())
    }

    /// The passes journey `journey` has due now.
    async fn journey(&self, tenant: Uuid, journey: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
        let Some(entrance) = self.app.journey_entrance(tenant, journey).await? else { return Ok(()) };
        let mut passes = Vec::new();
        match &entrance.definition.0.trigger {
            Trigger::Birthday { minute_of_day } => {
                for date in pass_dates(now) {
                    let (key, filter) = (birthday_key(date), birthday_filter(date));
                    passes.push(Pass { tenant, entrance: &entrance, key, filter, date, minute_of_day: *minute_of_day });
                }
            }
            Trigger::Holiday { holiday, minute_of_day } => {
                let calendar = self.app.holiday(tenant, holiday).await?;
                if calendar.disabled {
                    return Ok(());
                }
                for date in pass_dates(now) {
                    if calendar.rule.dates_in(date.year()).contains(&date) {
                        let key = holiday_key(holiday, date);
                        passes.push(Pass { tenant, entrance: &entrance, key, filter: String::new(), date, minute_of_day: *minute_of_day });
                    }
                }
            }
            Trigger::Event(_) | Trigger::Api => {}
        }
        for pass in passes {
            self.pass(&pass, now).await?;
        }
        Ok(())
    }

    /// Reads the pass's customers from where it stopped, page by page, and starts them.
    async fn pass(&self, pass: &Pass<'_>, now: DateTime<Utc>) -> Result<(), Error> {
        let mut token = match self.app.occasion_pass(pass.tenant, pass.entrance.journey_id, &pass.key).await? {
            Some((_, true)) => return Ok(()),
            Some((token, false)) => token,
            None => String::new(),
        };
        let caller = Caller::service(&self.tokens.mint(pass.tenant)?)?;
        let rules = self.app.contact_rules(pass.tenant).await?;
        loop {
            let page = self.profiles.customers(&caller, &pass.filter, &token, PAGE, "filter").await?;
            let greetings: Vec<Greeting> = page
                .customers
                .iter()
                .filter_map(|c| {
                    let zone = rules.zone_of(&c.fields.time_zone);
                    greeting_due(zone, pass.date, pass.minute_of_day, now).map(|due| Greeting { customer: c.id, due })
                })
                .collect();
            let started =
                self.app.enter_occasion(pass.tenant, pass.entrance, &pass.key, &greetings, &page.next_page_token, Utc::now()).await?;
            if started > 0 {
                tracing::info!(tenant = %pass.tenant, journey = %pass.entrance.journey_id, occasion = %pass.key, started, "occasion greetings scheduled");
            }
            if page.next_page_token.is_empty() {
                return Ok(());
            }
            token = page.next_page_token;
        }
    }
}
