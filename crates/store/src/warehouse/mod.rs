//! The tables pipelines write: bronze loads through staging tables, model materialization,
//! run records, pipeline leases and incremental state, reached through two handles:
//! [`Store::warehouse`] ([`Warehouse`]: the tables) and [`Store::runs`] ([`Runs`]: run
//! records, leases, cursors, schedules, triggers). Everything that must be all-or-nothing
//! (publishing a step's table, its incremental cursor and its step record) commits in one
//! transaction here.
//!
//! Users' model SQL is the one place SQL written outside this crate reaches the database
//! (see DESIGN.md); it only ever runs inside a statement this module wraps
//! (`CREATE TABLE .. AS`, `CREATE VIEW .. AS`, `WHERE (..) IS NOT TRUE`).

mod browse;
mod datatests;
mod expose;
mod freshness;
mod leases;
mod load;
mod models;
pub(crate) mod ownership;
mod runs;
mod schedules;
mod snapshots;
mod status;
mod tables;
mod triggers;

pub use browse::{BrowseColumn, TableRole, WarehouseTable};
pub use datatests::{
    DataTest, TestKind, TestOutcome, accepted_values_check, literal, not_null_check,
};
pub use expose::Expose;
pub use leases::{Lease, LeaseClaim, StaleRun};
pub use load::{Finish, LINEAGE, Published, RejectedRows, Staging, WriteMode};
pub use models::{ExpectationAction, ExpectationOutcome, Materialize, ModelOutcome, ModelPlan};
pub use ownership::{Owner, Taken};
pub use runs::{RunRecord, StateUpdate};
pub use snapshots::{SnapshotSpec, VALID_FROM, VALID_TO};
pub use status::{RunStatus, StepStatus, UnknownStatus};
pub use tables::{Column, ColumnType, STAGING_PREFIX};

use crate::error::StoreError;
use crate::handle::Store;

/// The bookkeeping of pipeline runs: run records and their steps, cancellation, leases and
/// heartbeats, incremental cursors, schedule claims and trigger positions. Borrowed from a
/// [`Store`] by [`Store::runs`].
#[derive(Clone, Copy)]
pub struct Runs<'a> {
    store: &'a Store,
}

/// The tables pipelines write: bronze loads through staging tables, model materialization,
/// data tests, table ownership and freshness, and reading the tables back (`/api/tables`).
/// Borrowed from a [`Store`] by [`Store::warehouse`].
#[derive(Clone, Copy)]
pub struct Warehouse<'a> {
    store: &'a Store,
}

impl Store {
    /// Pipeline runs, leases, cursors, schedules and triggers.
    pub fn runs(&self) -> Runs<'_> {
        Runs { store: self }
    }

    /// The tables pipelines write and read.
    pub fn warehouse(&self) -> Warehouse<'_> {
        Warehouse { store: self }
    }
}

/// Errors of user-written SQL are shown to the user: they name their own mistake.
fn user_sql(e: StoreError) -> StoreError {
    match e {
        StoreError::Internal { message, .. } => StoreError::Unprocessable(message),
        other => other,
    }
}
