//! A customer's timeline: one page of keys across every kind of record
//! (`store::timeline`), then each kind's records read by id, all in one
//! database transaction so that the page is consistent.

use std::collections::HashMap;

use crm_kit::{Error, db::ChildRow};
use uuid::Uuid;

use super::App;
use crate::store::{
    communications::{COMMUNICATIONS, CommunicationRow},
    history::{ChangeRow, FIELD_CHANGES},
    occurrences::{OCCURRENCES, OccurrenceRow},
    premises::{OCCUPANCIES, OccupancyRow},
    timeline::{self as store, TimelineKey},
    transactions::{self, TRANSACTIONS, TransactionRow},
};

/// One timeline entry with its record.
#[derive(Debug, Clone)]
pub enum TimelineEntry {
    Communication(CommunicationRow),
    Transaction(TransactionRow),
    Occurrence(OccurrenceRow),
    MoveIn(OccupancyRow),
    MoveOut(OccupancyRow),
    FieldChange(ChangeRow),
}

impl App {
    /// A page of `customer`'s timeline (entries of `kinds`), newest first,
    /// after `after`; NOT_FOUND when there is no such customer.
    pub async fn timeline(
        &self,
        tenant: Uuid,
        customer: Uuid,
        kinds: &[&str],
        after: Option<&TimelineKey>,
        limit: i64,
    ) -> Result<Vec<(TimelineKey, TimelineEntry)>, Error> {
        let mut tx = self.begin(tenant).await?;
        super::existing_customer(&mut tx, tenant, customer).await?;
        let keys = store::page(&mut tx, tenant, customer, kinds, after, limit).await?;
        let ids = |kinds: &[&str]| keys.iter().filter(|k| kinds.contains(&k.kind.as_str())).map(|k| k.id).collect::<Vec<_>>();
        let communications: HashMap<Uuid, CommunicationRow> =
            by_id(COMMUNICATIONS.find_many(&mut tx, tenant, &ids(&["COMMUNICATION"])).await?);
        let mut found_transactions: Vec<TransactionRow> = TRANSACTIONS.find_many(&mut tx, tenant, &ids(&["TRANSACTION"])).await?;
        transactions::load_items(&mut tx, tenant, &mut found_transactions).await?;
        let transactions: HashMap<Uuid, TransactionRow> = found_transactions.into_iter().map(|t| (t.id, t)).collect();
        let occurrences: HashMap<Uuid, OccurrenceRow> = by_id(OCCURRENCES.find_many(&mut tx, tenant, &ids(&["OCCURRENCE"])).await?);
        let occupancies: HashMap<Uuid, OccupancyRow> = by_id(OCCUPANCIES.find_many(&mut tx, tenant, &ids(&["MOVE_IN", "MOVE_OUT"])).await?);
        let changes: HashMap<Uuid, ChangeRow> =
            FIELD_CHANGES.find_many::<ChangeRow>(&mut tx, tenant, &ids(&["FIELD_CHANGE"])).await?.into_iter().map(|c| (c.id, c)).collect();
        tx.commit().await?;

        let entries = keys
            .into_iter()
            .filter_map(|key| {
                let entry = match key.kind.as_str() {
                    "COMMUNICATION" => TimelineEntry::Communication(communications.get(&key.id)?.clone()),
                    "TRANSACTION" => TimelineEntry::Transaction(transactions.get(&key.id)?.clone()),
                    "OCCURRENCE" => TimelineEntry::Occurrence(occurrences.get(&key.id)?.clone()),
                    "MOVE_IN" => TimelineEntry::MoveIn(occupancies.get(&key.id)?.clone()),
                    "MOVE_OUT" => TimelineEntry::MoveOut(occupancies.get(&key.id)?.clone()),
                    _ => TimelineEntry::FieldChange(changes.get(&key.id)?.clone()),
                };
                Some((key, entry))
            })
            .collect();
        Ok(entries)
    }
}

fn by_id<R: ChildRow>(rows: Vec<R>) -> HashMap<Uuid, R> {
    rows.into_iter().map(|r| (r.id(), r)).collect()
}
