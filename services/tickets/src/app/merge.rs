//! `MergeTickets`: duplicates of one customer's matter fold into the ticket
//! that stays — comments move, tags are added, an internal note quotes each
//! duplicate — and the duplicates close through the merge edge of the state
//! machine, with a link to the survivor. Tickets are locked in id order, so
//! crossing merges cannot deadlock.

use chrono::{DateTime, Utc};
use crm_kit::Error;
use crm_proto::crm::tickets::v1 as pb;
use uuid::Uuid;

use super::{context::App, dispatch::release_capacity, events, lifecycle};
use crate::{
    domain::{
        merge::{check_survivor, merge_note, mergeable, merged_tags},
        ticket::Ticket,
    },
    resources::TICKET,
    store,
};

/// The survivor and the duplicates, as a merge leaves them.
#[derive(Debug)]
pub struct Merged {
    pub survivor: Ticket,
    /// Every duplicate named, including those a retry finds merged already.
    pub merged: Vec<Ticket>,
}

impl App {
    /// Merges `sources` (distinct, not `target`) into `target` in one transaction.
    pub async fn merge(
        &self,
        tenant: Uuid,
        target: Uuid,
        etag: &str,
        sources: &[Uuid],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Merged, Error> {
        crm_kit::etag::parse(etag, "etag")?;
        let mut tx = self.begin(tenant).await?;
        let locked = store::lock_in_order(&mut tx, tenant, &[sources, &[target]].concat()).await?;
        let find = |id: Uuid| locked.iter().find(|r| r.id == id).cloned().ok_or_else(|| TICKET.not_found(id));

        let survivor = find(target)?;
        TICKET.check_etag(etag, "etag", target, survivor.revision)?;
        check_survivor(&survivor)?;
        let (mut merging, mut done) = (Vec::new(), Vec::new());
        for id in sources {
            let source = find(*id)?;
            if mergeable(&source, &survivor)? { merging.push(source) } else { done.push(source) }
        }
        if merging.is_empty() {
            tx.commit().await?;
            return Ok(Merged { survivor, merged: done });
        }

        let merging_ids: Vec<Uuid> = merging.iter().map(|r| r.id).collect();
        store::move_comments(&mut tx, tenant, &merging_ids, target).await?;
        store::insert_comment(&mut tx, tenant, target, &merge_note(&merging), false, actor, &[], now).await?;
        let survivor = store::set_tags(&mut tx, tenant, target, &merged_tags(&survivor, &merging), now).await?;
        let names: Vec<String> = merging_ids.iter().map(|id| TICKET.name(*id)).collect();
        store::append_event(&mut tx, tenant, target, "MERGED", actor, &format!("merged {}", names.join(", ")), now).await?;

        // (team, agent) of each place a merged ticket gives back, served once each below.
        let mut freed_places: Vec<(String, String)> = Vec::new();
        for source in &merging {
            let step = source.merge_into(now).map_err(|e| lifecycle::refused(source.id, e))?;
            let closed = store::set_merged(&mut tx, tenant, source.id, target, &step.change, now).await?;
            // Stops the SLA clocks and clears the timer; the queues are served once per place below.
            done.push(lifecycle::apply_effects(&mut tx, tenant, closed, &step, self.follow_up_delay, false, now).await?);
            let detail = format!("{} → {}: merged into {}", step.from, step.to, TICKET.name(target));
            store::append_event(&mut tx, tenant, source.id, "MERGED_INTO", actor, &detail, now).await?;
            let freed = (source.team.clone(), source.assignee.clone());
            if step.frees_capacity && !freed_places.contains(&freed) {
                freed_places.push(freed);
            }
        }
        for (team, agent) in &freed_places {
            release_capacity(&mut tx, tenant, team, agent, now).await?;
        }
        let event = pb::TicketMerged {
            ticket: Some(events::wire(&survivor, now)),
            merged_tickets: done.iter().map(|t| events::wire(t, now)).collect(),
        };
        events::emit(&mut tx, tenant, target, &event).await?;
        tx.commit().await?;
        Ok(Merged { survivor, merged: done })
    }
}
