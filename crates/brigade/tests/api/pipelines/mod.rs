//! Pipelines end to end: pipeline files and models in a real app directory, runs started
//! over the API and the CLI, tables checked in the real database.

mod support;

mod alerts;
mod backfill;
mod broken_files;
mod crash;
mod data_tests;
mod extract_edges;
mod files;
pub(crate) mod flights_example;
mod keys;
mod leases;
mod loads;
mod macros;
mod model_memory;
mod models;
mod on_start;
mod ownership;
mod parallel;
mod runs;
mod select;
mod snapshots;
mod statements;
mod tables;
mod triggers;
mod types;
