//! Importing occupancies (bulk move-ins and move-outs, 批量迁入/迁出; the rows
//! of an occupancies job): a batch finds its premises (by resource name or
//! unit code) and locks them — moves on a premises take turns, as MoveIn
//! takes them — then whose each row is, and the premises' stays; each row,
//! in file order, is judged against the history as the rows before it left
//! it (a move-in ends the current holder's stay on its first day; a file
//! imported again changes nothing). The moves are written with their field
//! history, and one OccupanciesImported announces the batch.

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{Error, db::TenantTx, outbox};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::{
    import_rows::{Claim, RowKind, Seen, Verdict},
    import_whose::Whose,
    premises::log_occupancy,
};
use crate::{
    domain::{
        import::Settings,
        occupancy_import::{Move, OccupancyField, RoleHistory, Stay, Step},
    },
    resources::{IMPORT_JOB, OCCUPANCY, PREMISES},
    store::premises::{self as store, MoveIn, OccupancyRow},
    wire::{
        import::RowProblem,
        occupancy_import::{OccupancySheet, PremisesRef, RowMove, RowOccupancy, read_occupancy_row},
    },
};

/// The rows of an occupancies job, read through its settings.
pub(super) struct OccupancyRows {
    sheet: OccupancySheet,
    /// A dry run writes nothing, so the histories its batches left are kept
    /// here for the batches after them (a real run reads them back stored).
    dry_run: Option<Mutex<HashMap<(Uuid, String), RoleHistory>>>,
}

impl OccupancyRows {
    pub(super) fn new(settings: &Settings) -> Self {
        let mapping = settings.mapping.iter().filter_map(|(column, name)| OccupancyField::parse(name).map(|f| (*column, f))).collect();
        let dry_run = settings.dry_run.then(|| Mutex::new(HashMap::new()));
        Self { sheet: OccupancySheet { mapping, calling_code: settings.calling_code.clone() }, dry_run }
    }

    /// The field and column a refusal of the history names: the date the move gives, or whose it is.
    fn refused(&self, happened: Move, reason: &'static str, message: &str) -> RowProblem {
        let field = match (reason, happened) {
            ("NOT_THE_HOLDER", _) => self.sheet.customer_column().map_or("customer", |(kind, _)| kind.field()),
            ("OCCUPANCY_OVERLAP", _) => OccupancyField::MoveInDate.name(),
            (_, Move::Out { .. }) | (_, Move::In { out: Some(_), .. }) => OccupancyField::MoveOutDate.name(),
            _ => OccupancyField::MoveInDate.name(),
        };
        let column = match OccupancyField::parse(field) {
            Some(field) => self.sheet.column_of(field),
            None => self.sheet.customer_column().map(|(_, column)| column),
        };
        RowProblem { column, field: field.to_owned(), reason, message: message.to_owned() }
    }

    fn premises_problem(&self, premises: &PremisesRef) -> RowProblem {
        let (field, message) = match premises {
            PremisesRef::Name(id) => (OccupancyField::Premises, format!("{} does not exist", PREMISES.name(*id))),
            PremisesRef::UnitCode(code) => (OccupancyField::UnitCode, format!("no premises has unit code {code:?}")),
        };
        RowProblem { column: self.sheet.column_of(field), field: field.name().to_owned(), reason: "PREMISES_NOT_FOUND", message }
    }
}

/// A move a batch writes, in file order.
pub(super) enum Write {
    /// Stay `id` of `m.customer` at `m.premises` from `m.date` (to `m.move_out` for a past stay), ending stay `ends` that day.
    Start { id: Uuid, m: MoveIn, ends: Option<Uuid> },
    /// Stay `id` ends on `date`.
    End { id: Uuid, date: NaiveDate },
}

impl RowKind for OccupancyRows {
    type Row = RowOccupancy;
    type Write = Write;
    /// The stays started and ended: (premises, stay).
    type Written = (Vec<(Uuid, Uuid)>, Vec<(Uuid, Uuid)>);

    /// No claims: the same move twice in a file is the same move, judged against the history.
    fn claims(&self, _: &[&str]) -> Vec<Claim> {
        Vec::new()
    }

    fn read(&self, cells: &[&str], _now: DateTime<Utc>) -> (Vec<Claim>, RowOccupancy) {
        (Vec::new(), read_occupancy_row(cells, &self.sheet))
    }

    fn creates(write: &Write) -> bool {
        matches!(write, Write::Start { .. })
    }

