//! Use cases of the campaigns service. Each public method runs in one tenant
//! transaction and carries out what `domain/` decides through `store/`,
//! writing the outbox event of every change in the same transaction. No
//! network call happens while a transaction is open: handlers read profiles
//! before, and the delivery job sends between its claim and its record.
//!
//! # Layout
//! - [`campaigns`]: drafts, the lifecycle and its effects on the queue, the
//!   audience snapshot in batches, completion, live counts.
//! - [`complaints`]: open complaint tickets, from tickets' event stream.
//! - [`contact_policy`]: the tenant's caps, quiet hours and time zone.
//! - [`templates`]: create (with request-id replay), update, delete, reads.
//! - [`providers`]: the tenant's providers and their sealed credentials.
//! - [`notices`]: accepting a notice into the ledger (render, policy, queue).
//! - [`callbacks`]: what providers report back — receipts, inbound messages, opt-out keywords.
//! - [`reach`]: a campaign's estimated reach, judged by the contact policy.
//! - [`tracking`]: opens and clicks of tracked emails.
//! - [`unsubscribes`]: unsubscribe links — minted, followed, applied to profiles.
//! - [`devices`]: the push tokens of customers' app installs.
//! - [`journeys`]: journeys' definitions, versions and state.
//! - [`journey_runs`]: customers started on journeys (by events, by calls),
//!   each step taken once, runs ended early.
//! - [`loyalty`]: the points ledger, the programme that earns points, member tiers.
//! - [`coupons`]: single-use coupons.
//! - [`attribution`]: goals reached and the messages they are attributed to.
//! - [`ab_tests`]: A/B/n tests of journeys' send steps: registered, decided, reported.
//! - [`campaign_tests`]: A/B/n tests of campaigns: decided, the winner sent to the rest, reported.
//! - [`questionnaires`]: surveys journeys send, answered through a signed link.
//! - [`delivery`]: the ledger's worker steps — claim due messages, record
//!   each attempt's outcome — and the sent log's reads.

pub mod ab_tests;
pub mod attribution;
pub mod callbacks;
pub mod campaign_tests;
pub mod campaigns;
pub mod complaints;
pub mod contact_policy;
pub mod coupons;
pub mod delivery;
pub mod devices;
pub mod erasure;
pub mod holidays;
pub mod journey_runs;
pub mod journeys;
pub mod loyalty;
pub mod notices;
pub mod providers;
pub mod questionnaires;
pub mod reach;
pub mod templates;
pub mod tracking;
pub mod unsubscribes;

use std::time::Duration;

use crm_kit::{
    Error,
    db::{TenantTx, begin_tenant},
    outbox,
};
use prost::{Message, Name};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{channels::Senders, domain::delivery::RetryPolicy, links::Links};

/// The marketing domain over one database.
#[derive(Clone)]
pub struct App {
    pool: PgPool,
    senders: Senders,
    retry: RetryPolicy,
    lease: Duration,
    links: Links,
}

impl App {
    /// Use cases over `pool`, sending through `senders`; a claimed message is
    /// reserved for `lease`, a failed one retried by `retry`; marketing
    /// messages carry `links`' unsubscribe links.
    pub fn new(pool: PgPool, senders: Senders, retry: RetryPolicy, lease: Duration, links: Links) -> Self {
        Self { pool, senders, retry, lease, links }
    }

    /// The links that work without a login (unsubscribe, provider callbacks).
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The pool (the delivery job's cross-tenant scan).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The senders.
    pub fn senders(&self) -> &Senders {
        &self.senders
    }

    /// How long a claim is reserved.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    async fn begin(&self, tenant: Uuid) -> Result<TenantTx, Error> {
        begin_tenant(&self.pool, tenant).await
    }
}

/// Writes `event` about `subject` to the outbox of `tx`.
async fn emit<M: Message + Name>(tx: &mut TenantTx, tenant: Uuid, subject: &str, event: &M) -> Result<(), Error> {
    outbox::append(tx, tenant, subject, event).await
}
