//! Campaigns: drafts and their edits, the lifecycle moves with their
//! effects on the queue, the audience snapshot in batches, completion, and
//! the reads with live counts.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
};
use crm_proto::crm::campaigns::v1 as pb;
use prost::Message;
use sqlx::types::Json;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    domain::{
        ab_test::{CampaignGroup, HOLDOUT, REST, variant_name},
        campaign::{self, Effect, Move, State},
        channel::Purpose,
        customer::Customer,
        delivery::Status,
        policy,
        questionnaire::SURVEY_LINK,
        rules,
        template::{self, TemplateDraft},
    },
    resources::{CAMPAIGN, QUESTIONNAIRE, TEMPLATE},
    store::{
        campaign_tests,
        campaigns::{self as store, CAMPAIGNS, CampaignFields, CampaignRow, Stamps},
        contact_policy,
        deliveries::DeliveryRow,
        questionnaires::{self, QUESTIONNAIRES, QuestionnaireRow},
        queue, streams,
        templates::{TEMPLATES, TemplateRow},
    },
    wire::{campaign_counts, campaign_state_to, campaign_to},
};

/// A campaign with its live counts.
pub type CampaignWithCounts = (CampaignRow, pb::CampaignCounts);

/// What the campaign job is to do for one campaign.
#[derive(Debug)]
pub enum JobWork {
    /// Store its audience (from the page token stored with it on) with
    /// `templates` (its own, then its A/B/n test's variants').
    Snapshot { campaign: Box<CampaignRow>, templates: Vec<TemplateRow> },
    /// Decide its A/B/n test if its numbers allow.
    Decide { campaign: Box<CampaignRow> },
    /// Send its A/B/n test's winner, `templates[winner]`, to the rest, from
    /// the cursor stored with it on.
    SendRest { campaign: Box<CampaignRow>, templates: Vec<TemplateRow> },
    /// One batch of held, released or cancelled messages done, more to go:
    /// take the job again (each batch in its own transaction, so a move of
    /// the campaign never waits long for its row).
    Again,
    /// Nothing now (it was handled, or another replica holds it).
    Nothing,
}

/// The templates a campaign sends — its own, then its A/B/n test's
/// variants' — each checked against its variables: every locked variable
/// given, none the template does not use; the variants on the campaign's
/// channel and purpose. Its questionnaire, if any, exists, and every
/// template shows its link.
async fn checked_templates(tx: &mut TenantTx, tenant: Uuid, f: &CampaignFields) -> Result<Vec<TemplateRow>, Error> {
    let mut messages = vec![("campaign".to_owned(), f.template_id, &f.variables)];
    for (i, v) in f.ab_test.iter().flat_map(|t| t.test.variants.iter()).enumerate() {
        let id = v.template.parse().map_err(Error::internal)?;
        messages.push((format!("campaign.ab_test.variants[{i}]"), id, &v.variables));
    }
    let mut templates: Vec<TemplateRow> = Vec::with_capacity(messages.len());
    let mut violations = Vec::new();
    for (field, id, variables) in messages {
        let Some(template) = TEMPLATES.find::<TemplateRow>(tx, tenant, id, false).await? else {
            let message = format!("{} is not a template of this tenant", TEMPLATE.name(id));
            violations.push(crm_kit::FieldViolation::new(format!("{field}.template"), "UNKNOWN_TEMPLATE", message));
            continue;
        };
        for locked in &template.locked_variables {
            if variables.get(locked).is_none_or(|v| v.trim().is_empty()) {
                violations.push(crm_kit::FieldViolation::new(
                    format!("{field}.variables.{locked}"),
                    "MISSING_LOCKED_VARIABLE",
                    format!("the template requires vars.{locked}"),
                ));
            }
        }
        for name in variables.keys().filter(|n| !template.variables.contains(*n)) {
            violations.push(crm_kit::FieldViolation::new(
                format!("{field}.variables.{name}"),
                "UNKNOWN_VARIABLE",
                format!("the template does not use vars.{name}"),
            ));
        }
        if f.questionnaire_id.is_some() && !template.variables.iter().any(|v| v == SURVEY_LINK) {
            violations.push(crm_kit::FieldViolation::new(
                format!("{field}.template"),
                "MISSING_SURVEY_LINK",
                format!(
                    "the questionnaire's invitation reaches the message as {{{{ vars.{SURVEY_LINK} }}}}, which this template does not show"
                ),
            ));
        }
        if let Some(first) = templates.first().filter(|c| c.channel != template.channel || c.purpose != template.purpose) {
            violations.push(crm_kit::FieldViolation::new(
                format!("{field}.template"),
                "VARIANT_CHANNEL_MISMATCH",
                format!(
                    "a variant is sent on the campaign's channel for its purpose ({} {})",
                    first.channel.as_str(),
                    first.purpose.as_str()
                ),
            ));
        }
        templates.push(template);
    }
    if let Some(id) = f.questionnaire_id
        && QUESTIONNAIRES.find::<QuestionnaireRow>(tx, tenant, id, false).await?.is_none()
    {
        let message = format!("{} is not a questionnaire of this tenant", QUESTIONNAIRE.name(id));
        violations.push(crm_kit::FieldViolation::new("campaign.questionnaire", "UNKNOWN_QUESTIONNAIRE", message));
    }
    if violations.is_empty() { Ok(templates) } else { Err(Error::InvalidArgument { violations }) }
}

