//! Schema changes and migrations: each change is written as a migration file, then applied
//! with its `_migrations` row in one transaction.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use brigade_core::schema::Collection;
use brigade_core::schema::definition::{self, MigrationFile, Operation};
use serde_json::Value as Json;

use super::Store;
use crate::access::check_rules;
use crate::error::StoreError;
use crate::migrations::{self, MigrationStatus};
use crate::sql::Dialect;

impl Store {
    // ---- schema changes -------------------------------------------------------------

    /// Creates a collection from an API body; recorded as a migration file.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] per field, [`StoreError::Conflict`] for a taken name.
    pub async fn create_collection(&self, body: &Json) -> Result<Arc<Collection>, StoreError> {
        let _guard = self.schema_change.lock().await;
        // Build on the stored definitions, not on a copy another process may have outdated.
        self.refresh_schema_locked().await?;
        let existing: Vec<Collection> = self.schema().iter().map(|c| (**c).clone()).collect();
        let collection =
            definition::parse_new_collection(body, &existing, &brigade_core::time::now())
                .map_err(definition_error)?;
        let name = collection.name.clone();
        let mut next_schema = self.collections();
        next_schema.push(Arc::new(collection.clone()));
        check_rules(self.dialect(), &name, &next_schema)?;
        self.apply_change(
            Operation::CreateCollection { collection },
            &format!("create_{name}"),
        )
        .await?;
        self.collection(&name)
    }

    /// Applies a PATCH to a collection; recorded as a migration file.
    ///
    /// # Errors
    /// As [`Store::create_collection`], plus [`StoreError::Unprocessable`] for type changes.
    pub async fn update_collection(
        &self,
        name: &str,
        body: &Json,
    ) -> Result<Arc<Collection>, StoreError> {
        let _guard = self.schema_change.lock().await;
        // Build on the stored definitions, not on a copy another process may have outdated.
        self.refresh_schema_locked().await?;
        let current = self.collection(name)?;
        read_only(&current)?;
        let others: Vec<Collection> = self
            .schema()
            .iter()
            .filter(|c| c.name != name)
            .map(|c| (**c).clone())
            .collect();
        let next =
            definition::parse_collection_patch(&current, body, &others, &brigade_core::time::now())
                .map_err(definition_error)?;
        if next.fields == current.fields
            && next.indexes == current.indexes
            && next.rules == current.rules
        {
            return Ok(current);
        }
        let next_schema: Vec<Arc<Collection>> = self
            .collections()
            .into_iter()
            .map(|c| {
                if c.name == name {
                    Arc::new(next.clone())
                } else {
                    c
                }
            })
            .collect();
        check_rules(self.dialect(), name, &next_schema)?;
        self.apply_change(
            Operation::UpdateCollection { collection: next },
            &format!("update_{name}"),
        )
        .await?;
        self.collection(name)
    }

    /// Drops a collection and its records; recorded as a migration file.
    ///
    /// # Errors
    /// [`StoreError::CollectionNotFound`]; [`StoreError::Conflict`] when another collection
    /// has a relation to it.
    pub async fn delete_collection(&self, name: &str) -> Result<(), StoreError> {
        let _guard = self.schema_change.lock().await;
        // Build on the stored definitions, not on a copy another process may have outdated.
        self.refresh_schema_locked().await?;
        let c = self.collection(name)?;
        read_only(&c)?;
        self.apply_change(
            Operation::DeleteCollection {
                name: c.name.clone(),
            },
            &format!("delete_{name}"),
        )
        .await
    }

