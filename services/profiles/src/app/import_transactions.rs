//! Importing transactions (the rows of a transactions job): a row reads into
//! a transaction checked exactly as BatchCreateTransactions checks one; a
//! batch finds whose each is (by resource name, email, phone or external id)
//! and the external ids already recorded, in a few statements, holds those
//! customers, and is written with one bulk insert that moves their spending
//! too. Once the batch before has committed, the customers are graded again
//! (segments follow) and one TransactionsImported announces the batch.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx, outbox};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::{
    grading,
    import_rows::{Claim, RowKind, Seen, Verdict},
    import_whose::Whose,
};
use crate::{
    domain::{import::Settings, transaction::TransactionDraft, transaction_import::TransactionField},
    resources::{CUSTOMER, IMPORT_JOB, TRANSACTION},
    store::transactions as store,
    wire::{
        customer_ref::{CustomerColumn, customer_of},
        import::RowProblem,
        transaction_import::{RowTransaction, TransactionSheet, read_transaction_row},
        transactions::same_transaction,
    },
};

/// The rows of a transactions job, read through its settings.
pub(super) struct TransactionRows {
    sheet: TransactionSheet,
    /// The customer column, for the problems that name it.
    whose: Option<(CustomerColumn, usize)>,
}

impl TransactionRows {
    pub(super) fn new(settings: &Settings) -> Self {
        let mapping: Vec<(usize, TransactionField)> =
            settings.mapping.iter().filter_map(|(column, name)| TransactionField::parse(name).map(|f| (*column, f))).collect();
        let whose = customer_of(&mapping);
        let sheet = TransactionSheet {
            mapping,
            // Checked when the job was started: an unknown zone cannot be stored.
            zone: settings.time_zone.parse().unwrap_or(chrono_tz::UTC),
            currency_code: settings.currency_code.clone(),
            calling_code: settings.calling_code.clone(),
        };
        Self { sheet, whose }
    }
}

/// The claim a transaction makes within its file: its external id.
fn claims_of(row: &RowTransaction) -> Vec<Claim> {
    if row.external_id.is_empty() { Vec::new() } else { vec![("external_id", row.external_id.clone())] }
}

impl RowKind for TransactionRows {
    type Row = RowTransaction;
    type Write = TransactionDraft;
    /// The transactions recorded: (transaction, customer).
    type Written = Vec<(Uuid, Uuid)>;

    fn claims(&self, cells: &[&str]) -> Vec<Claim> {
        claims_of(&read_transaction_row(cells, &self.sheet, Utc::now()))
    }

    fn read(&self, cells: &[&str], now: DateTime<Utc>) -> (Vec<Claim>, RowTransaction) {
        let row = read_transaction_row(cells, &self.sheet, now);
        (claims_of(&row), row)
    }

    /// Whose each row is and whether its external id is recorded already,
    /// in a statement per kind of lookup; the customers found stay held
    /// (as BatchCreateTransactions holds them) until the batch commits.
    async fn judge(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        seen: &mut Seen,
        rows: Vec<(i64, Vec<Claim>, RowTransaction)>,
        _now: DateTime<Utc>,
    ) -> Result<Vec<Verdict<TransactionDraft>>, Error> {
        let external_ids: Vec<&str> =
            rows.iter().filter(|(_, _, row)| row.draft.is_ok()).map(|(_, _, row)| row.external_id.as_str()).collect();
        let recorded: HashMap<String, store::TransactionRow> =
            store::find_by_external_ids(tx, tenant, &external_ids).await?.into_iter().map(|row| (row.external_id.clone(), row)).collect();
        let whose =
            Whose::hold(tx, tenant, rows.iter().filter(|(_, _, row)| row.draft.is_ok()).filter_map(|(_, _, row)| row.customer.as_ref()))
                .await?;

        let mut verdicts = Vec::with_capacity(rows.len());
        for (number, claims, row) in rows {
            if let Some(first) = seen.first_of(&claims) {
                verdicts.push(Verdict::Refused(vec![RowProblem {
                    column: self.sheet.mapping.iter().find(|(_, f)| *f == TransactionField::ExternalId).map(|(c, _)| *c),
                    field: "external_id".to_owned(),
                    reason: "DUPLICATE_IN_FILE",
                    message: format!("row {first} of the file has the same external id; each transaction once per file"),
                }]));
                continue;
            }
            let mut draft = match row.draft {
                Ok(draft) => draft,
                Err(problems) => {
                    verdicts.push(Verdict::Refused(problems));
                    continue;
                }
            };
            let customer = match whose.customer(row.customer.as_ref(), self.whose) {
                Ok(customer) => customer,
                Err(problem) => {
                    verdicts.push(Verdict::Refused(vec![problem]));
                    continue;
                }
            };
            draft.customer = customer;
            let verdict = match recorded.get(&draft.external_id) {
                None => Verdict::Write(draft),
                Some(stored) if same_transaction(stored, &draft) => Verdict::Unchanged,
                Some(stored) => Verdict::Refused(vec![RowProblem {
                    column: self.sheet.mapping.iter().find(|(_, f)| *f == TransactionField::ExternalId).map(|(c, _)| *c),
                    field: "external_id".to_owned(),
                    reason: "EXTERNAL_ID_USED",
                    message: format!("{} has this external id, with other content", TRANSACTION.name(stored.customer_id, stored.id)),
                }]),
            };
            seen.settle(&claims, number, &verdict);
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }

    /// The new transactions and their line items, their customers' spending moved in the same statement.
    async fn write(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        writes: Vec<TransactionDraft>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, Uuid)>, Error> {
        // Keys claimed in one order by every writer, so that two sharing ids cannot deadlock.
        let mut sorted: Vec<(Uuid, &TransactionDraft)> = writes.iter().map(|d| (Uuid::now_v7(), d)).collect();
        sorted.sort_by(|a, b| a.1.external_id.cmp(&b.1.external_id));
        let inserted = store::insert_new(tx, tenant, &sorted, now).await?.len();
        if inserted < sorted.len() {
            // A call recorded one of these ids after the batch was judged: judged again (from the cursor),
            // the row is then the same transaction (skipped) or another (EXTERNAL_ID_USED), and counted so.
            return Err(Error::Internal(anyhow::anyhow!("an external id of this batch was recorded meanwhile; the batch is judged again")));
        }
        let new: Vec<(Uuid, &TransactionDraft)> = sorted;
        store::insert_items(tx, tenant, &new).await?;
        Ok(new.iter().map(|(id, draft)| (*id, draft.customer)).collect())
    }

    /// The customers graded again (their segments follow) and one TransactionsImported.
    async fn announce(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        job: Uuid,
        written: Vec<(Uuid, Uuid)>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if written.is_empty() {
            return Ok(());
        }
        let mut customers: Vec<Uuid> = written.iter().map(|(_, customer)| *customer).collect();
        customers.sort_unstable();
        customers.dedup();
        grading::rescore(tx, tenant, &customers, now).await?;
        let event = pb::TransactionsImported {
            import_job: IMPORT_JOB.name(job),
            transactions: written.iter().map(|(id, customer)| TRANSACTION.name(*customer, *id)).collect(),
            customers: customers.iter().map(|id| CUSTOMER.name(*id)).collect(),
        };
        outbox::append(tx, tenant, &IMPORT_JOB.name(job), &event).await?;
        Ok(())
    }
}
