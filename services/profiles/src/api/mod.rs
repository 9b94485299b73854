//! gRPC handlers: each authorizes, converts the request (`crate::wire`),
//! calls a use case in `crate::app`, and converts the result back.
//!
//! # Layout
//! - `customers`: CustomerService, including who may reach which record and
//!   write which field, and PII masking of every response.
//! - `changes`: ListCustomerChanges — the field history of a customer and its records.
//! - `privacy`: ExportCustomerData and EraseCustomer — GDPR / PIPL.
//! - `timeline`: ListCustomerTimeline — everything that happened with a customer, newest first.
//! - `grading`: GradingService — RFM grading and lifecycle settings, regrades.
//! - `listing`: ListCustomers' filter schema, `order_by` and page-token keys.
//! - `authorization`: who may reach a customer's data (staff by permission, a customer their own).
//! - `archive`: who may read, list and remove any archive record, and their paging.
//! - `related_persons`: RelatedPersonService — the people around a customer.
//! - `communications`: CommunicationService — contacts with a customer and the follow-ups due.
//! - `premises`: PremisesService — premises, move-ins and move-outs, billing parties.
//! - `occurrences`: OccurrenceService — notable things that happened to a customer.
//! - `rename`: RenameRequestService — renaming customers with approval (客户更名单).
//! - `exports`: ExportService — customers and transactions as CSV or XLSX, streamed; the audit of exports.
//! - `imports`: ImportService — spreadsheet uploads, import runs and the rows they refused.
//! - `merges`: MergeService — merging duplicates and undoing it.
//! - `duplicates`: DuplicateService — duplicate candidates and the scan's pairs.
//! - `segments`: SegmentService — dynamic and static segments with exact live counts.
//! - `payment_accounts`: PaymentAccountService — the accounts a customer pays from.
//! - `transactions`: TransactionService — purchases and refunds, one or a batch, and spending.

mod archive;
mod authorization;
mod changes;
mod communications;
mod customers;
mod duplicates;
mod exports;
mod grading;
mod imports;
mod listing;
mod merges;
mod occurrences;
mod payment_accounts;
mod premises;
mod privacy;
mod related_persons;
mod rename;
mod segments;
mod timeline;
mod transactions;

pub use communications::CommunicationApi;
pub use customers::CustomerApi;
pub use duplicates::DuplicateApi;
pub use exports::ExportApi;
pub use grading::GradingApi;
pub use imports::ImportApi;
pub use merges::MergeApi;
pub use occurrences::OccurrenceApi;
pub use payment_accounts::PaymentAccountApi;
pub use premises::PremisesApi;
pub use related_persons::RelatedPersonApi;
pub use rename::RenameRequestApi;
pub use segments::SegmentApi;
pub use transactions::TransactionApi;
