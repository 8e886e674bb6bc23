//! Brigade's pipelines: declarative ELT inside the store.
//!
//! A pipeline file ([`spec`]) declares extracts (sources landing in bronze tables) and SQL
//! models (silver and gold) that refer to each other with `ref`. Loading a file validates it
//! and builds its [`dag`]; a [`run`] executes the nodes in dependency order, each step one
//! transaction in the store, recording runs and steps as rows.
//!
//! - [`spec`]: the file format and its validation (errors name file, line and key).
//! - [`template`]: Jinja rendering of model SQL (`ref`, `this`, `is_incremental`).
//! - [`dag`]: dependency order, cycles, dot and Mermaid drawings.
//! - [`extract`]: file, http, html and sql sources streaming typed rows.
//! - [`run`]: the runner, its events, retries and cancellation.
//! - [`schedule`]: cron parsing, next firings and the scheduler loop.
//! - [`lineage`]: table- and column-level lineage.
//! - [`macros`]: `{% macro %}` files in `macros/`, callable from every model.
//! - [`datatest`]: dbt-style data tests (`unique`, `relationships`, ...) and `pipeline test`.
//! - [`select`]: dbt-style `--select` / `--exclude` node selection.

pub mod alerts;
pub mod dag;
pub mod datatest;
pub mod error;
pub mod extract;
pub mod freshness;
pub mod lineage;
pub mod macros;
pub mod run;
pub mod schedule;
pub mod select;
pub mod spec;
pub mod statement;
pub mod template;
pub mod triggers;

pub use error::{ConfigError, PipelineError};
pub use run::{Process, RunOptions, RunView, Runner, Trigger};

/// Environment lookups (`${VAR}` in sources, `env_var()` in models), injected by the binary
/// so nothing reads the process environment deep inside (and tests can supply their own).
pub type Env = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
pub use spec::{Broken, Catalog, Pipeline, load_dir};
