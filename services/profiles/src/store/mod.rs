//! SQL for the profiles service, and nothing else. Every function runs in a
//! tenant-scoped transaction (RLS) and also names the tenant explicitly, so
//! the planner uses the `(tenant_id, ...)` indexes.

pub mod communications;
pub mod customer_filter;
mod customers;
pub mod duplicates;
pub mod erasure;
pub mod exports;
pub mod grading;
pub mod history;
pub mod imports;
pub mod lifetime;
pub mod merges;
pub mod occurrences;
pub mod payment_accounts;
pub mod premises;
pub mod related_persons;
pub mod rename;
pub mod segments;
pub mod timeline;
pub mod transactions;
pub mod verification;

pub use customers::{
    CUSTOMERS, CustomerRow, KeyValue, ListQuery, SortKey, batch_get, confirm_data, email_conflicts, insert, list, lock_many,
    replace_emails, set_disabled, update,
};
