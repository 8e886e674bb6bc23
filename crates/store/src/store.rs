//! [`Store`]: the domain verbs the rest of Brigade calls — collections, records, batches,
//! migrations, users — over either backend. It validates input against the schema, runs each
//! operation in one transaction, keeps the schema cache and publishes record changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use brigade_core::schema::Collection;
use brigade_core::schema::definition::{self, MigrationFile, Operation};
use brigade_core::schema::input::{Mode, validate_record};
use brigade_core::settings::{DatabaseUrl, Settings};
use brigade_core::value::Value;
use serde_json::{Map, Value as Json};
use tokio::sync::broadcast;

use crate::conn::{Conn, Database};
use crate::error::StoreError;
use crate::migrations::{self, MigrationStatus, Schema};
use crate::postgres::PostgresDatabase;
use crate::query::{ListParams, RequestContext, parse_expand, parse_fields, parse_sort};
use crate::records::{self, Record};
use crate::sessions::{self, Rotation};
use crate::sql::Dialect;
use crate::sqlite::SqliteDatabase;
use crate::users::{self, UserRow};
use crate::{ChangeEvent, system};

/// A page of a list request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    pub items: Vec<Record>,
    pub page: i64,
    pub per_page: i64,
    pub total_items: Option<i64>,
    pub total_pages: Option<i64>,
}

/// One write of a batch.
#[derive(Debug, Clone)]
pub enum BatchOp {
    Create {
        collection: String,
        body: Map<String, Json>,
    },
    Update {
        collection: String,
        id: String,
        body: Map<String, Json>,
    },
    Delete {
        collection: String,
        id: String,
    },
}

/// The result of one batch write.
#[derive(Debug, Clone)]
pub enum BatchOutcome {
    Created(Record),
    Updated(Record),
    Deleted,
}

/// The store of one app.
pub struct Store {
    db: Arc<dyn Database>,
    schema: RwLock<Schema>,
    /// Serialises schema changes (file + transaction + cache).
    schema_change: tokio::sync::Mutex<()>,
    migrations_dir: PathBuf,
    changes: broadcast::Sender<ChangeEvent>,
}

impl Store {
    /// Opens the configured database and upgrades Brigade's system tables. Pending app
    /// migrations are not applied here; see [`Store::migrate_up`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be opened or reached.
    pub async fn open(settings: &Settings) -> Result<Store, StoreError> {
        let db: Arc<dyn Database> = match &settings.database.url {
            DatabaseUrl::Sqlite(path) => {
                Arc::new(SqliteDatabase::open(path, settings.database.pool_size)?)
            }
            DatabaseUrl::Postgres(url) => {
                Arc::new(PostgresDatabase::connect(url, settings.database.pool_size).await?)
            }
        };
        Self::with_database(db, &settings.dir.join("migrations")).await
    }

