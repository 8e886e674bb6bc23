//! The tables pipelines write: bronze loads through staging tables, model materialization,
//! run records, pipeline leases and incremental state. Everything that must be all-or-nothing (publishing a
//! step's table, its incremental cursor and its step record) commits in one transaction here.
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

/// Errors of user-written SQL are shown to the user: they name their own mistake.
fn user_sql(e: StoreError) -> StoreError {
    match e {
        StoreError::Internal(message) => StoreError::Unprocessable(message),
        other => other,
    }
}
