//! `brigade migrate status|up|new`: the app's schema migrations.

use anyhow::Context;
use brigade_core::settings::Settings;
use brigade_store::Store;
use clap::Subcommand;

use super::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCommand {
    /// List migration files and whether each is applied.
    #[command(after_help = "Example:\n  brigade migrate status --dir myapp")]
    Status,
    /// Apply pending migrations in order (each in one transaction).
    #[command(
        after_help = "Example (rebuild a SQLite-built schema on PostgreSQL):\n  BRIGADE_DATABASE_URL=postgres://brigade@localhost/brigade brigade migrate up --dir myapp"
    )]
    Up,
    /// Create an empty migration file for hand-written SQL.
    #[command(
        after_help = "Example:\n  brigade migrate new add_search_index --dir myapp\n\nEdit the file's `sql` (both backends) or `sqlite`/`postgres` keys, then run `brigade migrate up`\n(it refuses the file while its SQL is empty). Once applied, a migration is never re-applied: an\nedit shows as `file changed since` in `migrate status`; write a new migration instead."
    )]
    New {
        /// A short name, e.g. add_search_index.
        name: String,
    },
}

pub(crate) async fn run(settings: Settings, cmd: MigrateCommand) -> Result<(), Failure> {
    match cmd {
        MigrateCommand::New { name } => {
            let path = Store::new_migration_file(&settings.dir.join("migrations"), &name)
                .context("creating the migration file")?;
            println!("Created {}", path.display());
        }
        MigrateCommand::Status => {
            let store = Store::open(&settings)
                .await
                .context("opening the database")?;
            let status = store
                .migration_status()
                .await
                .context("reading migrations")?;
            if status.is_empty() {
                println!(
                    "No migrations in {}.",
                    settings.dir.join("migrations").display()
                );
            }
            for m in status {
                let state = match (&m.applied, m.file_present) {
                    (Some(at), true) if m.changed_since_applied => format!(
                        "applied  {at}  (file changed since: the change is not applied; \
                         restore it and write a new migration)"
                    ),
                    (Some(at), true) => format!("applied  {at}"),
                    (Some(at), false) => format!("applied  {at}  (file missing)"),
                    (None, _) => "pending".to_string(),
                };
                println!("{:<60} {state}", m.name);
            }
            store.close().await;
        }
        MigrateCommand::Up => {
            let store = Store::open(&settings)
                .await
                .context("opening the database")?;
            let applied = store.migrate_up().await.context("applying migrations")?;
            if applied.is_empty() {
                println!("Up to date.");
            }
            for name in applied {
                println!("applied  {name}");
            }
            store.close().await;
        }
    }
    Ok(())
}
