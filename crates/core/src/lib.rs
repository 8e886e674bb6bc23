//! Brigade's shared vocabulary. No network IO, no HTTP, no SQL.
//!
//! # Layout
//! - [`settings`]: `brigade.toml` plus `BRIGADE_<SECTION>_<KEY>` overrides, validated once.
//! - [`schema`]: collections, fields and their types; validation of definitions and of record input.
//! - [`filter`]: the filter/rule language (lexer, parser, AST, printer).
//! - [`value`]: the typed values that travel between the records service and the store.
//! - [`ids`], [`time`]: record ids (UUIDv7) and RFC 3339 timestamps.
//! - [`errors`]: per-field error maps used across crates; [`report`]: an error with its causes.

pub mod errors;
pub mod filter;
pub mod ids;
pub mod report;
pub mod retry;
pub mod schema;
pub mod settings;
pub mod time;
pub mod value;
