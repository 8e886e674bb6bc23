//! [`Store`]: the handle to one app's database over either backend. Its own verbs are the
//! core of the API — collections, records, batches, migrations, the schema cache and the
//! change feed: it validates input against the schema, runs each operation in one
//! transaction and publishes record changes. Other areas are borrowed sub-handles:
//! [`Store::accounts`], [`Store::audit`], [`Store::runs`], [`Store::warehouse`] and
//! [`Store::search_index`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use brigade_core::schema::Collection;
use brigade_core::settings::{DatabaseUrl, Settings};
use serde_json::{Map, Value as Json};
use tokio::sync::broadcast;

use crate::changes::{ChangeFeed, Envelope};
use crate::conn::Database;
use crate::error::StoreError;
use crate::migrations::{self, Schema};
use crate::postgres::PostgresDatabase;
use crate::records::Record;
use crate::sql::Dialect;
use crate::sqlite::SqliteDatabase;
use crate::system;

mod collections;
mod counts;
mod group_commit;
mod plans;
mod records;

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
    pub(crate) db: Arc<dyn Database>,
    schema: RwLock<Schema>,
    /// Serialises schema changes (file + transaction + cache).
    schema_change: tokio::sync::Mutex<()>,
    migrations_dir: PathBuf,
    pub(crate) changes: Arc<ChangeFeed>,
    /// Cached list totals, invalidated by every write.
    counts: Arc<counts::CountCache>,
    /// The queue that commits concurrent writes together.
    group_commit: group_commit::GroupCommit,
    /// PostgreSQL only: permits for reads with expensive filters (substring scans, relation
    /// sub-selects), half the pool, so cheap reads always find a connection while many
    /// clients send expensive filters. SQLite moves slow reads to a lane of their own instead.
    heavy_reads: Option<Arc<tokio::sync::Semaphore>>,
    /// Connections the backend may open (`database.pool_size`); 0 when not known.
    pool_size: usize,
    /// Fired after each local commit that appended to the realtime event log.
    pub(crate) event_wake: Arc<crate::event_log::LocalWake>,
    /// `_schema_version` as of the schema this process holds.
    schema_version: std::sync::atomic::AtomicI64,
    /// Bumped each time this process installs a schema (see [`Store::schema_generation`]).
    schema_generation: std::sync::atomic::AtomicU64,
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
        let mut store = Self::with_database(db, &settings.dir.join("migrations")).await?;
        if store.dialect() == Dialect::Postgres {
            let permits = (settings.database.pool_size / 2).max(1);
            store.heavy_reads = Some(Arc::new(tokio::sync::Semaphore::new(permits)));
        }
        store.pool_size = settings.database.pool_size;
        Ok(store)
    }

    /// Opens the database at `url` (`sqlite://PATH` or `postgres://…`, a pool of 2) with its
    /// migrations in `migrations_dir`: for tools and tests that have no brigade.toml.
    ///
    /// # Errors
    /// As [`Store::open`]; [`StoreError::Unprocessable`] for another scheme.
    pub async fn connect(url: &str, migrations_dir: &Path) -> Result<Store, StoreError> {
        let db: Arc<dyn Database> = if let Some(path) = url.strip_prefix("sqlite://") {
            Arc::new(SqliteDatabase::open(Path::new(path), 2)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Arc::new(PostgresDatabase::connect(url, 2).await?)
        } else {
            return Err(StoreError::Unprocessable(format!(
                "`{url}` is not a sqlite:// or postgres:// URL"
            )));
        };
        Self::with_database(db, migrations_dir).await
    }

    /// Wraps an opened backend.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn with_database(
        db: Arc<dyn Database>,
        migrations_dir: &Path,
    ) -> Result<Store, StoreError> {
        let dialect = db.dialect();
        system::upgrade(db.as_ref()).await?;
        // SQLite has one writer (us); on PostgreSQL other processes may write too.
        let counts = Arc::new(counts::CountCache::new(match dialect {
            Dialect::Sqlite => std::time::Duration::from_secs(60),
            Dialect::Postgres => std::time::Duration::from_secs(1),
        }));
        let changes = Arc::new(ChangeFeed::default());
        let event_wake = Arc::new(crate::event_log::LocalWake::default());
        // Both stores: SQLite has one writer, and on PostgreSQL the event log's counter row
        // makes commits follow one another, so a burst of writes shares one transaction (and
        // one fsync) instead of queueing on that row.
        let group_commit = group_commit::GroupCommit::start(
            db.clone(),
            counts.clone(),
            changes.clone(),
            event_wake.clone(),
        );
        let store = Store {
            db,
            schema: RwLock::new(Arc::new(Vec::new())),
            schema_change: tokio::sync::Mutex::new(()),
            migrations_dir: migrations_dir.to_path_buf(),
            changes,
            counts,
            group_commit,
            heavy_reads: None,
            pool_size: 0,
            event_wake,
            schema_version: std::sync::atomic::AtomicI64::new(-1),
            schema_generation: std::sync::atomic::AtomicU64::new(0),
        };
        store.reload_schema().await?;
        Ok(store)
    }

    /// The SQL dialect of the backend.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Connections the backend may open (`database.pool_size`); 0 when the store was built
    /// around a backend opened elsewhere.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// `(in use, idle)` connections.
    pub fn pool_status(&self) -> (usize, usize) {
        self.db.pool_status()
    }

    /// Committed changes (records, collections, search indexes), published after each
    /// commit; see [`crate::changes`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.changes.subscribe()
    }

    /// The change feed (its origin names this process, e.g. in channel presence).
    pub fn change_feed(&self) -> &Arc<ChangeFeed> {
        &self.changes
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

    pub(crate) async fn reload_schema(&self) -> Result<(), StoreError> {
        let mut conn = self.db.read().await?;
        // The version first: a change landing between the two reads shows as a newer version
        // at the next check, which reloads again.
        let version = migrations::schema_version(conn.as_mut()).await?;
        let collections = migrations::load_collections(conn.as_mut()).await?;
        drop(conn);
        self.install_schema(collections);
        self.schema_version
            .store(version, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Reloads the collections when the stored definitions differ from this process's:
    /// another process (a second `serve` on PostgreSQL, `brigade migrate up`, a CLI
    /// `pipeline run` publishing a model) created, changed or dropped one. Returns whether
    /// anything changed. Waits for a schema change of this process to finish first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn refresh_schema(&self) -> Result<bool, StoreError> {
        let _guard = self.schema_change.lock().await;
        self.refresh_schema_locked().await
    }

    /// [`Store::refresh_schema`] for a caller that holds the schema-change lock.
    pub(crate) async fn refresh_schema_locked(&self) -> Result<bool, StoreError> {
        let mut conn = self.db.read().await?;
        let version = migrations::schema_version(conn.as_mut()).await?;
        let collections = migrations::load_collections(conn.as_mut()).await?;
        drop(conn);
        self.schema_version
            .store(version, std::sync::atomic::Ordering::Relaxed);
        let current = self.schema();
        let same = current.len() == collections.len()
            && current.iter().zip(&collections).all(|(a, b)| **a == *b);
        if same {
            return Ok(false);
        }
        tracing::info!("The collections changed in another process; reloaded them.");
        self.install_schema(collections);
        Ok(true)
    }

    /// Whether `_schema_version` moved since this process last loaded the schema (one row
    /// read).
    async fn schema_moved(&self) -> Result<bool, StoreError> {
        let mut conn = self.db.read().await?;
        let version = migrations::schema_version(conn.as_mut()).await?;
        Ok(version
            != self
                .schema_version
                .load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Follows schema changes made by other processes until the task is stopped: on
    /// PostgreSQL woken by `NOTIFY` (and after each reconnection of the listening connection,
    /// so changes made while it was down are caught up), with a check every `every` as a
    /// safety net; on SQLite by checking `_schema_version` every `every`. Either way a
    /// check reads one row, and the definitions are reloaded only when it moved.
    pub async fn follow_schema(self: Arc<Self>, every: std::time::Duration) {
        let mut notified = self.db.listen(migrations::SCHEMA_CHANNEL);
        let every = if notified.is_some() {
            every.max(std::time::Duration::from_secs(5))
        } else {
            every
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = async {
                    match notified.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            let checked = match self.schema_moved().await {
                Ok(true) => self.refresh_schema().await.map(drop),
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            };
            match checked {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("Following schema changes again.");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "Cannot check for schema changes made elsewhere; retrying.");
                }
                Err(_) => {}
            }
        }
    }

    /// Swaps in `collections` as the schema, invalidating cached totals and publishing what
    /// changed.
    fn install_schema(&self, collections: Vec<Collection>) {
        self.counts.bump();
        let schema: Schema = Arc::new(collections.into_iter().map(Arc::new).collect());
        if self.changes.listening() {
            for change in schema_changes(&self.schema(), &schema) {
                self.changes.publish(change);
            }
        }
        // A panic elsewhere while the lock was held cannot leave a half-written schema (the
        // value is swapped whole), so a poisoned lock is still the last schema, not an empty one.
        *self
            .schema
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = schema;
        self.schema_generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// A number that moves whenever this process installs another schema: caches derived
    /// from the schema (realtime subscription plans) rebuild when it differs from the one
    /// they were built at. It moves before the change is answered, so anything done after a
    /// schema change sees the new number.
    pub fn schema_generation(&self) -> u64 {
        self.schema_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn schema(&self) -> Schema {
        self.schema
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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

    pub(crate) fn lookup(&self) -> impl Fn(&str) -> Option<Arc<Collection>> + Send + Sync + use<> {
        let schema = self.schema();
        move |name: &str| schema.iter().find(|c| c.name == name).cloned()
    }
}

/// The collections created, changed and dropped between two schemas, as changes.
fn schema_changes(old: &Schema, new: &Schema) -> Vec<crate::changes::Change> {
    use crate::changes::{Change, SchemaKind};
    let change = |c: &Collection, kind| Change::Collection {
        name: c.name.clone(),
        kind,
        pipeline: c.pipeline.clone(),
    };
    let mut out = Vec::new();
    for c in new.iter() {
        match old.iter().find(|o| o.name == c.name) {
            None => out.push(change(c, SchemaKind::Created)),
            Some(o) if **o != **c => out.push(change(c, SchemaKind::Updated)),
            Some(_) => {}
        }
    }
    for o in old.iter().filter(|o| !new.iter().any(|c| c.name == o.name)) {
        out.push(change(o, SchemaKind::Dropped));
    }
    out
}
