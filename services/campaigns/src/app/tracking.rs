//! Opens and clicks of tracked emails, recorded from the links in them
//! without a login: the first open and the first click of a delivery are
//! stored on it, counted on its campaign and announced (`DeliveryEngaged`);
//! later ones change nothing. A click is an open too — images are often
//! blocked, a followed link proves the email was read.

use chrono::{DateTime, Utc};
use crm_kit::Error;
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    domain::{channel::Purpose, delivery::Status, tracking},
    links::invalid_tracking_link,
    resources::{CAMPAIGN, CUSTOMER, DELIVERY},
    store::{
        campaigns,
        deliveries::{self, DELIVERIES},
    },
};

impl App {
    /// Records that tracked email `delivery` was opened at `now`.
    pub async fn record_open(&self, tenant: Uuid, delivery: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        self.engage(&mut tx, tenant, delivery, None, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Follows tracked link `position` of email `delivery` at `now`: records
    /// the click (and the open) and returns where the link goes.
    pub async fn follow_link(&self, tenant: Uuid, delivery: Uuid, position: i32, now: DateTime<Utc>) -> Result<String, Error> {
        let mut tx = self.begin(tenant).await?;
        let row: deliveries::DeliveryRow = DELIVERIES.find(&mut tx, tenant, delivery, false).await?.ok_or_else(invalid_tracking_link)?;
        // The links as they were rewritten when it was sent: its marketing unsubscribe link is not one.
        let unsubscribe = match row.purpose {
            Purpose::Marketing => self.links().unsubscribe_url(tenant, delivery),
            Purpose::Transactional => None,
        };
        let links = tracking::links(&row.html_body, unsubscribe.as_deref());
        let url = usize::try_from(position)
            .ok()
            .and_then(|p| links.into_iter().nth(p))
            // Serialised by the URL parser: ASCII, fit for a Location header.
            .and_then(|link| reqwest::Url::parse(&link.url).ok())
            .map(String::from)
            .ok_or_else(|| Error::invalid("link", "NO_SUCH_LINK", "the email has no tracked link at this position"))?;
        // Read before its relay's answer was recorded, it is sent all the same.
        if matches!(row.status, Status::Sent | Status::Submitting) {
            self.engage(&mut tx, tenant, delivery, Some(&url), now).await?;
        }
        tx.commit().await?;
        Ok(url)
    }

    /// Stores an open (or, with `clicked`, a click) of `delivery`; counts and announces the first of each.
    async fn engage(
        &self,
        tx: &mut crm_kit::db::TenantTx,
        tenant: Uuid,
        delivery: Uuid,
        clicked: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let Some(e) = deliveries::engage(tx, tenant, delivery, clicked.is_some(), now).await? else {
            // Not a sent delivery: a pixel of a message that never left, or a forged id.
            return Err(invalid_tracking_link());
        };
        let campaign = e.delivery.campaign_id;
        if let Some(campaign) = campaign {
            let deltas = [(("OPENED", ""), i64::from(e.first_open)), (("CLICKED", ""), i64::from(e.first_click))]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect();
            campaigns::add_counts(tx, tenant, campaign, &deltas).await?;
        }
        for (first, url) in [(e.first_open, None), (e.first_click, clicked)] {
            if !first {
                continue;
            }
            let event = pb::DeliveryEngaged {
                delivery: DELIVERY.name(delivery),
                campaign: campaign.map(|c| CAMPAIGN.name(c)).unwrap_or_default(),
                customer: CUSTOMER.name(e.delivery.customer_id),
                clicked: url.is_some(),
                url: url.unwrap_or_default().to_owned(),
            };
            emit(tx, tenant, &DELIVERY.name(delivery), &event).await?;
        }
        Ok(())
    }
}
