//! Use cases of the profiles service. Each public method runs in one tenant
//! transaction and carries out the customer archive's rules through
//! `store/` — email addresses unique among live customers, consent
//! timestamps, soft deletion — writing the outbox event of every change in
//! the same transaction. Handlers (`api/`) call these after authorizing and
//! converting; nothing here sees a gRPC request or a caller's permissions.
//!
//! # Layout
//! - [`customers`]: creation (with request-id replay), updates, deletion
//!   and undeletion, and the reads behind Get, BatchGet and List.
//! - [`archive`]: what every archive record shares — reads, lists, removal, its event.
//! - [`verification`]: the tenant's fresh period and the reminders of stale data (定期确认).
//! - [`related_persons`]: the people around a customer (客户成员).
//! - [`communications`]: contacts with a customer (沟通记录) and the follow-ups due.
//! - [`premises`]: premises and who holds them over time (迁入/迁出), billing parties.
//! - [`occurrences`]: notable things that happened to a customer (客户事件).
//! - [`payment_accounts`]: the accounts a customer pays from (客户帐号), one primary at most.

pub mod archive;
pub mod communications;
pub mod customers;
pub mod duplicates;
pub mod exports;
pub mod grading;
pub mod history;
pub mod import_customers;
pub mod import_occupancies;
pub mod import_related_persons;
pub mod import_rows;
pub mod import_run;
pub mod import_transactions;
pub mod import_whose;
pub mod imports;
pub mod merges;
pub mod occurrences;
pub mod payment_accounts;
pub mod premises;
pub mod privacy;
pub mod related_persons;
pub mod rename;
pub mod segments;
pub mod timeline;
pub mod transactions;
pub mod verification;

use crm_kit::{
    Error,
    db::{TenantTx, begin_tenant},
};
use sqlx::PgPool;
use uuid::Uuid;

/// The customer archive over one database.
#[derive(Clone)]
pub struct App {
    pool: PgPool,
}

impl App {
    /// Use cases over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn begin(&self, tenant: Uuid) -> Result<TenantTx, Error> {
        begin_tenant(&self.pool, tenant).await
    }
}

/// Customer `id`, deleted or not, or NOT_FOUND: what every read under a customer checks first.
async fn existing_customer(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<crate::store::CustomerRow, Error> {
    crate::store::CUSTOMERS.find(tx, tenant, id, false).await?.ok_or_else(|| crate::resources::CUSTOMER.not_found(id))
}
