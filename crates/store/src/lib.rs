//! Brigade's storage: one [`Store`] of domain verbs over embedded SQLite or PostgreSQL.
//!
//! # Layout
//! - [`store`]: the [`Store`] facade (collections, records, batches, migrations, users).
//! - [`conn`]: the [`conn::Database`]/[`conn::Conn`] seam both backends implement.
//! - `sqlite/`, `postgres/`: the two backends; the only code that knows a driver.
//! - [`sql`]: identifier quoting and parameter binding; `ddl`: tables and indexes per dialect.
//! - `query/`: the filter language compiled to SQL, sort/fields/expand/paging.
//! - [`search`]: documents, chunks, cached vectors and keyword search of search indexes.
//! - [`warehouse`]: pipeline tables — staging loads, model materialization, run records.
//! - `records`, `migrations`, `system`, `users`: SQL of each area, written once for both dialects.

pub mod access;
mod account_refs;
mod api_keys;
mod audit;
pub mod changes;
pub(crate) mod conn;
mod ddl;
pub mod deadline;
pub mod error;
pub mod login_failures;
pub mod migrations;
pub mod oidc_links;
pub mod oidc_state;
mod postgres;
pub mod query;
pub mod raw;
mod records;
pub mod search;
mod sessions;
pub mod source;
pub(crate) mod sql;
mod sqlite;
pub mod store;
mod system;
mod users;
pub mod warehouse;

pub use access::{Access, RuleOp};
pub use api_keys::{ApiKeyLookup, ApiKeyRow};
pub use audit::{AuditEntry, collection as audit_collection};
pub use changes::{Change, ChangeFeed, ChangeKind, Envelope, SchemaKind};
pub use conn::{JsonRow, Row};
pub use error::StoreError;
pub use records::Record;
pub use sessions::Rotation;
pub use sql::{Dialect, Ident};
pub use store::{BatchOp, BatchOutcome, Page, Store};
pub use users::UserRow;
