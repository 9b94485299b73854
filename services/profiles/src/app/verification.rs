//! Data verification (定期确认): the tenant's fresh period, and the
//! reminders the verification job sends — one `CustomerVerificationDue` per
//! customer whose data is older than the period, per period since their last
//! confirmation (recorded first, so a repeated run or another replica sends
//! none twice).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{Error, outbox};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::App;
use crate::{
    resources::CUSTOMER,
    store::{self, CustomerRow, verification},
    wire::customer_to_proto,
};

impl App {
    /// The tenant's fresh period in days (0 when never set) and when it last changed.
    pub async fn verification_settings(&self, tenant: Uuid) -> Result<(i32, Option<DateTime<Utc>>), Error> {
        let mut tx = self.begin(tenant).await?;
        let settings = verification::get(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(settings.map_or((0, None), |(days, time)| (days, Some(time))))
    }

    /// Sets the tenant's fresh period in days (0: off).
    pub async fn set_verification_settings(&self, tenant: Uuid, fresh_days: i32, now: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        verification::put(&mut tx, tenant, fresh_days, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tenants that verify, with their fresh period (the job's scan).
    pub async fn verifying_tenants(&self) -> Result<Vec<(Uuid, i32)>, Error> {
        verification::verifying_tenants(&self.pool).await
    }

    /// Records and announces the reminders due in `tenant` at `now`; how many.
    pub async fn send_verification_reminders(&self, tenant: Uuid, fresh_days: i32, now: DateTime<Utc>) -> Result<usize, Error> {
        let mut tx = self.begin(tenant).await?;
        let due = verification::record_due(&mut tx, tenant, fresh_days, now).await?;
        let ids: Vec<Uuid> = due.iter().map(|(id, _)| *id).collect();
        let customers: HashMap<Uuid, CustomerRow> = store::batch_get(&mut tx, tenant, &ids).await?.into_iter().map(|c| (c.id, c)).collect();
        for (customer, period) in &due {
            if let Some(row) = customers.get(customer) {
                let event = pb::CustomerVerificationDue { customer: Some(customer_to_proto(row)), period: *period };
                outbox::append(&mut tx, tenant, &CUSTOMER.name(*customer), &event).await?;
            }
        }
        tx.commit().await?;
        Ok(due.len())
    }
}
