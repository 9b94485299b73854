//! AIP-160 filters: parsed into an AST, checked against a whitelist of
//! fields ([`FilterSchema`]), and compiled to parameterised SQL. User input
//! only ever reaches the database as bind parameters; the SQL text comes from
//! the schema's static column expressions.
//!
//! Supported: `=`, `!=`, `<`, `<=`, `>`, `>=`, `:` (has), `AND`, `OR`, `NOT`
//! / `-`, parentheses, juxtaposition as AND, string/number/timestamp/bool
//! literals, and a trailing `*` on a string for prefix match. As in AIP-160,
//! `OR` binds tighter than `AND`: `a AND b OR c` is `a AND (b OR c)`.
//!
//! Limits keep hostile input cheap: at most [`MAX_FILTER_LEN`] characters,
//! [`MAX_DEPTH`] levels of nesting, [`MAX_TERMS`] comparisons and
//! [`MAX_LITERAL_LEN`] characters per literal.
//!
//! # Layout
//! - `parse`: lexer and recursive-descent parser → [`Expr`].
//! - `compile`: type checking against the schema and SQL emission.

mod compile;
mod parse;

pub use compile::{CheckedFilter, FieldType, FilterField, FilterSchema};
pub use parse::{Comparator, Expr, MAX_DEPTH, MAX_FILTER_LEN, MAX_LITERAL_LEN, MAX_TERMS};
