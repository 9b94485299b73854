//! The tenant's service-desk settings, and the values that apply: the
//! tenant's own where set, else the service's defaults.

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use uuid::Uuid;

use super::context::App;
use crate::store::{self, SettingsRow};

/// A tenant's settings as they apply.
#[derive(Debug, Clone)]
pub struct Settings {
    pub follow_up_delay: Duration,
    /// Whether `follow_up_delay` is the tenant's own.
    pub follow_up_delay_set: bool,
    /// 1 while nothing was ever set.
    pub revision: i64,
    pub update_time: Option<DateTime<Utc>>,
}

impl App {
    /// The tenant's settings.
    pub async fn settings(&self, tenant: Uuid) -> Result<Settings, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = store::settings(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(self.applied(row))
    }

    /// Changes the tenant's settings: `edit` gets the current ones and gives
    /// the tenant's own follow-up delay (`None`: the default) or refuses.
    pub async fn update_settings(
        &self,
        tenant: Uuid,
        edit: impl FnOnce(&Settings) -> Result<Option<Duration>, Error>,
        now: DateTime<Utc>,
    ) -> Result<Settings, Error> {
        let mut tx = self.begin(tenant).await?;
        let current = self.applied(Some(store::lock_settings(&mut tx, tenant, now).await?));
        let delay = edit(&current)?;
        let stored = store::save_settings(&mut tx, tenant, delay.map(|d| d.num_seconds()), now).await?;
        tx.commit().await?;
        Ok(self.applied(Some(stored)))
    }

    fn applied(&self, row: Option<SettingsRow>) -> Settings {
        let own = row.as_ref().and_then(|r| r.follow_up_delay_secs);
        Settings {
            follow_up_delay: own.map(Duration::seconds).unwrap_or(self.follow_up_delay),
            follow_up_delay_set: own.is_some(),
            revision: row.as_ref().map_or(1, |r| r.revision),
            // Revision 1 is the defaults (a row only locked, never saved, is never committed).
            update_time: row.filter(|r| r.revision > 1).map(|r| r.update_time),
        }
    }
}

/// The follow-up delay that applies to `tenant`: its own, else `default`.
pub(super) async fn follow_up_delay(tx: &mut TenantTx, tenant: Uuid, default: Duration) -> Result<Duration, Error> {
    Ok(store::follow_up_delay_secs(tx, tenant).await?.map(Duration::seconds).unwrap_or(default))
}
