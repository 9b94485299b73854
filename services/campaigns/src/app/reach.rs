//! A campaign's estimated reach: its audience judged by the contact policy
//! as if it started now — the record (deleted, address, consent,
//! do-not-contact), an open complaint, a suppressed address, an unsubscribe
//! profiles has not recorded yet, for push through FCM no registered device —
//! read-only, one transaction per page of members. Frequency caps and quiet
//! hours belong to the moment of sending.

use std::collections::BTreeMap;

use crm_kit::Error;
use uuid::Uuid;

use super::App;
use crate::{
    domain::{
        channel::{Channel, Purpose},
        customer::Customer,
        policy::{self, SkipReason},
    },
    resources::{CAMPAIGN, TEMPLATE},
    store::{
        campaigns::{CAMPAIGNS, CampaignRow},
        contact_policy, devices,
        providers::{self, ProviderSettings},
        streams,
        templates::{TEMPLATES, TemplateRow},
        unsubscribes,
    },
};

/// What is counted while the audience is read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reach {
    pub audience: i64,
    pub reachable: i64,
    pub skipped: BTreeMap<SkipReason, i64>,
}

impl App {
    /// Campaign `id` and its template: what an estimate needs (audience, channel, purpose).
    pub async fn campaign_and_template(&self, tenant: Uuid, id: Uuid) -> Result<(CampaignRow, TemplateRow), Error> {
        let mut tx = self.begin(tenant).await?;
        let campaign: CampaignRow = CAMPAIGNS.find(&mut tx, tenant, id, false).await?.ok_or_else(|| CAMPAIGN.not_found(id))?;
        let template: TemplateRow =
            TEMPLATES.find(&mut tx, tenant, campaign.template_id, false).await?.ok_or_else(|| TEMPLATE.not_found(campaign.template_id))?;
        tx.commit().await?;
        Ok((campaign, template))
    }

    /// Adds the verdicts on `members` for a message on `channel` for `purpose` to `reach`.
    pub async fn judge_reach(
        &self,
        tenant: Uuid,
        channel: Channel,
        purpose: Purpose,
        members: &[Customer],
        reach: &mut Reach,
    ) -> Result<(), Error> {
        let addresses: Vec<(Uuid, Result<String, SkipReason>)> =
            members.iter().map(|m| (m.id, policy::address(m, channel, purpose))).collect();
        let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
        let sendable: Vec<String> = addresses.iter().filter_map(|(_, a)| a.as_ref().ok().cloned()).collect();
        let mut tx = self.begin(tenant).await?;
        let complaints = streams::with_open_complaints(&mut tx, tenant, &ids).await?;
        let suppressed = contact_policy::suppressed_among(&mut tx, tenant, channel, &sendable).await?;
        let unsubscribed = unsubscribes::pending_among(&mut tx, tenant, channel, &ids).await?;
        // FCM reaches a customer only through a device registered here (a webhook resolves its own).
        let pushes_to_devices = channel == Channel::Push
            && matches!(providers::for_channel(&mut tx, tenant, channel).await?, Some(p) if matches!(p.settings.0, ProviderSettings::Fcm(_)));
        let with_devices = match pushes_to_devices {
            true => Some(devices::customers_with_devices(&mut tx, tenant, &ids).await?),
            false => None,
        };
        tx.commit().await?;
        for (id, address) in addresses {
            let verdict = address
                .and_then(|address| match &with_devices {
                    Some(reachable) if !reachable.contains(&id) => Err(SkipReason::NoAddress),
                    _ => Ok(address),
                })
                .and_then(|address| {
                    policy::beyond_record(purpose, suppressed.contains(&address), unsubscribed.contains(&id), complaints.contains(&id))
                });
            reach.audience += 1;
            match verdict {
                Ok(()) => reach.reachable += 1,
                Err(reason) => *reach.skipped.entry(reason).or_default() += 1,
            }
        }
        Ok(())
    }
}
