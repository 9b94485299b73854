//! Importing customers (the rows of a customers job): a row reads into a
//! customer checked exactly as CreateCustomer checks one; a batch finds the
//! stored customers its rows match (by the job's match key) and the owners
//! of the email addresses they bring, in a few statements, and is written
//! with one bulk insert, its updates with their field history, and one
//! CustomersImported event.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx, outbox};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::{
    duplicates::alike_stored,
    history,
    import_rows::{Claim, RowKind, Seen, Verdict, owners_by_key},
    segments,
};
use crate::{
    domain::{
        customer::CustomerDraft,
        import::{Field, MatchKey, Mode, Settings},
        matching::{DEFAULT_MIN_SCORE, Person},
        rename::NAME_FIELDS,
    },
    resources::{CUSTOMER, IMPORT_JOB},
    store::{self, CustomerRow, imports as jobs},
    wire::{
        changed_paths, customer_to_proto,
        import::{ColumnMap, RowCustomer, RowProblem, read_row},
        mask_pii,
    },
};

/// The rows of a customers job, read through its settings.
pub(super) struct CustomerRows {
    settings: Settings,
    mapping: Vec<ColumnMap>,
}

impl CustomerRows {
    pub(super) fn new(settings: &Settings) -> Self {
        let mapping = settings
            .mapping
            .iter()
            .filter_map(|(column, name)| Field::parse(name).map(|field| ColumnMap { column: *column, field }))
            .collect();
        Self { settings: settings.clone(), mapping }
    }
}

/// A customer row read and checked alone.
pub(super) struct ReadCustomer {
    /// Its match key.
    key: Option<String>,
    /// The row itself, kept only where an update may apply it to a stored customer.
    row: Option<RowCustomer>,
    /// The customer it makes alone (what a create writes).
    alone: Result<CustomerDraft, Vec<RowProblem>>,
}

/// What a valid customer row writes.
pub(super) enum CustomerWrite {
    Create(CustomerDraft),
    Update(Box<CustomerRow>, CustomerDraft),
}

/// The keys a row claims within the file: its email addresses and its match key.
fn row_keys(row: &RowCustomer, match_key: MatchKey) -> Vec<Claim> {
    let mut keys: Vec<Claim> = row.emails().into_iter().map(|e| ("email", e)).collect();
    if let Some(key) = row.key(match_key).filter(|_| match_key != MatchKey::Email) {
        keys.push(("key", key));
    }
    keys
}

impl RowKind for CustomerRows {
    type Row = ReadCustomer;
    type Write = CustomerWrite;
    /// The customers created and updated.
    type Written = (Vec<Uuid>, Vec<Uuid>);

    fn claims(&self, cells: &[&str]) -> Vec<Claim> {
        row_keys(&read_row(cells, &self.mapping, &self.settings.calling_code), self.settings.match_key)
    }

    fn read(&self, cells: &[&str], now: DateTime<Utc>) -> (Vec<Claim>, ReadCustomer) {
        let row = read_row(cells, &self.mapping, &self.settings.calling_code);
        let (claims, key) = (row_keys(&row, self.settings.match_key), row.key(self.settings.match_key));
        let (row, alone) = match self.settings.mode {
            Mode::Upsert => (Some(row.clone()), row.into_draft(None, now)),
            Mode::CreateOnly => (None, row.into_draft(None, now)),
        };
        (claims, ReadCustomer { key, row, alone })
    }

    fn creates(write: &CustomerWrite) -> bool {
        matches!(write, CustomerWrite::Create(_))
    }