fn stamps(effects: &[Effect]) -> Stamps {
    Stamps {
        start: effects.contains(&Effect::StampStart),
        run: effects.contains(&Effect::StampRun),
        end: effects.contains(&Effect::StampEnd),
    }
}

fn not_editable(row: &CampaignRow) -> Error {
    Error::FailedPrecondition {
        reason: "CAMPAIGN_NOT_EDITABLE",
        message: format!("a {} campaign cannot be changed or deleted; only a DRAFT can", row.state.as_str()),
        subject: CAMPAIGN.name(row.id),
    }
}

impl App {
    /// Stores a DRAFT campaign after checking its template and variables; writes `CampaignChanged`.
    pub async fn create_campaign<R: Message + Default>(
        &self,
        tenant: Uuid,
        fields: CampaignFields,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&CampaignWithCounts) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        checked_templates(&mut tx, tenant, &fields).await?;
        let row = store::insert(&mut tx, tenant, &fields, now).await?;
        changed(&mut tx, tenant, &row, None).await?;
        let response = respond(&(row, pb::CampaignCounts::default()));
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Replaces a DRAFT campaign's fields with what `edit` makes of the stored ones.
    pub async fn update_campaign(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&CampaignRow) -> Result<CampaignFields, Error>,
        now: DateTime<Utc>,
    ) -> Result<CampaignWithCounts, Error> {
        let mut tx = self.begin(tenant).await?;
        let before: CampaignRow = CAMPAIGNS.lock_for_change(&mut tx, tenant, id, &CAMPAIGN, etag, "campaign.etag").await?;
        if !campaign::editable(before.state) {
            return Err(not_editable(&before));
        }
        let fields = edit(&before)?;
        checked_templates(&mut tx, tenant, &fields).await?;
        let row = store::update(&mut tx, tenant, id, &fields, now).await?;
        changed(&mut tx, tenant, &row, Some(before.state)).await?;
        tx.commit().await?;
        Ok((row, pb::CampaignCounts::default()))
    }

    /// Deletes a DRAFT campaign.
    pub async fn delete_campaign(&self, tenant: Uuid, id: Uuid, etag: &str) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let before: CampaignRow = CAMPAIGNS.lock_for_change(&mut tx, tenant, id, &CAMPAIGN, etag, "etag").await?;
        if !campaign::editable(before.state) {
            return Err(not_editable(&before));
        }
        store::delete(&mut tx, tenant, id).await?;
        let gone = pb::Campaign { name: CAMPAIGN.name(id), ..Default::default() };
        let event = pb::CampaignChanged { campaign: Some(gone), previous_state: campaign_state_to(before.state) as i32, deleted: true };
        emit(&mut tx, tenant, &CAMPAIGN.name(id), &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves campaign `id` by `m` (etag checked when given) and carries out the move's effects.
    pub async fn move_campaign(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        m: Move,
        now: DateTime<Utc>,
    ) -> Result<CampaignWithCounts, Error> {
        let mut tx = self.begin(tenant).await?;
        let before: CampaignRow = CAMPAIGNS.lock_for_change(&mut tx, tenant, id, &CAMPAIGN, etag, "etag").await?;
        if matches!(m, Move::Start { .. }) {
            checked_templates(&mut tx, tenant, &CampaignFields::of(&before)).await?;
        }
        let row = self.apply_move(&mut tx, tenant, &before, m, now).await?;
        let counts = self.counts_of(&mut tx, tenant, &[id]).await?.remove(&id).unwrap_or_default();
        tx.commit().await?;
        tracing::info!(campaign = %id, state = row.state.as_str(), "campaign moved");
        Ok((row, counts))
    }

    /// Applies `m` to `before` (locked in `tx`) with its effects and event.
    async fn apply_move(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        before: &CampaignRow,
        m: Move,
        now: DateTime<Utc>,
    ) -> Result<CampaignRow, Error> {
        let (to, effects) = campaign::apply(before.state, m, now).map_err(|invalid| Error::FailedPrecondition {
            reason: "INVALID_CAMPAIGN_STATE",
            message: format!(
                "a {} campaign cannot do that; it must be {}",
                invalid.from.as_str(),
                invalid.allowed_from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
            ),
            subject: CAMPAIGN.name(before.id),
        })?;
        let id = before.id;
        for effect in &effects {
            match effect {
                Effect::WakeJobAt(at) => store::wake_job(tx, tenant, id, *at).await?,
                Effect::DropJob => store::drop_job(tx, tenant, id).await?,
                Effect::HoldQueued => {
                    store::hold_queued(tx, tenant, id, REQUEST_BATCH).await?;
                }
                Effect::ReleaseQueued => {
                    release_batch(tx, tenant, id, now, REQUEST_BATCH).await?;
                }
                Effect::CancelQueued => {
                    cancel_batch(tx, tenant, id, now, REQUEST_BATCH).await?;
                    if before.rest_pending() {
                        campaign_tests::cancel_rest(tx, tenant, id).await?;
                    }
                }
                Effect::StampStart | Effect::StampRun | Effect::StampEnd => {}
            }
        }
        let row = store::set_state(tx, tenant, id, to, stamps(&effects), now).await?;
        changed(tx, tenant, &row, Some(before.state)).await?;
        Ok(row)
    }

    /// Campaign `id` with its counts, or NOT_FOUND.
    pub async fn campaign(&self, tenant: Uuid, id: Uuid) -> Result<CampaignWithCounts, Error> {
        let mut tx = self.begin(tenant).await?;
        let row: CampaignRow = CAMPAIGNS.find(&mut tx, tenant, id, false).await?.ok_or_else(|| CAMPAIGN.not_found(id))?;
        let counts = self.counts_of(&mut tx, tenant, &[id]).await?.remove(&id).unwrap_or_default();
        tx.commit().await?;
        Ok((row, counts))
    }

    /// A page of campaigns, newest first, with their counts.
    pub async fn campaigns(&self, tenant: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<CampaignWithCounts>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = store::list(&mut tx, tenant, before, limit).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut counts = self.counts_of(&mut tx, tenant, &ids).await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let c = counts.remove(&r.id).unwrap_or_default();
                (r, c)
            })
            .collect())
    }

    async fn counts_of(&self, tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<BTreeMap<Uuid, pb::CampaignCounts>, Error> {
        let mut sums: BTreeMap<Uuid, Vec<(String, String, i64)>> = BTreeMap::new();
        for (id, status, reason, n) in store::counts(tx, tenant, ids).await? {
            sums.entry(id).or_default().push((status, reason, n));
        }
        Ok(sums.into_iter().map(|(id, s)| (id, campaign_counts(&s))).collect())
    }

    // --- the campaign job's steps ------------------------------------------------

    /// Takes campaign `id`'s job if it is due: a SCHEDULED campaign's audience
    /// is to be stored (under a lease); a RUNNING one has the next batch of
    /// its held messages released, and completes once nothing of it is
    /// queued (else it is looked at again shortly); a PAUSED one has the next
    /// batch held, a CANCELLED one cancelled; any other state needs nothing more.
    pub async fn lease_campaign_job(&self, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<JobWork, Error> {
        let lease = chrono::Duration::from_std(self.lease).map_err(Error::internal)?;
        let mut tx = self.begin(tenant).await?;
        // The campaign row first, then its job row: the order every move of
        // the API takes them in, so the two never wait on each other in a circle.
        let Some(row) = CAMPAIGNS.find::<CampaignRow>(&mut tx, tenant, id, true).await? else {
            tx.commit().await?;
            return Ok(JobWork::Nothing);
        };
        if !store::lease_job(&mut tx, tenant, id, now, now + lease).await? {
            tx.commit().await?;
            return Ok(JobWork::Nothing);
        }
        let work = match row.state {
            State::Scheduled => match self.templates_of(&mut tx, tenant, &row).await? {
                Some(templates) => JobWork::Snapshot { campaign: Box::new(row), templates },
                // Templates in use cannot be deleted; a missing one means the campaign cannot run.
                None => {
                    tracing::warn!(campaign = %id, "a template of the campaign is gone; cancelling it");
                    self.apply_move(&mut tx, tenant, &row, Move::Cancel, now).await?;
                    JobWork::Nothing
                }
            },
            State::Running => {
                if !release_batch(&mut tx, tenant, id, now, JOB_BATCH).await? {
                    // Started or resumed with more held than one batch: the next batch, until none is held.
                    store::wake_job(&mut tx, tenant, id, now).await?;
                    JobWork::Again
                } else if row.undecided_test().is_some() {
                    // The test's groups are being sent or watched: the job looks at its numbers (a
                    // decision wakes the campaign at once), and again later.
                    store::wake_job(&mut tx, tenant, id, now + DECIDE_EVERY).await?;
                    JobWork::Decide { campaign: Box::new(row) }
                } else if row.rest_pending() {
                    match self.templates_of(&mut tx, tenant, &row).await? {
                        Some(templates) => JobWork::SendRest { campaign: Box::new(row), templates },
                        None => {
                            tracing::warn!(campaign = %id, "the winning template is gone; cancelling the rest");
                            campaign_tests::cancel_rest(&mut tx, tenant, id).await?;
                            store::wake_job(&mut tx, tenant, id, now).await?;
                            JobWork::Nothing
                        }
                    }
                } else if !store::has_queued(&mut tx, tenant, id).await? {
                    self.apply_move(&mut tx, tenant, &row, Move::Complete, now).await?;
                    tracing::info!(campaign = %id, "campaign completed");
                    JobWork::Nothing
                } else {
                    store::wake_job(&mut tx, tenant, id, now + chrono::Duration::seconds(1)).await?;
                    JobWork::Nothing
                }
            }
            // Paused, or cancelled, with more queued than one batch: the next batch, and again until none is left.
            State::Paused | State::Cancelled => {
                // What a sender had locked was skipped: looked at again shortly, until none is left.
                let later = now + chrono::Duration::seconds(1);
                let next = match row.state {
                    State::Paused if store::hold_queued(&mut tx, tenant, id, JOB_BATCH).await? == JOB_BATCH => Some(now),
                    State::Paused => store::has_unheld(&mut tx, tenant, id).await?.then_some(later),
                    _ if !cancel_batch(&mut tx, tenant, id, now, JOB_BATCH).await? => Some(now),
                    _ => store::has_queued(&mut tx, tenant, id).await?.then_some(later),
                };
                match next {
                    Some(at) => store::wake_job(&mut tx, tenant, id, at).await?,
                    None => store::drop_job(&mut tx, tenant, id).await?,
                }
                if next == Some(now) { JobWork::Again } else { JobWork::Nothing }
            }
            _ => {
                store::drop_job(&mut tx, tenant, id).await?;
                JobWork::Nothing
            }
        };
        tx.commit().await?;
        Ok(work)
    }

    /// The templates campaign `row` sends (its own, then its test's
    /// variants'); None when one is gone.
    async fn templates_of(&self, tx: &mut TenantTx, tenant: Uuid, row: &CampaignRow) -> Result<Option<Vec<TemplateRow>>, Error> {
        let mut ids = vec![row.template_id];
        for v in row.ab_test.iter().flat_map(|t| t.0.test.variants.iter()) {
            ids.push(v.template.parse().map_err(Error::internal)?);
        }
        let mut templates = Vec::with_capacity(ids.len());
        for id in ids {
            match TEMPLATES.find(tx, tenant, id, false).await? {
                Some(template) => templates.push(template),
                None => return Ok(None),
            }
        }
        Ok(Some(templates))
    }

    /// Stores one page of a SCHEDULED campaign's audience — each member
    /// rendered and checked by the contact policy, QUEUED in the campaign lane
    /// or SKIPPED (or FAILED when the template cannot be rendered for them);
    /// with an A/B/n test, each member in their group: a variant's message,
    /// the holdout or the rest — and the page token that follows it; after
    /// the last page the campaign starts sending. Nothing is stored when the
    /// campaign moved on (cancelled) or another replica stored this page
    /// first. Returns whether the snapshot is finished.
    pub async fn store_audience_page(
        &self,
        tenant: Uuid,
        campaign: &CampaignRow,
        templates: &[TemplateRow],
        members: &[Customer],
        next_page_token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let messages = Outgoing::of(campaign, templates);
        let lease = chrono::Duration::from_std(self.lease).map_err(Error::internal)?;
        let mut tx = self.begin(tenant).await?;
        let current: CampaignRow =
            CAMPAIGNS.find(&mut tx, tenant, campaign.id, true).await?.ok_or_else(|| CAMPAIGN.not_found(campaign.id))?;
        if current.state != State::Scheduled || current.snapshot_done || current.snapshot_page_token != campaign.snapshot_page_token {
            tx.commit().await?;
            return Ok(true);
        }
        let mut sent: Vec<(&Customer, &Outgoing)> = Vec::with_capacity(members.len());
        let mut held_back: Vec<(Uuid, &str)> = Vec::new();
        for member in members {
            match current.ab_test.as_ref().map(|t| t.0.group_of(campaign.id, member.id)) {
                None => sent.push((member, &messages[0])),
                Some(CampaignGroup::Variant(i)) => sent.push((member, &messages[i.min(messages.len() - 1)])),
                Some(CampaignGroup::Holdout) => held_back.push((member.id, HOLDOUT)),
                Some(CampaignGroup::Rest) => held_back.push((member.id, REST)),
            }
        }
        // Each member's own local time, the first after the campaign's schedule (or start): the same for every page.
        let anchor = current.schedule_time.or(current.start_time).unwrap_or(now);
        let stored = self.store_messages(&mut tx, tenant, campaign, &sent, anchor, now).await?;
        let mut deltas = tally(&stored);
        for group in campaign_tests::insert_members(&mut tx, tenant, campaign.id, &held_back).await? {
            *deltas.entry((if group == HOLDOUT { "HOLDOUT" } else { "AWAITING_WINNER" }, "")).or_default() += 1;
        }
        store::add_counts(&mut tx, tenant, campaign.id, &deltas).await?;
        let done = next_page_token.is_empty();
        store::set_snapshot_progress(&mut tx, tenant, campaign.id, next_page_token, done).await?;
        if done {
            let ready_at = campaign.schedule_time.unwrap_or(now);
            if ready_at <= now {
                self.apply_move(&mut tx, tenant, &current, Move::BeginSending, now).await?;
            } else {
                store::wake_job(&mut tx, tenant, campaign.id, ready_at).await?;
            }
        } else {
            store::wake_job(&mut tx, tenant, campaign.id, now + lease).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Stores campaign `campaign`'s messages to `members` in `tx`, held (a
    /// release makes them due), each at its local send time after `anchor`
    /// if its message has one; the (id, status, skip reason) of each stored
    /// (a member stored before is skipped).
    pub(super) async fn store_messages(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        campaign: &CampaignRow,
        members: &[(&Customer, &Outgoing<'_>)],
        anchor: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, String, String)>, Error> {
        let ids: Vec<Uuid> = members.iter().map(|(m, _)| m.id).collect();
        let complaints = streams::with_open_complaints(tx, tenant, &ids).await?;
        let links = self.invite_to_questionnaire(tx, tenant, campaign, members, &complaints, now).await?;
        let link = |delivery| self.links().unsubscribe_url(tenant, delivery);
        let mut rows: Vec<DeliveryRow> = members
            .iter()
            .map(|(m, out)| {
                let variables = match links.get(&m.id) {
                    None => Cow::Borrowed(out.variables),
                    Some(url) => {
                        let mut with_link = out.variables.clone();
                        with_link.insert(SURVEY_LINK.to_owned(), url.clone());
                        Cow::Owned(with_link)
                    }
                };
                delivery_for(campaign, out, &variables, m, complaints.contains(&m.id), &link, now)
            })
            .collect();
        if members.iter().any(|(_, out)| out.local_send_minute.is_some()) {
            let rules = super::contact_policy::rules_of(&contact_policy::get(tx, tenant, false).await?);
            for (row, (member, out)) in rows.iter_mut().zip(members).filter(|(row, _)| row.status == Status::Queued) {
                if let Some(minute) = out.local_send_minute.and_then(|m| u32::try_from(m).ok()) {
                    row.next_attempt_time = Some(rules::next_local_time(rules.zone_of(&member.fields.time_zone), minute, anchor));
                }
            }
        }
        store::insert_deliveries(tx, tenant, &rows, store::HELD).await
    }

    /// Invites the `members` campaign `campaign`'s message will reach (by
    /// the contact policy) to its questionnaire, if it has one, once each;
    /// customer → the invitation's signed link.
    async fn invite_to_questionnaire(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        campaign: &CampaignRow,
        members: &[(&Customer, &Outgoing<'_>)],
        complaints: &std::collections::HashSet<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<HashMap<Uuid, String>, Error> {
        let Some(id) = campaign.questionnaire_id else { return Ok(HashMap::new()) };
        let Some(questionnaire) = QUESTIONNAIRES.find::<QuestionnaireRow>(tx, tenant, id, false).await? else { return Ok(HashMap::new()) };
        let reached: Vec<Uuid> =
            members.iter().filter(|(m, out)| verdict(m, &out.draft, complaints.contains(&m.id)).is_ok()).map(|(m, _)| m.id).collect();
        let expire_time = now + chrono::Duration::days(i64::from(questionnaire.answer_within_days));
        let invited = questionnaires::invite_for_campaign(tx, tenant, id, campaign.id, &reached, expire_time, now).await?;
        Ok(invited
            .into_iter()
            .map(|(customer, invitation)| (customer, self.links().invitation_url(tenant, invitation).unwrap_or_default()))
            .collect())
    }
}

/// The counter changes of stored ledger rows `(id, status, skip reason)`.
pub(super) fn tally(stored: &[(Uuid, String, String)]) -> BTreeMap<(&str, &str), i64> {
    let mut deltas: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for (_, status, reason) in stored {
        *deltas.entry((status.as_str(), reason.as_str())).or_default() += 1;
    }
    deltas
}

/// One of a campaign's messages: its own, or a variant of its A/B/n test.
pub struct Outgoing<'a> {
    pub template: &'a TemplateRow,
    pub draft: TemplateDraft,
    pub variables: &'a BTreeMap<String, String>,
    pub local_send_minute: Option<i32>,
    /// "a", "b", …, "rest"; '' without a test.
    pub variant: String,
}

impl<'a> Outgoing<'a> {
    /// Campaign `campaign`'s messages: its own ("a" when tested), then its test's variants.
    pub fn of(campaign: &'a CampaignRow, templates: &'a [TemplateRow]) -> Vec<Self> {
        let tested = campaign.ab_test.is_some();
        let own = Outgoing {
            template: &templates[0],
            draft: templates[0].draft(),
            variables: &campaign.variables.0,
            local_send_minute: campaign.local_send_minute,
            variant: if tested { variant_name(0) } else { String::new() },
        };
        let variants =
            campaign.ab_test.iter().flat_map(|t| t.0.test.variants.iter()).zip(&templates[1..]).enumerate().map(|(i, (v, template))| {
                Outgoing {
                    template,
                    draft: template.draft(),
                    variables: &v.variables,
                    local_send_minute: v.local_send_minute.or(campaign.local_send_minute),
                    variant: variant_name(i + 1),
                }
            });
        std::iter::once(own).chain(variants).collect()
    }
}

/// How often the campaign job looks at an undecided A/B/n test's numbers
/// (opens, clicks and conversions come in over hours; the look is one
/// aggregate over the test's groups).
const DECIDE_EVERY: chrono::Duration = chrono::Duration::seconds(10);

/// Messages held, released or cancelled by a move itself: a request's
/// worth of work (a million queued messages do not fit in one). The campaign
/// job does the rest, [`JOB_BATCH`] per transaction.
const REQUEST_BATCH: i64 = 2000;
/// Messages held, released or cancelled per transaction of the campaign job
/// (which takes batch after batch for up to a second per round): small
/// enough that a move waiting for the campaign's row waits well under a second.
const JOB_BATCH: i64 = 5_000;

/// Cancels up to `limit` of campaign `id`'s queued messages, counted; whether none is left.
async fn cancel_batch(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>, limit: i64) -> Result<bool, Error> {
    let n = store::cancel_queued(tx, tenant, id, now, limit).await?;
    if n > 0 {
        let deltas = [(("QUEUED", ""), -n), (("CANCELLED", ""), n)].into_iter().collect();
        store::add_counts(tx, tenant, id, &deltas).await?;
    }
    Ok(n < limit)
}

/// Releases up to `limit` of campaign `id`'s held messages and wakes the
/// delivery workers; whether that was the last batch (fewer than `limit`).
pub(super) async fn release_batch(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>, limit: i64) -> Result<bool, Error> {
    let n = store::release_held(tx, tenant, id, now, limit).await?;
    if n > 0 {
        sqlx::query("SELECT pg_notify($1, $2::text)").bind(queue::NOTIFY_CHANNEL).bind(tenant).execute(&mut **tx).await?;
    }
    Ok(n < limit)
}

/// Where `member`'s message goes, or why it is not sent, by the contact policy.
fn verdict(member: &Customer, draft: &TemplateDraft, open_complaint: bool) -> Result<String, policy::SkipReason> {
    policy::address(member, draft.channel, draft.purpose)
        .and_then(|address| policy::marketing_allowed(draft.purpose, open_complaint).map(|()| address))
}

/// The ledger row of one audience member, the template filled with `variables`.
fn delivery_for(
    campaign: &CampaignRow,
    out: &Outgoing,
    variables: &BTreeMap<String, String>,
    member: &Customer,
    open_complaint: bool,
    unsubscribe_url_of: &dyn Fn(Uuid) -> Option<String>,
    now: DateTime<Utc>,
) -> DeliveryRow {
    let id = Uuid::now_v7();
    let draft = &out.draft;
    let unsubscribe_url = match draft.purpose {
        Purpose::Marketing => unsubscribe_url_of(id),
        Purpose::Transactional => None,
    };
    let (rendered, problems) = template::render(draft, "", Some(&member.fields), variables, unsubscribe_url.as_deref());
    let (status, recipient, skip_reason, error) = match verdict(member, draft, open_complaint) {
        Err(reason) => (Status::Skipped, String::new(), reason.as_str().to_owned(), String::new()),
        Ok(address) if !problems.is_empty() => {
            let error = problems.iter().map(|p| format!("{}: {}", p.field, p.description)).collect::<Vec<_>>().join("; ");
            (Status::Failed, address, String::new(), format!("the template could not be rendered for this customer: {error}"))
        }
        Ok(address) => (Status::Queued, address, String::new(), String::new()),
    };
    DeliveryRow {
        id,
        kind: "CAMPAIGN".into(),
        campaign_id: Some(campaign.id),
        request_id: String::new(),
        template_id: out.template.id,
        customer_id: member.id,
        channel: draft.channel,
        purpose: draft.purpose,
        recipient,
        status,
        skip_reason,
        locale: rendered.locale,
        subject: rendered.subject,
        body: rendered.body,
        html_body: rendered.html_body,
        data: Json(rendered.data),
        variables: Json(template::slot_values(variables, Some(&member.fields))),
        attempts: 0,
        provider_id: None,
        provider_message_id: String::new(),
        error,
        create_time: now,
        update_time: now,
        send_time: None,
        next_attempt_time: None,
        receipt_status: String::new(),
        receipt_time: None,
        receipt_error: String::new(),
        traceparent: campaign.traceparent.clone(),
        open_time: None,
        click_time: None,
        variant: out.variant.clone(),
    }
}

/// Writes `CampaignChanged` for `row`, which was in `previous` (None: just created).
pub(super) async fn changed(tx: &mut TenantTx, tenant: Uuid, row: &CampaignRow, previous: Option<State>) -> Result<(), Error> {
    let event = pb::CampaignChanged {
        campaign: Some(campaign_to(row, None)),
        previous_state: previous.map_or(0, |s| campaign_state_to(s) as i32),
        deleted: false,
    };
    emit(tx, tenant, &CAMPAIGN.name(row.id), &event).await
}
