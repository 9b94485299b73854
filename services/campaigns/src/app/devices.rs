//! Devices push notifications go to: registered by the customer's app (or
//! staff), read by whoever may, forgotten when removed or when FCM calls a
//! token unregistered. Every change emits `DeviceChanged`.

use chrono::{DateTime, Utc};
use crm_kit::Error;
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    resources::DEVICE,
    store::devices::{self, DeviceRow, Registration},
    wire::devices::device_to,
};

impl App {
    /// Registers `r` (or refreshes the device already holding its token);
    /// the device, and whether it is new.
    pub async fn register_device(&self, tenant: Uuid, r: &Registration, now: DateTime<Utc>) -> Result<(DeviceRow, bool), Error> {
        let mut tx = self.begin(tenant).await?;
        let (row, before) = devices::register(&mut tx, tenant, Uuid::now_v7(), r, now).await?;
        // A refresh by the same customer (every app start) changes nothing worth an event.
        if before != Some(row.customer_id) {
            emit(&mut tx, tenant, &DEVICE.name(row.id), &pb::DeviceChanged { device: Some(device_to(&row, false)), deleted: false })
                .await?;
        }
        tx.commit().await?;
        Ok((row, before.is_none()))
    }

    /// Device `id`, or NOT_FOUND.
    pub async fn device(&self, tenant: Uuid, id: Uuid) -> Result<DeviceRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = devices::get(&mut tx, tenant, id).await?.ok_or_else(|| DEVICE.not_found(id))?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of devices (of `customer`, or all), newest registration first, after `after`.
    pub async fn devices(
        &self,
        tenant: Uuid,
        customer: Option<Uuid>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> Result<Vec<DeviceRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = devices::list(&mut tx, tenant, customer, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Removes device `id`, or NOT_FOUND.
    pub async fn delete_device(&self, tenant: Uuid, id: Uuid) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let row = devices::delete(&mut tx, tenant, id).await?.ok_or_else(|| DEVICE.not_found(id))?;
        emit(&mut tx, tenant, &DEVICE.name(row.id), &pb::DeviceChanged { device: Some(device_to(&row, false)), deleted: true }).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The FCM tokens a push to `customer` goes to.
    pub async fn push_tokens(&self, tenant: Uuid, customer: Uuid) -> Result<Vec<String>, Error> {
        let mut tx = self.begin(tenant).await?;
        let tokens = devices::push_tokens(&mut tx, tenant, customer).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Forgets the devices holding `tokens`, which FCM called unregistered.
    pub async fn forget_push_tokens(&self, tenant: Uuid, tokens: &[String]) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        for row in devices::forget_tokens(&mut tx, tenant, tokens).await? {
            emit(&mut tx, tenant, &DEVICE.name(row.id), &pb::DeviceChanged { device: Some(device_to(&row, false)), deleted: true }).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