    /// Each row checked alone and against the rows before it in the file,
    /// then against the stored customers (matches, email claims) in a few
    /// statements for the whole batch; the matched customers stay locked.
    async fn judge(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        seen: &mut Seen,
        prepared: Vec<(i64, Vec<Claim>, ReadCustomer)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Verdict<CustomerWrite>>, Error> {
        let settings = &self.settings;
        let mut numbers = Vec::with_capacity(prepared.len());
        let mut rows = Vec::with_capacity(prepared.len());
        let mut keys: Vec<Option<String>> = Vec::with_capacity(prepared.len());
        for (number, claims, read) in prepared {
            numbers.push(number);
            rows.push((claims, read.row, read.alone));
            keys.push(read.key);
        }
        // The stored customers each row's key and emails name.
        let wanted: Vec<String> = keys.iter().flatten().cloned().collect();
        let owners: HashMap<String, Vec<Uuid>> = match settings.match_key {
            MatchKey::None => HashMap::new(),
            MatchKey::Email => owners_by_key(jobs::email_owners(tx, tenant, &wanted).await?),
            MatchKey::Phone => owners_by_key(jobs::phone_owners(tx, tenant, &wanted).await?),
            MatchKey::ExternalId => owners_by_key(jobs::external_id_owners(tx, tenant, &wanted).await?),
            MatchKey::Duplicates => {
                // Each row's key is its place in the batch; its owners, the stored customers it is like.
                let people: Vec<(usize, Person)> =
                    rows.iter().enumerate().filter_map(|(i, (_, _, alone))| Some((i, Person::of_draft(alone.as_ref().ok()?)))).collect();
                let alike = alike_stored(tx, tenant, &people.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(), DEFAULT_MIN_SCORE).await?;
                let mut owners = HashMap::with_capacity(people.len());
                for ((i, _), ids) in people.iter().zip(alike) {
                    keys[*i] = Some(format!("#{i}"));
                    owners.insert(format!("#{i}"), ids);
                }
                owners
            }
        };
        let matched: Vec<Uuid> = {
            let mut ids: Vec<Uuid> = keys.iter().flatten().filter_map(|k| owners.get(k)).filter(|o| o.len() == 1).map(|o| o[0]).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let stored: HashMap<Uuid, CustomerRow> = if settings.mode == Mode::Upsert && !matched.is_empty() {
            store::lock_many(tx, tenant, &matched).await?.into_iter().map(|c| (c.id, c)).collect()
        } else {
            HashMap::new()
        };
        let rename_needs_approval = settings.mode == Mode::Upsert && store::rename::approval_required(tx, tenant).await?;
        let mut verdicts = Vec::with_capacity(rows.len());
        // The stored customers this batch's rows update (or leave as they are), and the row that did.
        let mut matched_in_batch: HashMap<Uuid, i64> = HashMap::new();
        // Email addresses are claimed by one live customer: the owners of every address the rows bring,
        // looked up first, so that a row is fully judged before its keys are remembered for the rows after it.
        let brought: Vec<String> =
            rows.iter().flat_map(|(claims, _, _)| claims.iter().filter(|(kind, _)| *kind == "email").map(|(_, e)| e.clone())).collect();
        let claimed: HashMap<String, Uuid> = jobs::email_owners(tx, tenant, &brought).await?.into_iter().collect();
        for ((number, (claims, row, alone)), key) in numbers.into_iter().zip(rows).zip(&keys) {
            if let Some((kind, first)) = claims.iter().find_map(|(kind, key)| seen.first(kind, key).map(|first| (*kind, first))) {
                let (field, what) = if kind == "email" {
                    ("emails", "email address")
                } else {
                    (key_field(settings.match_key), key_field(settings.match_key))
                };
                verdicts.push(Verdict::Refused(vec![RowProblem {
                    column: None,
                    field: field.to_owned(),
                    reason: "DUPLICATE_IN_FILE",
                    message: format!("row {first} of the file has the same {what}; each customer once per file"),
                }]));
                continue;
            }
            let owners = key.as_ref().and_then(|k| owners.get(k)).cloned().unwrap_or_default();
            let verdict = match (settings.mode, owners.as_slice()) {
                (_, []) => match alone {
                    Ok(draft) => Verdict::Write(CustomerWrite::Create(draft)),
                    Err(problems) => Verdict::Refused(problems),
                },
                (Mode::CreateOnly, found) if settings.match_key == MatchKey::Duplicates => Verdict::Refused(vec![RowProblem {
                    column: None,
                    field: key_field(settings.match_key).to_owned(),
                    reason: "LIKELY_DUPLICATE",
                    message: format!(
                        "{} is likely the same customer (the duplicate matcher): use UPSERT to update it",
                        CUSTOMER.name(found[0])
                    ),
                }]),
                (Mode::CreateOnly, found) => Verdict::Refused(vec![RowProblem {
                    column: None,
                    field: key_field(settings.match_key).to_owned(),
                    reason: "MATCHES_CUSTOMER",
                    message: format!("{} has the same {}: use UPSERT to update it", CUSTOMER.name(found[0]), key_field(settings.match_key)),
                }]),
                (Mode::Upsert, [id]) => match stored.get(id) {
                    None => Verdict::Refused(vec![RowProblem {
                        column: None,
                        field: key_field(settings.match_key).to_owned(),
                        reason: "MATCHES_CUSTOMER",
                        message: format!("{} was deleted meanwhile", CUSTOMER.name(*id)),
                    }]),
                    Some(before) => match row.map_or(alone, |row| row.into_draft(Some((customer_to_proto(before), settings)), now)) {
                        Err(problems) => Verdict::Refused(problems),
                        Ok(draft) => {
                            let changed = changed_paths(before, &draft);
                            if changed.is_empty() {
                                Verdict::Unchanged
                            } else if rename_needs_approval && changed.iter().any(|p| NAME_FIELDS.contains(&p.as_str())) {
                                Verdict::Refused(vec![RowProblem {
                                    column: None,
                                    field: "display_name".to_owned(),
                                    reason: "RENAME_NEEDS_APPROVAL",
                                    message: "renaming needs approval in this tenant: map no name column, or ask with a rename request"
                                        .to_owned(),
                                }])
                            } else {
                                Verdict::Write(CustomerWrite::Update(Box::new(before.clone()), draft))
                            }
                        }
                    },
                },
                (Mode::Upsert, found) => Verdict::Refused(vec![RowProblem {
                    column: None,
                    field: key_field(settings.match_key).to_owned(),
                    reason: "AMBIGUOUS_MATCH",
                    message: match settings.match_key {
                        MatchKey::Duplicates => format!(
                            "{} stored customers are like this row ({}, …): merge them first, or match by another key",
                            found.len(),
                            CUSTOMER.name(found[0])
                        ),
                        key => format!(
                            "{} customers have the same {} ({}, …): merge them first, or match by another key",
                            found.len(),
                            key_field(key),
                            CUSTOMER.name(found[0])
                        ),
                    },
                }]),
            };
            let mut verdict = refuse_taken_emails(verdict, &claimed);
            // Two rows about one stored customer in a batch would both start from its stored state, the
            // second undoing the first: the first one wins (rows of later batches start from what it wrote).
            if let (Mode::Upsert, [id], false) = (settings.mode, owners.as_slice(), matches!(verdict, Verdict::Refused(_))) {
                match matched_in_batch.get(id) {
                    Some(first) => {
                        verdict = Verdict::Refused(vec![RowProblem {
                            column: None,
                            field: key_field(settings.match_key).to_owned(),
                            reason: "DUPLICATE_IN_FILE",
                            message: format!(
                                "row {first} of the file is about the same customer ({}); each customer once per file",
                                CUSTOMER.name(*id)
                            ),
                        }]);
                    }
                    None => {
                        matched_in_batch.insert(*id, number);
                    }
                }
            }
            seen.settle(&claims, number, &verdict);
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }

    /// New customers in one statement, then each update with its field history.
    async fn write(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        writes: Vec<CustomerWrite>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Uuid>, Vec<Uuid>), Error> {
        let (mut creates, mut created, mut updated) = (Vec::new(), Vec::new(), Vec::new());
        let mut updates = Vec::new();
        for write in writes {
            match write {
                CustomerWrite::Create(mut draft) => {
                    draft.consent.stamp(None, now);
                    created.push(Uuid::now_v7());
                    creates.push(draft);
                }
                CustomerWrite::Update(before, draft) => updates.push((before, draft)),
            }
        }
        store::imports::insert_customers(tx, tenant, &created, &creates, now).await?;
        for (before, draft) in updates {
            updated.push(update(tx, tenant, &before, &draft, now).await?);
        }
        Ok((created, updated))
    }

    /// The duplicate scan's mark, the segments and one CustomersImported.
    async fn announce(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        job: Uuid,
        (created, updated): (Vec<Uuid>, Vec<Uuid>),
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let touched: Vec<(Uuid, bool)> = created.iter().chain(&updated).map(|id| (*id, true)).collect();
        if !created.is_empty() {
            // The duplicate scan keys and pairs the new customers, as it does every new customer.
            store::duplicates::start_scan(tx, tenant).await?;
        }
        segments::refresh(tx, tenant, &touched, now).await?;
        if !touched.is_empty() {
            let event = pb::CustomersImported {
                import_job: IMPORT_JOB.name(job),
                created: created.iter().map(|id| CUSTOMER.name(*id)).collect(),
                updated: updated.iter().map(|id| CUSTOMER.name(*id)).collect(),
            };
            outbox::append(tx, tenant, &IMPORT_JOB.name(job), &event).await?;
        }
        Ok(())
    }
}

/// Writes one upserted customer (its claims, its columns, its field history) and returns its id.
async fn update(tx: &mut TenantTx, tenant: Uuid, before: &CustomerRow, draft: &CustomerDraft, now: DateTime<Utc>) -> Result<Uuid, Error> {
    let mut draft = draft.clone();
    draft.consent.stamp(Some(&before.consent.0), now);
    if changed_paths(before, &draft).iter().any(|p| p == "emails") {
        store::replace_emails(tx, tenant, before.id, &draft.email_addresses()).await?;
    }
    let after = store::update(tx, tenant, before.id, &draft, now).await?;
    let record = CUSTOMER.name(after.id);
    let change = history::Change { customer: after.id, record: &record, fields: super::customers::HISTORY_FIELDS, now };
    history::record(tx, tenant, change, Some(&customer_to_proto(before)), Some(&customer_to_proto(&after)), mask_pii).await?;
    Ok(after.id)
}

/// `verdict`, or a refusal when its customer would take an email address
/// another customer holds (`claimed`: address → owner).
fn refuse_taken_emails(verdict: Verdict<CustomerWrite>, claimed: &HashMap<String, Uuid>) -> Verdict<CustomerWrite> {
    let (draft, own) = match &verdict {
        Verdict::Write(CustomerWrite::Create(draft)) => (draft, None),
        Verdict::Write(CustomerWrite::Update(before, draft)) => (draft, Some(before.id)),
        _ => return verdict,
    };
    let taken = draft
        .emails
        .iter()
        .enumerate()
        .find_map(|(i, e)| claimed.get(&e.address).filter(|owner| Some(**owner) != own).map(|owner| (i, *owner)));
    match taken {
        None => verdict,
        Some((i, owner)) => Verdict::Refused(vec![RowProblem {
            column: None,
            field: format!("emails[{i}].address"),
            reason: "EMAIL_ALREADY_USED",
            message: format!("{} already uses this email address", CUSTOMER.name(owner)),
        }]),
    }
}

/// The customer field a match key reads.
fn key_field(key: MatchKey) -> &'static str {
    match key {
        MatchKey::Email | MatchKey::None => "email",
        MatchKey::Phone => "phone",
        MatchKey::ExternalId => "external_id",
        // What the matcher compares first.
        MatchKey::Duplicates => "display_name",
    }
}