    /// The premises found and locked, whose each row is, and each row
    /// judged in file order against the premises' stays.
    async fn judge(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        _seen: &mut Seen,
        rows: Vec<(i64, Vec<Claim>, RowOccupancy)>,
        _now: DateTime<Utc>,
    ) -> Result<Vec<Verdict<Write>>, Error> {
        let codes: Vec<String> = rows
            .iter()
            .filter_map(|(_, _, r)| match r {
                Ok(RowMove { premises: PremisesRef::UnitCode(code), .. }) => Some(code.clone()),
                _ => None,
            })
            .collect();
        let by_code: HashMap<String, Uuid> = store::ids_by_unit_code(tx, tenant, &codes).await?.into_iter().collect();
        let premises_of = |r: &PremisesRef| match r {
            PremisesRef::Name(id) => Some(*id),
            PremisesRef::UnitCode(code) => by_code.get(code).copied(),
        };
        let mut wanted: Vec<Uuid> = rows.iter().filter_map(|(_, _, r)| premises_of(&r.as_ref().ok()?.premises)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        // Moves on a premises take turns from here (as MoveIn's do).
        let locked: Vec<Uuid> = store::lock_many(tx, tenant, &wanted).await?;
        let mut histories: HashMap<(Uuid, String), RoleHistory> = HashMap::new();
        for stay in store::stays_of(tx, tenant, &locked).await? {
            let entry = histories.entry((stay.premises_id, stay.role.clone())).or_default();
            entry.stays.push(Stay { id: stay.id, customer: stay.customer_id, move_in: stay.move_in_date, move_out: stay.move_out_date });
        }
        if let Some(dry) = &self.dry_run {
            // What earlier batches of this dry run would have written.
            let dry = dry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            histories.extend(dry.iter().filter(|((premises, _), _)| locked.contains(premises)).map(|(k, h)| (k.clone(), h.clone())));
        }
        let whose = Whose::hold(tx, tenant, rows.iter().filter_map(|(_, _, r)| Some(&r.as_ref().ok()?.customer))).await?;
        let at = self.sheet.customer_column();

        let mut verdicts = Vec::with_capacity(rows.len());
        for (_, _, row) in rows {
            let moved = match row {
                Ok(moved) => moved,
                Err(problems) => {
                    verdicts.push(Verdict::Refused(problems));
                    continue;
                }
            };
            let Some(premises) = premises_of(&moved.premises).filter(|id| locked.contains(id)) else {
                verdicts.push(Verdict::Refused(vec![self.premises_problem(&moved.premises)]));
                continue;
            };
            let customer = match whose.customer(Some(&moved.customer), at) {
                Ok(customer) => customer,
                Err(problem) => {
                    verdicts.push(Verdict::Refused(vec![problem]));
                    continue;
                }
            };
            let history = histories.entry((premises, moved.role.to_owned())).or_default();
            let m = |date, move_out| MoveIn { premises, customer, role: moved.role.to_owned(), date, move_out };
            verdicts.push(match history.apply(customer, moved.happened, Uuid::now_v7()) {
                Step::Unchanged => Verdict::Unchanged,
                Step::Start { id, date, out, ends } => Verdict::Write(Write::Start { id, m: m(date, out), ends }),
                Step::End { id, date } => Verdict::Write(Write::End { id, date }),
                Step::Refused(reason, message) => Verdict::Refused(vec![self.refused(moved.happened, reason, message)]),
            });
        }
        if let Some(dry) = &self.dry_run {
            dry.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(histories);
        }
        Ok(verdicts)
    }

    /// The moves in file order, each with its field history (under its occupant).
    async fn write(&self, tx: &mut TenantTx, tenant: Uuid, writes: Vec<Write>, now: DateTime<Utc>) -> Result<Self::Written, Error> {
        let (mut started, mut ended) = (Vec::new(), Vec::new());
        for write in writes {
            match write {
                Write::Start { id, m, ends } => {
                    if let Some(current) = ends {
                        ended.push(end(tx, tenant, current, m.date, now).await?);
                    }
                    // A past stay is stored with its move-out at once: open, it would overlap the stays after it.
                    let row = store::insert_occupancy(tx, tenant, id, &m, now).await?.map_err(|_| {
                        // The premises are locked and the move was judged against their stays: not expected.
                        Error::Internal(anyhow::anyhow!("an imported move-in overlapped a stay on {}", PREMISES.name(m.premises)))
                    })?;
                    log_occupancy(tx, tenant, None, &row, now).await?;
                    started.push((row.premises_id, row.id));
                    if m.move_out.is_some() {
                        ended.push((row.premises_id, row.id));
                    }
                }
                Write::End { id, date } => ended.push(end(tx, tenant, id, date, now).await?),
            }
        }
        Ok((started, ended))
    }

    /// One OccupanciesImported instead of an OccupancyChanged per move.
    async fn announce(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        job: Uuid,
        (started, ended): Self::Written,
        _now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if started.is_empty() && ended.is_empty() {
            return Ok(());
        }
        let names = |stays: &[(Uuid, Uuid)]| stays.iter().map(|(premises, id)| OCCUPANCY.name(*premises, *id)).collect();
        let event = pb::OccupanciesImported { import_job: IMPORT_JOB.name(job), started: names(&started), ended: names(&ended) };
        outbox::append(tx, tenant, &IMPORT_JOB.name(job), &event).await
    }
}

/// Ends stay `id` on `date` with its field history; (premises, stay).
async fn end(tx: &mut TenantTx, tenant: Uuid, id: Uuid, date: NaiveDate, now: DateTime<Utc>) -> Result<(Uuid, Uuid), Error> {
    let after = store::end_occupancy(tx, tenant, id, date, now).await?;
    let before = OccupancyRow { move_out_date: None, ..after.clone() };
    log_occupancy(tx, tenant, Some(&before), &after, now).await?;
    Ok((after.premises_id, after.id))
}