    async fn apply_change(&self, op: Operation, slug: &str) -> Result<(), StoreError> {
        let file = MigrationFile {
            description: None,
            operations: vec![op],
        };
        let (path, checksum) = migrations::write_file(&self.migrations_dir, slug, &file)?;
        let result = async {
            let mut tx = self.db.begin().await?;
            for op in &file.operations {
                migrations::apply_operation(tx.as_mut(), op).await?;
            }
            migrations::mark_applied(tx.as_mut(), &migrations::name_of(&path), &checksum).await?;
            tx.commit().await
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        result?;
        self.reload_schema().await
    }

    /// Applied and pending migrations of the app directory.
    ///
    /// # Errors
    /// [`StoreError::Migration`] when the directory cannot be read.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let files = migrations::list_files(&self.migrations_dir)?;
        let mut conn = self.db.read().await?;
        let applied = migrations::applied(conn.as_mut()).await?;
        let mut out = Vec::with_capacity(files.len());
        for f in &files {
            let name = migrations::name_of(f);
            let record = applied.iter().find(|a| a.name == name);
            let changed_since_applied = match record.and_then(|a| a.checksum.as_deref()) {
                Some(recorded) => std::fs::read(f)
                    .map(|bytes| migrations::checksum(&bytes) != recorded)
                    .map_err(|e| StoreError::Migration {
                        file: f.display().to_string(),
                        message: e.to_string(),
                    })?,
                None => false,
            };
            out.push(MigrationStatus {
                name,
                applied: record.map(|a| a.at.clone()),
                file_present: true,
                changed_since_applied,
            });
        }
        for a in applied {
            if !out.iter().any(|m| m.name == a.name) {
                out.push(MigrationStatus {
                    name: a.name,
                    applied: Some(a.at),
                    file_present: false,
                    changed_since_applied: false,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Applies pending migration files in order, each in its own transaction, and returns
    /// the names applied.
    ///
    /// # Errors
    /// [`StoreError::Migration`] naming the first file that fails; earlier files stay applied.
    pub async fn migrate_up(&self) -> Result<Vec<String>, StoreError> {
        let _guard = self.schema_change.lock().await;
        let files = migrations::list_files(&self.migrations_dir)?;
        let applied = {
            let mut conn = self.db.read().await?;
            migrations::applied(conn.as_mut()).await?
        };
        let mut done = Vec::new();
        for path in files {
            let name = migrations::name_of(&path);
            if let Some(record) = applied.iter().find(|a| a.name == name) {
                warn_if_changed(&path, record);
                continue;
            }
            let migrations::ReadMigration { file, checksum } = migrations::read_file(&path)?;
            let fail = |e: StoreError| StoreError::Migration {
                file: path.display().to_string(),
                message: e.to_string(),
            };
            let mut tx = self.db.begin().await.map_err(fail)?;
            if self.dialect() == Dialect::Postgres {
                tx.execute_script("SELECT pg_advisory_xact_lock(7262740002)")
                    .await
                    .map_err(fail)?;
                // Another process may have applied it while we waited for the lock.
                if migrations::applied(tx.as_mut())
                    .await
                    .map_err(fail)?
                    .iter()
                    .any(|a| a.name == name)
                {
                    continue;
                }
            }
            for op in &file.operations {
                migrations::apply_operation(tx.as_mut(), op)
                    .await
                    .map_err(fail)?;
            }
            migrations::mark_applied(tx.as_mut(), &name, &checksum)
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            done.push(name);
        }
        drop(_guard);
        self.reload_schema().await?;
        Ok(done)
    }

    /// Writes a migration file for hand-written SQL, to be filled in, and returns its path.
    /// `migrate up` refuses it until its SQL is written.
    ///
    /// # Errors
    /// [`StoreError::Internal`] when the file cannot be written.
    pub fn new_migration_file(migrations_dir: &Path, name: &str) -> Result<PathBuf, StoreError> {
        let slug: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let file = MigrationFile {
            description: Some(name.to_string()),
            operations: vec![Operation::Sql {
                sql: Some(String::new()),
                sqlite: None,
                postgres: None,
            }],
        };
        migrations::write_file(migrations_dir, &slug, &file).map(|(path, _)| path)
    }
}

fn definition_error(e: definition::DefinitionError) -> StoreError {
    match e {
        definition::DefinitionError::Invalid(errors) => {
            let taken = errors
                .iter()
                .any(|(k, v)| k == "name" && v.contains("already exists"));
            if taken {
                StoreError::Conflict {
                    message: errors.summary(),
                    errors,
                }
            } else {
                StoreError::Invalid(errors)
            }
        }
        definition::DefinitionError::Unprocessable(m) => StoreError::Unprocessable(m),
    }
}

/// Collections of pipelines change only through their models.
fn read_only(c: &Collection) -> Result<(), StoreError> {
    match &c.pipeline {
        Some(pipeline) => Err(StoreError::ReadOnly {
            collection: c.name.clone(),
            pipeline: pipeline.clone(),
        }),
        None => Ok(()),
    }
}

/// Logs an applied migration whose file changed since: the edit never reaches the database.
fn warn_if_changed(path: &Path, record: &migrations::Applied) {
    let Some(recorded) = record.checksum.as_deref() else {
        return;
    };
    match std::fs::read(path) {
        Ok(bytes) if migrations::checksum(&bytes) != recorded => tracing::warn!(
            file = %path.display(),
            applied = %record.at,
            "Migration file changed after it was applied; the change is not applied. Restore \
             the file and write a new migration (`brigade migrate new NAME`) for the change."
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "Cannot read an applied migration file.")
        }
    }
}
