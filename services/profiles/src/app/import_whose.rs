//! Whose each row of a batch is (transactions, related persons,
//! occupancies): the customers its references name, looked up in a
//! statement per kind of reference, then held until the batch commits (as
//! the single-record calls hold them) — and the verdict on a row whose
//! customer is missing, deleted or ambiguous.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx};
use uuid::Uuid;

use super::import_rows::owners_by_key;
use crate::{
    resources::CUSTOMER,
    store::{imports as jobs, transactions::hold_customers},
    wire::{
        customer_ref::{CustomerColumn, CustomerRef, blank_customer},
        import::RowProblem,
    },
};

/// The customers a batch's references name, held.
pub(super) struct Whose {
    by_email: HashMap<String, Vec<Uuid>>,
    by_phone: HashMap<String, Vec<Uuid>>,
    by_external: HashMap<String, Vec<Uuid>>,
    /// Each customer found once, with its delete time.
    held: HashMap<Uuid, Option<DateTime<Utc>>>,
}

impl Whose {
    /// Looks up the customers `refs` name and holds those found once
    /// (`FOR NO KEY UPDATE`, in id order: a batch that shares a customer
    /// with the one before waits here until that one commits — so call
    /// this last among a batch's lookups).
    pub(super) async fn hold<'a>(tx: &mut TenantTx, tenant: Uuid, refs: impl Iterator<Item = &'a CustomerRef>) -> Result<Self, Error> {
        let refs: Vec<&CustomerRef> = refs.collect();
        let (mut emails, mut phones, mut externals) = (Vec::new(), Vec::new(), Vec::new());
        for r in &refs {
            match r {
                CustomerRef::Email(email) => emails.push(email.clone()),
                CustomerRef::Phone(phone) => phones.push(phone.clone()),
                CustomerRef::ExternalId(id) => externals.push(id.clone()),
                CustomerRef::Name(_) => {}
            }
        }
        let mut whose = Self {
            by_email: owners_by_key(jobs::email_owners(tx, tenant, &emails).await?),
            by_phone: owners_by_key(jobs::phone_owners(tx, tenant, &phones).await?),
            by_external: owners_by_key(jobs::external_id_owners(tx, tenant, &externals).await?),
            held: HashMap::new(),
        };
        let mut ids: Vec<Uuid> = refs.iter().map(|r| whose.owners(r)).filter(|o| o.len() == 1).map(|o| o[0]).collect();
        ids.sort_unstable();
        ids.dedup();
        whose.held = hold_customers(tx, tenant, &ids).await?.into_iter().collect();
        Ok(whose)
    }

    /// The customers `r` names (a resource name names one, found or not).
    fn owners(&self, r: &CustomerRef) -> Vec<Uuid> {
        let found = match r {
            CustomerRef::Name(id) => return vec![*id],
            CustomerRef::Email(email) => self.by_email.get(email),
            CustomerRef::Phone(phone) => self.by_phone.get(phone),
            CustomerRef::ExternalId(id) => self.by_external.get(id),
        };
        found.cloned().unwrap_or_default()
    }

    /// The live customer `r` names, or the problem to refuse its row with
    /// (`at`: the customer column that named it; a row without `r` left it blank).
    pub(super) fn customer(&self, r: Option<&CustomerRef>, at: Option<(CustomerColumn, usize)>) -> Result<Uuid, RowProblem> {
        let Some(r) = r else { return Err(blank_customer(at)) };
        let (field, column) = (at.map_or("customer", |(kind, _)| kind.field()), at.map(|(_, column)| column));
        let problem = |reason: &'static str, message: String| RowProblem { column, field: field.to_owned(), reason, message };
        match self.owners(r).as_slice() {
            [id] => match self.held.get(id) {
                None => Err(problem("CUSTOMER_NOT_FOUND", format!("no live customer has this {field}"))),
                Some(Some(_)) => {
                    Err(problem("CUSTOMER_DELETED", format!("{} is deleted; only live customers are imported to", CUSTOMER.name(*id))))
                }
                Some(None) => Ok(*id),
            },
            [] => Err(problem("CUSTOMER_NOT_FOUND", format!("no live customer has this {field}"))),
            many => Err(problem(
                "AMBIGUOUS_MATCH",
                format!(
                    "{} customers have this {field} ({}, …): merge them first, or name the customer another way",
                    many.len(),
                    CUSTOMER.name(many[0])
                ),
            )),
        }
    }
}
