//! Brigade's integration tests: one binary (linking dominates test time), the real `brigade`
//! executable on a real socket, a fresh database per test, each test on SQLite and PostgreSQL.
//!
//! Run with `cargo test --workspace` (not nextest: the PostgreSQL cluster in
//! `helpers::postgres` is shared by all tests of one process).

#[macro_use]
mod helpers;

mod account;
mod audit;
mod auth;
mod batch;
mod chat_browser;
mod cli;
mod closed_input;
mod coherence;
mod collections;
mod concurrency;
mod filter_props;
mod freeze;
mod hostile;
mod limits;
mod list;
mod login_limits;
mod metrics_access;
mod oidc;
mod oidc_links;
mod openapi;
mod ops;
mod owners;
mod pipelines;
mod readme;
mod realtime;
mod reconnect;
mod records;
mod relations;
mod revocation;
mod rule_leaks;
mod rules;
mod search;
mod sec_misc;
mod static_files;
