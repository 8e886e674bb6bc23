//! Brigade's storage: one [`Store`] of domain verbs over embedded SQLite or PostgreSQL.
//!
//! [`Store`] itself holds the core — collections, records, batches, migrations, the change
//! feed; each other area is a small handle borrowed from it: [`Store::accounts`] (users,
//! sessions, API keys, login failures, OIDC logins), [`Store::audit`], [`Store::runs`]
//! (pipeline runs, leases, cursors, schedules, triggers), [`Store::warehouse`] (pipeline
//! tables) and [`Store::search_index`] (one search index's documents, chunks and vectors).
//!
//! # Layout
//! - [`handle`]: the [`Store`] struct and its core verbs (collections, records, batches,
//!   migrations).
//! - `accounts/`: the [`Accounts`] handle; `users`, `sessions`, `api_keys`, `login_failures`,
//!   `oidc_links`, `oidc_state`: the SQL of each, written once for both dialects.
//! - `audit`: the [`Audit`] handle and the `_audit` table.
//! - [`conn`]: the [`conn::Database`]/[`conn::Conn`] seam both backends implement.
//! - `sqlite/`, `postgres/`: the two backends; the only code that knows a driver.
//! - [`sql`]: identifier quoting and parameter binding; `ddl`: tables and indexes per dialect.
//! - `query/`: the filter language compiled to SQL, sort/fields/expand/paging.
//! - [`search_index`]: the [`SearchIndex`] handle — documents, chunks, cached vectors and
//!   keyword search of search indexes.
//! - [`warehouse`]: the [`Runs`] and [`Warehouse`] handles — staging loads, model
//!   materialization, run records, leases.
//! - [`channel_state`]: the [`Channels`] handle — presence and stored channel messages.
//! - [`event_log`]: the [`EventLog`] handle — the realtime log in commit order.
//! - `records`, `migrations`, `system`: SQL of each area, written once for both dialects.

pub mod access;
mod account_refs;
mod accounts;
mod api_keys;
mod audit;
pub mod changes;
pub mod channel_state;
pub(crate) mod conn;
mod ddl;
pub mod deadline;
pub mod error;
pub mod event_log;
pub mod handle;
pub mod login_failures;
pub mod migrations;
pub mod oidc_links;
pub mod oidc_state;
mod postgres;
pub mod query;
pub mod raw;
mod records;
pub mod search_index;
mod sessions;
pub mod source;
pub(crate) mod sql;
mod sqlite;
mod system;
mod users;
pub mod warehouse;

pub use access::{Access, RuleOp};
pub use accounts::Accounts;
pub use api_keys::{ApiKeyLookup, ApiKeyRow};
pub use audit::{Audit, AuditAction, AuditEntry, collection as audit_collection};
pub use changes::{Change, ChangeFeed, ChangeKind, Envelope, SchemaKind};
pub use channel_state::{ChannelMessage, Channels};
pub use conn::{JsonRow, Row};
pub use error::StoreError;
pub use event_log::{EventKind, EventLog, LoggedEvent, NewEvent};
pub use handle::{BatchOp, BatchOutcome, Page, Store};
pub use records::Record;
pub use search_index::SearchIndex;
pub use sessions::Rotation;
pub use sql::{Dialect, Ident};
pub use users::UserRow;
pub use warehouse::{Runs, Warehouse};