    /// Wraps an opened backend.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn with_database(
        db: Arc<dyn Database>,
        migrations_dir: &Path,
    ) -> Result<Store, StoreError> {
        system::upgrade(db.as_ref()).await?;
        let store = Store {
            db,
            schema: RwLock::new(Arc::new(Vec::new())),
            schema_change: tokio::sync::Mutex::new(()),
            migrations_dir: migrations_dir.to_path_buf(),
            changes: broadcast::channel(1024).0,
        };
        store.reload_schema().await?;
        Ok(store)
    }

    /// The SQL dialect of the backend.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// `(in use, idle)` connections.
    pub fn pool_status(&self) -> (usize, usize) {
        self.db.pool_status()
    }

    /// Record changes, published after each commit.
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.changes.subscribe()
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.db.read().await?;
        conn.execute_script("SELECT 1").await
    }

    /// Closes the database cleanly.
    pub async fn close(&self) {
        self.db.close().await;
    }

    async fn reload_schema(&self) -> Result<(), StoreError> {
        let mut conn = self.db.read().await?;
        let collections = migrations::load_collections(conn.as_mut()).await?;
        let schema: Schema = Arc::new(collections.into_iter().map(Arc::new).collect());
        if let Ok(mut guard) = self.schema.write() {
            *guard = schema;
        }
        Ok(())
    }

    fn schema(&self) -> Schema {
        self.schema.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// All collections, by name.
    pub fn collections(&self) -> Vec<Arc<Collection>> {
        self.schema().iter().cloned().collect()
    }

    /// The collection called `name` (exact match).
    ///
    /// # Errors
    /// [`StoreError::CollectionNotFound`].
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>, StoreError> {
        self.schema()
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_string()))
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<Arc<Collection>> + Send + Sync + use<> {
        let schema = self.schema();
        move |name: &str| schema.iter().find(|c| c.name == name).cloned()
    }

    // ---- schema changes -------------------------------------------------------------

    /// Creates a collection from an API body; recorded as a migration file.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] per field, [`StoreError::Conflict`] for a taken name.
    pub async fn create_collection(&self, body: &Json) -> Result<Arc<Collection>, StoreError> {
        let _guard = self.schema_change.lock().await;
        let existing: Vec<Collection> = self.schema().iter().map(|c| (**c).clone()).collect();
        let collection =
            definition::parse_new_collection(body, &existing, &brigade_core::time::now())
                .map_err(definition_error)?;
        let name = collection.name.clone();
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
        let current = self.collection(name)?;
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
        let c = self.collection(name)?;
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
        let path = migrations::write_file(&self.migrations_dir, slug, &file)?;
        let result = async {
            let mut tx = self.db.begin().await?;
            for op in &file.operations {
                migrations::apply_operation(tx.as_mut(), op).await?;
            }
            migrations::mark_applied(tx.as_mut(), &migrations::name_of(&path)).await?;
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
        let mut out: Vec<MigrationStatus> = files
            .iter()
            .map(|f| {
                let name = migrations::name_of(f);
                let applied = applied
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, a)| a.clone());
                MigrationStatus {
                    name,
                    applied,
                    file_present: true,
                }
            })
            .collect();
        for (name, at) in applied {
            if !out.iter().any(|m| m.name == name) {
                out.push(MigrationStatus {
                    name,
                    applied: Some(at),
                    file_present: false,
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
            if applied.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let file = migrations::read_file(&path)?;
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
                    .any(|(n, _)| *n == name)
                {
                    continue;
                }
            }
            for op in &file.operations {
                migrations::apply_operation(tx.as_mut(), op)
                    .await
                    .map_err(fail)?;
            }
            migrations::mark_applied(tx.as_mut(), &name)
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            done.push(name);
        }
        drop(_guard);
        self.reload_schema().await?;
        Ok(done)
    }

    /// Writes an empty migration file for hand-written SQL and returns its path.
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
        migrations::write_file(migrations_dir, &slug, &file)
    }

    // ---- records ---------------------------------------------------------------------

    /// Lists records of `name`. `rule` (a filter source) restricts the rows further.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for bad parameters, [`StoreError::CollectionNotFound`].
    pub async fn list_records(
        &self,
        name: &str,
        params: &ListParams,
        rule: Option<(&str, &RequestContext)>,
    ) -> Result<Page, StoreError> {
        let c = self.collection(name)?;
        let lookup = self.lookup();
        let (page, per_page, skip_total) = params.paging()?;
        let sort = parse_sort(&c, params.sort.as_deref())?;
        let fields = parse_fields(&c, params.fields.as_deref())?;
        let expand = parse_expand(&c, &lookup, params.expand.as_deref())?;
        let dialect = self.dialect();
        let mut filter = match params
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(src) => Some(records::filter_sql(dialect, &c, src, &lookup, None)?),
            None => None,
        };
        if let Some((rule_src, request)) = rule {
            let rule_sql = records::filter_sql(dialect, &c, rule_src, &lookup, Some(request))?;
            filter = Some(match filter {
                None => rule_sql,
                Some(f) => {
                    let mut both = crate::sql::Sql::new(dialect);
                    both.push("(")
                        .append(f)
                        .push(") AND (")
                        .append(rule_sql)
                        .push(")");
                    both
                }
            });
        }
        let mut conn = self.db.read().await?;
        let (mut items, total) = records::list(
            conn.as_mut(),
            &c,
            filter,
            &sort,
            page,
            per_page,
            !skip_total,
        )
        .await?;
        if !expand.is_empty() {
            records::expand(conn.as_mut(), &c, &mut items, &expand, &lookup).await?;
        }
        if let Some(fields) = &fields {
            items.iter_mut().for_each(|r| records::project(r, fields));
        }
        Ok(Page {
            items,
            page,
            per_page,
            total_items: total,
            total_pages: total.map(|t| (t + per_page - 1) / per_page),
        })
    }

    /// Reads one record.
    ///
    /// # Errors
    /// [`StoreError::RecordNotFound`], [`StoreError::Invalid`] for bad `fields`/`expand`.
    pub async fn get_record(
        &self,
        name: &str,
        id: &str,
        fields: Option<&str>,
        expand: Option<&str>,
    ) -> Result<Record, StoreError> {
        let c = self.collection(name)?;
        let lookup = self.lookup();
        let fields = parse_fields(&c, fields)?;
        let expand = parse_expand(&c, &lookup, expand)?;
        if !brigade_core::ids::is_plausible_id(id) {
            return Err(records::not_found(&c, id));
        }
        let mut conn = self.db.read().await?;
        let mut rec = records::get(conn.as_mut(), &c, id, None).await?;
        if !expand.is_empty() {
            records::expand(
                conn.as_mut(),
                &c,
                std::slice::from_mut(&mut rec),
                &expand,
                &lookup,
            )
            .await?;
        }
        if let Some(fields) = &fields {
            records::project(&mut rec, fields);
        }
        Ok(rec)
    }

    /// Creates a record from an API body.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] per field, [`StoreError::Conflict`] on unique values.
    pub async fn create_record(
        &self,
        name: &str,
        body: &Map<String, Json>,
    ) -> Result<Record, StoreError> {
        let results = self
            .write(vec![BatchOp::Create {
                collection: name.into(),
                body: body.clone(),
            }])
            .await
            .map_err(|(_, e)| e)?;
        match results.into_iter().next() {
            Some(BatchOutcome::Created(r)) => Ok(r),
            _ => Err(StoreError::Internal("create returned nothing".into())),
        }
    }

    /// Applies a partial update.
    ///
    /// # Errors
    /// As [`Store::create_record`], plus [`StoreError::RecordNotFound`].
    pub async fn update_record(
        &self,
        name: &str,
        id: &str,
        body: &Map<String, Json>,
    ) -> Result<Record, StoreError> {
        let op = BatchOp::Update {
            collection: name.into(),
            id: id.into(),
            body: body.clone(),
        };
        match self
            .write(vec![op])
            .await
            .map_err(|(_, e)| e)?
            .into_iter()
            .next()
        {
            Some(BatchOutcome::Updated(r)) => Ok(r),
            _ => Err(StoreError::Internal("update returned nothing".into())),
        }
    }

    /// Deletes a record (and, through `cascade_delete` relations, its dependents).
    ///
    /// # Errors
    /// [`StoreError::RecordNotFound`]; [`StoreError::Conflict`] when still referenced.
    pub async fn delete_record(&self, name: &str, id: &str) -> Result<(), StoreError> {
        self.write(vec![BatchOp::Delete {
            collection: name.into(),
            id: id.into(),
        }])
        .await
        .map_err(|(_, e)| e)?;
        Ok(())
    }

    /// Runs writes in one transaction: all succeed or none is kept.
    ///
    /// # Errors
    /// The index of the failing operation and its error.
    pub async fn write(&self, ops: Vec<BatchOp>) -> Result<Vec<BatchOutcome>, (usize, StoreError)> {
        let lookup = self.lookup();
        // Validate everything before taking the write lock.
        let mut prepared = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            let fail = |e| (i, e);
            let (name, id) = match &op {
                BatchOp::Create { collection, .. } => (collection, None),
                BatchOp::Update { collection, id, .. } | BatchOp::Delete { collection, id } => {
                    (collection, Some(id))
                }
            };
            let c = self.collection(name).map_err(fail)?;
            if let Some(id) = id.filter(|id| !brigade_core::ids::is_plausible_id(id)) {
                return Err((i, records::not_found(&c, id)));
            }
            let input = match &op {
                BatchOp::Create { body, .. } => Some(
                    validate_record(&c, body, Mode::Create)
                        .map_err(|e| (i, StoreError::Invalid(e)))?,
                ),
                BatchOp::Update { body, .. } => Some(
                    validate_record(&c, body, Mode::Update)
                        .map_err(|e| (i, StoreError::Invalid(e)))?,
                ),
                BatchOp::Delete { .. } => None,
            };
            prepared.push((c, op, input));
        }
        let mut tx = self.db.begin().await.map_err(|e| (0, e))?;
        let mut outcomes = Vec::with_capacity(prepared.len());
        let mut events = Vec::new();
        for (i, (c, op, input)) in prepared.into_iter().enumerate() {
            let conn: &mut dyn Conn = tx.as_mut();
            let outcome = match (op, input) {
                (BatchOp::Create { .. }, Some(input)) => records::insert(conn, &c, input, &lookup)
                    .await
                    .map(BatchOutcome::Created),
                (BatchOp::Update { id, .. }, Some(input)) => {
                    records::update(conn, &c, &id, input, &lookup)
                        .await
                        .map(BatchOutcome::Updated)
                }
                (BatchOp::Delete { id, .. }, _) => match records::get(conn, &c, &id, None).await {
                    Ok(old) => records::delete(conn, &c, &id).await.map(|()| {
                        events.push(ChangeEvent::new(&c.name, "delete", old));
                        BatchOutcome::Deleted
                    }),
                    Err(e) => Err(e),
                },
                _ => Err(StoreError::Internal("batch operation without input".into())),
            }
            .map_err(|e| (i, e))?;
            match &outcome {
                BatchOutcome::Created(r) => {
                    events.push(ChangeEvent::new(&c.name, "create", r.clone()))
                }
                BatchOutcome::Updated(r) => {
                    events.push(ChangeEvent::new(&c.name, "update", r.clone()))
                }
                BatchOutcome::Deleted => {}
            }
            outcomes.push(outcome);
        }
        tx.commit().await.map_err(|e| (0, e))?;
        for event in events {
            let _ = self.changes.send(event);
        }
        Ok(outcomes)
    }

    // ---- users -----------------------------------------------------------------------

    /// Creates an account with an already-hashed password.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on `email` when the address is taken.
    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        roles: &[String],
    ) -> Result<UserRow, StoreError> {
        let mut tx = self.db.begin().await?;
        let user = users::insert(tx.as_mut(), email, password_hash, roles).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Replaces a user's password hash.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_user_password(&self, id: &str, password_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        users::set_password(tx.as_mut(), id, password_hash).await?;
        tx.commit().await
    }

    /// The account with this email (case-insensitive).
    ///
    /// # Errors
    /// Database errors.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let mut conn = self.db.read().await?;
        users::by_email(conn.as_mut(), email).await
    }

    /// The account with this id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let mut conn = self.db.read().await?;
        users::by_id(conn.as_mut(), id).await
    }

    /// How many accounts have `role`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_users_with_role(&self, role: &str) -> Result<i64, StoreError> {
        let mut conn = self.db.read().await?;
        users::count_with_role(conn.as_mut(), role).await
    }

    /// Stores a new refresh token (its hash) starting a new family (one per login).
    ///
    /// # Errors
    /// Database errors.
    pub async fn create_refresh_token(
        &self,
        user_id: &str,
        token_hash: &str,
        expires: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        sessions::insert(
            tx.as_mut(),
            user_id,
            &brigade_core::ids::new_id(),
            token_hash,
            expires,
        )
        .await?;
        tx.commit().await
    }

    /// Spends a refresh token and stores its successor, atomically. Replaying a spent token
    /// revokes its whole family.
    ///
    /// # Errors
    /// Database errors.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_expires: &str,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.db.begin().await?;
        let outcome = sessions::rotate(tx.as_mut(), old_hash, new_hash, new_expires).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Revokes the family of a refresh token (logout). Returns whether the token was known.
    ///
    /// # Errors
    /// Database errors.
    pub async fn revoke_refresh_token(&self, token_hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        let Some([Value::Text(family), ..]) = sessions::find(tx.as_mut(), token_hash).await? else {
            return Ok(false);
        };
        sessions::revoke_family(tx.as_mut(), &family).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A persistent value, created with `make` the first time (the same value for every
    /// process sharing the database).
    ///
    /// # Errors
    /// Database errors.
    pub async fn persistent_value(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        {
            let mut conn = self.db.read().await?;
            if let Some(v) = system::kv_get(conn.as_mut(), key).await? {
                return Ok(v);
            }
        }
        let mut tx = self.db.begin().await?;
        let v = system::kv_get_or_insert(tx.as_mut(), key, &make()).await?;
        tx.commit().await?;
        Ok(v)
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
