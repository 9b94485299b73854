//! The seam between running an import (`import_run`: the file, the lease,
//! the cursor, the batches) and what its rows are (`import_customers`,
//! `import_transactions`, `import_related_persons`, `import_occupancies`):
//! the [`RowKind`] each kind implements, the verdict on a row, and the
//! claims a row makes within its file.

use std::{
    collections::HashMap,
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
};

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx};
use uuid::Uuid;

use crate::wire::import::RowProblem;

/// A key a row claims within its file, (kind, key): a later row with the same claim is refused.
pub(super) type Claim = (&'static str, String);

/// What the run has seen of the file so far: the rows each claim was first
/// accepted in, by a 64-bit hash (8 bytes a key, so a million-row file
/// costs tens of MB, not the keys themselves).
#[derive(Default)]
pub(super) struct Seen(HashMap<u64, i64>);

impl Seen {
    /// Room for `rows` claims at once: growing a million-key table would hold the old and the new one together.
    pub(super) fn with_capacity(rows: usize) -> Self {
        Self(HashMap::with_capacity(rows))
    }

    fn hash(kind: &str, key: &str) -> u64 {
        let mut hasher = DefaultHasher::new();
        (kind, key).hash(&mut hasher);
        hasher.finish()
    }

    /// The row that already had `key` of `kind`, if any.
    pub(super) fn first(&self, kind: &str, key: &str) -> Option<i64> {
        self.0.get(&Self::hash(kind, key)).copied()
    }

    pub(super) fn remember(&mut self, kind: &str, key: &str, row: i64) {
        self.0.entry(Self::hash(kind, key)).or_insert(row);
    }

    /// The earlier row that made one of `claims`, if any.
    pub(super) fn first_of(&self, claims: &[Claim]) -> Option<i64> {
        claims.iter().find_map(|(kind, key)| self.first(kind, key))
    }

    /// Remembers row `number`'s `claims` when `verdict` accepted it (a refused row claims nothing).
    pub(super) fn settle<W>(&mut self, claims: &[Claim], number: i64, verdict: &Verdict<W>) {
        if !matches!(verdict, Verdict::Refused(_)) {
            for (kind, key) in claims {
                self.remember(kind, key, number);
            }
        }
    }
}

/// How a row ended in its batch.
pub(super) enum Verdict<W> {
    Refused(Vec<RowProblem>),
    /// Valid, and nothing to write (it matches what is stored).
    Unchanged,
    /// Valid: what to write.
    Write(W),
}

/// What one kind of import does with its rows. The run calls `read` for
/// each row after the cursor (on the file's reader task, a batch ahead),
/// `judge` for a batch in file order, then — unless a dry run — `write`
/// and, once the batch before has committed, `announce`, all in the batch's
/// transaction. `judge` may lock what `write` changes; `announce` is where
/// what batches share goes (tenant marks, segment counts, the outbox), so
/// that no batch ever waits for a lock held by the batch after it.
pub(super) trait RowKind: Send + Sync + 'static {
    /// A row read through the mapping and checked alone.
    type Row: Send + 'static;
    /// What a valid row writes.
    type Write: Send + 'static;
    /// What a batch wrote, for its announcement.
    type Written: Send + 'static;

    /// The claims of a row an earlier lease judged (only these are needed of it).
    fn claims(&self, cells: &[&str]) -> Vec<Claim>;

    /// A row read and checked alone as of `now`, with its claims.
    fn read(&self, cells: &[&str], now: DateTime<Utc>) -> (Vec<Claim>, Self::Row);

    /// Whether `write` creates a record (else it updates one); most kinds only create.
    fn creates(_write: &Self::Write) -> bool {
        true
    }

    /// What becomes of each row of a batch (row number, claims, row), in
    /// file order: against `seen` (remembering the claims of the rows it
    /// accepts) and against what is stored.
    fn judge(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        seen: &mut Seen,
        rows: Vec<(i64, Vec<Claim>, Self::Row)>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Verdict<Self::Write>>, Error>> + Send;

    /// Writes a batch's valid rows.
    fn write(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        writes: Vec<Self::Write>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Self::Written, Error>> + Send;

    /// After the batch before this one committed: what batches share.
    fn announce(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        job: Uuid,
        written: Self::Written,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Owners grouped by the key they were found by (key, owner), each owner once.
pub(super) fn owners_by_key(pairs: Vec<(String, Uuid)>) -> HashMap<String, Vec<Uuid>> {
    let mut groups: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (key, id) in pairs {
        let ids = groups.entry(key).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    groups
}
