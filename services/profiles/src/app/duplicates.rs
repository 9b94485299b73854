//! Duplicate detection: the candidates for one customer or a draft, the
//! pairs the scan found, and one step of a tenant's scan (the changed
//! customers since its position, a batch at a time: their match keys
//! refreshed from the row, their pairs recomputed).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use uuid::Uuid;

use super::App;
use crate::{
    domain::matching::{Likeness, Person, likeness, match_keys, strong_keys},
    store::{
        CustomerRow,
        duplicates::{self as store, PairRow},
    },
};

/// Customers sharing a key that one lookup compares at most (a very common
/// name is shared by thousands; the strongest candidates share an email or
/// phone, which few do).
const COMPARED: i64 = 200;
/// Changed customers one scan step covers.
pub const SCAN_BATCH: i64 = 500;
/// The scan leaves changes younger than this to its next round: a
/// transaction that began before a newer change may still commit.
const SCAN_LAG_SECONDS: i64 = 5;
/// Pairs the scan keeps: a name alone (0.35) is not news — a common name
/// is shared by thousands — but a near name at the same company (0.45) is.
/// `matching::strong_keys` relies on this bound.
pub const MIN_KEPT_SCORE: f64 = 0.45;

/// Whose duplicates are looked for.
pub enum Subject {
    /// An existing customer.
    Customer(Uuid),
    /// A customer not created yet.
    Draft(Person),
}

impl App {
    /// Up to `max` live customers like `subject` scoring at least `min_score`, best first.
    pub async fn find_duplicates(
        &self,
        tenant: Uuid,
        subject: Subject,
        min_score: f64,
        max: usize,
    ) -> Result<Vec<(CustomerRow, Likeness)>, Error> {
        let mut tx = self.begin(tenant).await?;
        let (person, except) = match subject {
            Subject::Customer(id) => (person_of(&super::existing_customer(&mut tx, tenant, id).await?), Some(id)),
            Subject::Draft(person) => (person, None),
        };
        let rows = store::sharing_keys(&mut tx, tenant, &match_keys(&person), except, COMPARED).await?;
        tx.commit().await?;
        let mut found: Vec<(CustomerRow, Likeness)> = rows
            .into_iter()
            .filter_map(|row| likeness(&person, &person_of(&row)).filter(|l| l.score >= min_score).map(|l| (row, l)))
            .collect();
        found.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.id.cmp(&b.0.id)));
        found.truncate(max);
        Ok(found)
    }

    /// The pairs the scan found among live customers, most alike first.
    pub async fn duplicate_pairs(
        &self,
        tenant: Uuid,
        min_score: f64,
        after: Option<(f64, Uuid, Uuid)>,
        limit: i64,
    ) -> Result<Vec<PairRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let pairs = store::pairs(&mut tx, tenant, min_score, after, limit).await?;
        tx.commit().await?;
        Ok(pairs)
    }

    /// Tenants the duplicate scan covers.
    pub async fn duplicate_scan_tenants(&self) -> Result<Vec<Uuid>, Error> {
        store::scanned_tenants(&self.pool).await
    }

    /// Starts a scan for every tenant with customers but none yet (those
    /// from before duplicate detection, or written around CreateCustomer);
    /// how many were started.
    pub async fn start_missing_duplicate_scans(&self) -> Result<usize, Error> {
        let tenants = store::unscanned_tenants(&self.pool).await?;
        for tenant in &tenants {
            let mut tx = self.begin(*tenant).await?;
            store::start_scan(&mut tx, *tenant).await?;
            tx.commit().await?;
        }
        Ok(tenants.len())
    }

    /// One step of the tenant's scan as of `now`: how many changed customers
    /// it covered (0: none waiting, or another replica is at it).
    pub async fn scan_duplicates(&self, tenant: Uuid, now: DateTime<Utc>) -> Result<usize, Error> {
        let mut tx = self.begin(tenant).await?;
        let Some(position) = store::take_scan(&mut tx, tenant).await? else {
            tx.commit().await?;
            return Ok(0);
        };
        let rows = store::changed(&mut tx, tenant, position, now - Duration::seconds(SCAN_LAG_SECONDS), SCAN_BATCH).await?;
        let Some(last) = rows.last() else {
            tx.commit().await?;
            return Ok(0);
        };
        let last = (last.update_time, last.id);
        // The keys follow the row whatever wrote it (a rename, an erasure); a deleted customer has none.
        let keyed: Vec<(Uuid, Vec<String>)> =
            rows.iter().map(|r| (r.id, if r.delete_time.is_some() { Vec::new() } else { match_keys(&person_of(r)) })).collect();
        store::set_keys(&mut tx, tenant, &keyed).await?;
        // Pairs kept score from 0.45, and every such pair shares a strong key: only those are looked up.
        let probes: Vec<(Uuid, Vec<String>)> = keyed.iter().map(|(id, keys)| (*id, strong_keys(keys))).collect();
        let people: std::collections::HashMap<Uuid, Person> = rows.iter().map(|r| (r.id, person_of(r))).collect();
        let mut pairs: Vec<(Uuid, Uuid, f64, Vec<&'static str>)> = Vec::new();
        for (probe, other) in store::sharing_keys_of_each(&mut tx, tenant, &probes, COMPARED).await? {
            let Some(person) = people.get(&probe) else { continue };
            let Some(found) = likeness(person, &person_of(&other)).filter(|l| l.score >= MIN_KEPT_SCORE) else { continue };
            let (first, second) = if probe < other.id { (probe, other.id) } else { (other.id, probe) };
            pairs.push((first, second, found.score, found.signals.iter().map(|s| s.as_str()).collect()));
        }
        // Two changed customers alike find each other twice.
        pairs.sort_by_key(|p| (p.0, p.1));
        pairs.dedup_by_key(|p| (p.0, p.1));
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        store::replace_pairs(&mut tx, tenant, &ids, &pairs, now).await?;
        store::advance_scan(&mut tx, tenant, last).await?;
        tx.commit().await?;
        Ok(rows.len())
    }
}

/// What duplicate detection compares of a stored customer.
fn person_of(row: &CustomerRow) -> Person {
    Person::of(
        &row.display_name,
        &row.given_name,
        &row.family_name,
        row.emails.0.iter().map(|e| e.address.as_str()),
        row.phones.0.iter().map(|p| p.number.as_str()),
        &row.company,
    )
}

/// For each of `people` (not stored), the live customers like them scoring
/// at least `min_score`, looked up in one statement (an import's batch).
pub(super) async fn alike_stored(tx: &mut TenantTx, tenant: Uuid, people: &[Person], min_score: f64) -> Result<Vec<Vec<Uuid>>, Error> {
    let probes: Vec<(Uuid, Vec<String>)> = people.iter().map(|p| (Uuid::new_v4(), match_keys(p))).collect();
    let index: HashMap<Uuid, usize> = probes.iter().enumerate().map(|(i, (probe, _))| (*probe, i)).collect();
    let mut alike = vec![Vec::new(); people.len()];
    for (probe, row) in store::sharing_keys_of_each(tx, tenant, &probes, COMPARED).await? {
        let Some(&i) = index.get(&probe) else { continue };
        if likeness(&people[i], &person_of(&row)).is_some_and(|l| l.score >= min_score) && !alike[i].contains(&row.id) {
            alike[i].push(row.id);
        }
    }
    Ok(alike)
}
