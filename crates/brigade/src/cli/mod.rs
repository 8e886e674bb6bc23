//! Command-line interface: one module per command, each assembling the library crates.

mod bench;
mod bench_search;
mod init;
mod jwt;
mod migrate;
mod pipeline;
mod pipeline_test;
mod search;
mod serve;
mod stop;
mod superuser;

use std::path::PathBuf;

use brigade_core::settings::Settings;
use clap::{Parser, Subcommand};

/// How a command failed, which decides the exit code.
pub(crate) enum Failure {
    /// Bad usage or configuration: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
    /// Stopped by a signal after cleaning up: exit 128 + the signal's number (130 for
    /// SIGINT, 143 for SIGTERM), as shells report it.
    Signal { code: u8, message: String },
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "brigade",
    version,
    about = "One binary for the data-aware backend: collections with a REST API, auth, migrations, ELT pipelines and operations.",
    long_about = "Brigade serves typed collections over a REST API (filters, sorting, paging, OpenAPI), \
on embedded SQLite by default or PostgreSQL in production, and runs ELT pipelines (pipelines/*.toml, \
models/*.sql) that load files, APIs and web pages into bronze tables and build silver and gold tables \
with SQL models and data-quality expectations. Search indexes ([[search.indexes]]) make documents and \
collections searchable by keywords and meaning, and answer questions with their sources.\n\n\
Settings come from DIR/brigade.toml, and every key can be overridden by BRIGADE_<SECTION>_<KEY> \
(for example BRIGADE_DATABASE_URL=postgres://user@host/db).",
    after_help = "Examples:\n  brigade init myapp\n  brigade superuser create admin@example.com --dir myapp\n  brigade serve --dir myapp\n  brigade pipeline run flights --dir examples/flights\n  BRIGADE_DATABASE_URL=postgres://brigade@localhost/brigade brigade migrate up --dir myapp"
)]
pub(crate) struct Cli {
    /// The app directory (brigade.toml, migrations/, pipelines/, models/, data/).
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scaffold an app directory.
    #[command(after_help = "Example:\n  brigade init myapp && brigade serve --dir myapp")]
    Init(init::InitArgs),
    /// Run the server: REST API, docs, metrics.
    #[command(
        after_help = "Examples:\n  brigade serve --dir myapp\n  brigade serve --dir myapp --addr 0.0.0.0:8090\n  BRIGADE_DATABASE_URL=postgres://brigade@localhost/brigade brigade serve --dir myapp"
    )]
    Serve(serve::ServeArgs),
    /// Schema migrations of the app directory.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Benchmarks: time full rebuilds of a pipeline; score and time search indexes.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Pipelines: list, run, retry, graph.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Search indexes: ingest documents, query, ask questions.
    #[command(subcommand)]
    Search(search::SearchCommand),
    /// Manage superusers (role `admin`).
    #[command(subcommand)]
    Superuser(superuser::SuperuserCommand),
    /// Manage the signing key of access tokens.
    #[command(subcommand)]
    Jwt(jwt::JwtCommand),
}

/// Runs the parsed command.
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init(args) => init::run(&args).map_err(Failure::Runtime),
        Command::Serve(args) => {
            let settings = load_settings(&cli.dir)?;
            serve::run(settings, &args).await
        }
        Command::Migrate(cmd) => {
            let settings = load_settings(&cli.dir)?;
            migrate::run(settings, cmd).await
        }
        Command::Bench(cmd) => {
            let settings = load_settings(&cli.dir)?;
            bench::run(settings, cmd).await
        }
        Command::Pipeline(cmd) => {
            let settings = load_settings(&cli.dir)?;
            pipeline::run(settings, cmd).await
        }
        Command::Search(cmd) => {
            let settings = load_settings(&cli.dir)?;
            search::run(settings, cmd).await
        }
        Command::Superuser(cmd) => {
            let settings = load_settings(&cli.dir)?;
            superuser::run(settings, cmd).await
        }
        Command::Jwt(cmd) => {
            let settings = load_settings(&cli.dir)?;
            jwt::run(settings, cmd).await
        }
    }
}

fn load_settings(dir: &std::path::Path) -> Result<Settings, Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{} is not a directory; create an app with `brigade init {}`",
            dir.display(),
            dir.display()
        )));
    }
    let settings = Settings::load(dir).map_err(|e| Failure::Usage(e.to_string()))?;
    crate::logging::init(settings.log.format);
    if !dir.join(brigade_core::settings::SETTINGS_FILE).is_file() {
        let database = match &settings.database.url {
            brigade_core::settings::DatabaseUrl::Sqlite(path) => path.display().to_string(),
            brigade_core::settings::DatabaseUrl::Postgres(_) => "PostgreSQL".to_string(),
        };
        tracing::warn!(
            dir = %dir.display(),
            database,
            "No brigade.toml here: running on the default settings. To make this folder an app, \
             run `brigade init {}`; to use another app, pass --dir.",
            dir.display()
        );
    }
    Ok(settings)
}
