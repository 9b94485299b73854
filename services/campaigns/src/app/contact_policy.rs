//! The tenant's contact policy: reading, updating under an etag, and the
//! rules the dispatch step applies.

use chrono::{DateTime, NaiveTime, Utc};
use crm_kit::Error;
use uuid::Uuid;

use super::App;
use crate::{
    domain::{
        channel::Channel,
        rules::{Cap, ContactRules},
    },
    store::contact_policy::{self as store, ContactPolicyRow},
};

/// `minutes` after midnight as a time of day.
pub fn time_of(minutes: Option<i32>) -> Option<NaiveTime> {
    let m = u32::try_from(minutes?).ok()?;
    NaiveTime::from_hms_opt(m / 60, m % 60, 0)
}

/// The rules a stored policy makes (unknown zones and channels are ignored: they were checked on save).
pub fn rules_of(row: &ContactPolicyRow) -> ContactRules {
    ContactRules {
        time_zone: row.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC),
        quiet_hours: time_of(row.quiet_start).zip(time_of(row.quiet_end)),
        caps: row
            .caps
            .0
            .iter()
            .filter_map(|c| Some(Cap { channel: Channel::parse(&c.channel)?, per_day: c.per_day, per_week: c.per_week }))
            .collect(),
    }
}

impl App {
    /// The tenant's policy (defaults, revision 0, when never stored).
    pub async fn contact_policy(&self, tenant: Uuid) -> Result<ContactPolicyRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = store::get(&mut tx, tenant, false).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Replaces the policy with what `edit` makes of the stored one (after the etag check).
    pub async fn update_contact_policy(
        &self,
        tenant: Uuid,
        etag: &str,
        edit: impl FnOnce(&ContactPolicyRow) -> Result<ContactPolicyRow, Error>,
        now: DateTime<Utc>,
    ) -> Result<ContactPolicyRow, Error> {
        crm_kit::etag::parse(etag, "contact_policy.etag")?;
        let mut tx = self.begin(tenant).await?;
        let before = store::get(&mut tx, tenant, true).await?;
        if let Some(expected) = crm_kit::etag::parse(etag, "contact_policy.etag")?
            && expected != before.revision
        {
            return Err(Error::EtagMismatch { resource_type: "campaigns.crm/ContactPolicy", name: "contactPolicy".into() });
        }
        let row = store::put(&mut tx, tenant, &edit(&before)?, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The rules the dispatch step applies for `tenant`.
    pub async fn contact_rules(&self, tenant: Uuid) -> Result<ContactRules, Error> {
        Ok(rules_of(&self.contact_policy(tenant).await?))
    }
}
