//! Importing related persons (客户成员; the rows of a related-persons job):
//! a row reads into a person checked exactly as CreateRelatedPerson checks
//! one; a batch finds whose each is and the persons those customers have
//! already (a customer's person of the same relation and name is the same
//! person: skipped, so a file imported twice adds nobody twice), holds the
//! customers, adds the new persons, and announces them in one
//! RelatedPersonsImported once the batch before has committed.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx, outbox};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::{
    import_rows::{Claim, RowKind, Seen, Verdict},
    import_whose::Whose,
};
use crate::{
    domain::{import::Settings, related_person::RelatedPersonDraft, related_person_import::PersonField},
    resources::{CUSTOMER, IMPORT_JOB, RELATED_PERSON},
    store::related_persons as store,
    wire::{
        import::RowProblem,
        related_person_import::{PersonSheet, RowPerson, read_person_row},
    },
};

/// The rows of a related-persons job, read through its settings.
pub(super) struct PersonRows {
    sheet: PersonSheet,
}

impl PersonRows {
    pub(super) fn new(settings: &Settings) -> Self {
        let mapping = settings.mapping.iter().filter_map(|(column, name)| PersonField::parse(name).map(|f| (*column, f))).collect();
        Self { sheet: PersonSheet { mapping, calling_code: settings.calling_code.clone() } }
    }

    fn column_of(&self, field: PersonField) -> Option<usize> {
        self.sheet.mapping.iter().find(|(_, f)| *f == field).map(|(c, _)| *c)
    }
}

/// A person's identity among a customer's: relation and name, as compared.
fn identity(relation: &str, name: &str) -> (String, String) {
    (relation.to_owned(), name.trim().to_lowercase())
}

fn claims_of(row: &RowPerson) -> Vec<Claim> {
    row.identity.iter().map(|identity| ("person", identity.clone())).collect()
}

impl RowKind for PersonRows {
    type Row = RowPerson;
    /// (customer, person).
    type Write = (Uuid, RelatedPersonDraft);
    /// The persons added: (person, customer).
    type Written = Vec<(Uuid, Uuid)>;

    fn claims(&self, cells: &[&str]) -> Vec<Claim> {
        claims_of(&read_person_row(cells, &self.sheet, Utc::now()))
    }

    fn read(&self, cells: &[&str], now: DateTime<Utc>) -> (Vec<Claim>, RowPerson) {
        let row = read_person_row(cells, &self.sheet, now);
        (claims_of(&row), row)
    }

    /// Whose each row is, the persons those customers have already and the
    /// linked customers that exist, in a statement each; the customers stay held.
    async fn judge(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        seen: &mut Seen,
        rows: Vec<(i64, Vec<Claim>, RowPerson)>,
        _now: DateTime<Utc>,
    ) -> Result<Vec<Verdict<Self::Write>>, Error> {
        let mut linked: Vec<Uuid> = rows.iter().filter_map(|(_, _, r)| r.draft.as_ref().ok()?.linked_customer).collect();
        linked.sort_unstable();
        linked.dedup();
        let linked: HashSet<Uuid> = store::existing_customers(tx, tenant, &linked).await?.into_iter().collect();
        let whose =
            Whose::hold(tx, tenant, rows.iter().filter(|(_, _, r)| r.draft.is_ok()).filter_map(|(_, _, r)| r.customer.as_ref())).await?;
        let at = self.sheet.customer_column();
        let customers: Vec<Uuid> = rows.iter().filter_map(|(_, _, r)| whose.customer(r.customer.as_ref(), at).ok()).collect();
        let known: HashSet<(Uuid, (String, String))> = store::identities(tx, tenant, &customers)
            .await?
            .into_iter()
            .map(|(customer, relation, name)| (customer, identity(&relation, &name)))
            .collect();

        let mut verdicts = Vec::with_capacity(rows.len());
        for (number, claims, row) in rows {
            if let Some(first) = seen.first_of(&claims) {
                verdicts.push(Verdict::Refused(vec![RowProblem {
                    column: self.column_of(PersonField::DisplayName),
                    field: "display_name".to_owned(),
                    reason: "DUPLICATE_IN_FILE",
                    message: format!("row {first} of the file has the same customer, relation and name; each person once per file"),
                }]));
                continue;
            }
            let verdict = match (row.draft, whose.customer(row.customer.as_ref(), at)) {
                (Err(problems), _) => Verdict::Refused(problems),
                (Ok(_), Err(problem)) => Verdict::Refused(vec![problem]),
                (Ok(draft), Ok(customer)) => match draft.linked_customer {
                    Some(other) if !linked.contains(&other) => Verdict::Refused(vec![RowProblem {
                        column: self.column_of(PersonField::LinkedCustomer),
                        field: "linked_customer".to_owned(),
                        reason: "LINKED_CUSTOMER_NOT_FOUND",
                        message: format!("{} does not exist", CUSTOMER.name(other)),
                    }]),
                    _ if known.contains(&(customer, identity(&draft.relation, &draft.display_name))) => Verdict::Unchanged,
                    _ => Verdict::Write((customer, draft)),
                },
            };
            seen.settle(&claims, number, &verdict);
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }

    async fn write(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        writes: Vec<Self::Write>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Uuid, Uuid)>, Error> {
        let mut added = Vec::with_capacity(writes.len());
        for (customer, draft) in writes {
            let id = Uuid::now_v7();
            store::insert(tx, tenant, customer, id, &draft, now).await?;
            added.push((id, customer));
        }
        Ok(added)
    }

    /// One RelatedPersonsImported instead of a RelatedPersonChanged per person.
    async fn announce(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        job: Uuid,
        written: Vec<(Uuid, Uuid)>,
        _now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if written.is_empty() {
            return Ok(());
        }
        let event = pb::RelatedPersonsImported {
            import_job: IMPORT_JOB.name(job),
            related_persons: written.iter().map(|(id, customer)| RELATED_PERSON.name(*customer, *id)).collect(),
        };
        outbox::append(tx, tenant, &IMPORT_JOB.name(job), &event).await
    }
}
