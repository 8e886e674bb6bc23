//! Brigade's own tables (`_collections`, `_migrations`, `_users`, `_kv`, ...), created and
//! upgraded in numbered steps recorded in `_brigade_system`. The SQL is portable between
//! both dialects on purpose: these tables hold text and JSON-as-text only.

use brigade_core::value::Value;

use crate::conn::{ColType, Conn, Database};
use crate::error::StoreError;
use crate::sql::{Dialect, Sql};

/// `(version, script)`, applied in order, each once.
const STEPS: &[(i64, &str)] = &[
    (
        1,
    "CREATE TABLE IF NOT EXISTS _collections (name TEXT PRIMARY KEY NOT NULL, definition TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY NOT NULL, applied TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS _users (id TEXT PRIMARY KEY NOT NULL, email TEXT NOT NULL UNIQUE,
         password_hash TEXT NOT NULL, roles TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS _kv (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);",
    ),
    (
        2,
        "CREATE TABLE IF NOT EXISTS _refresh_tokens (id TEXT PRIMARY KEY NOT NULL,
         user_id TEXT NOT NULL REFERENCES _users (id) ON DELETE CASCADE, family TEXT NOT NULL,
         token_hash TEXT NOT NULL UNIQUE, expires TEXT NOT NULL, used TEXT, revoked TEXT, created TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS _refresh_tokens_family ON _refresh_tokens (family);",
    ),
    (3, "ALTER TABLE _users ADD COLUMN profile TEXT NOT NULL DEFAULT '{}';"),
    (
        4,
        "CREATE TABLE IF NOT EXISTS _api_keys (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL,
         key_hash TEXT NOT NULL UNIQUE, roles TEXT NOT NULL, created_by TEXT NOT NULL,
         expires TEXT, last_used TEXT, created TEXT NOT NULL);",
    ),
    (
        5,
        "CREATE TABLE IF NOT EXISTS _audit (id TEXT PRIMARY KEY NOT NULL, created TEXT NOT NULL,
         updated TEXT NOT NULL, action TEXT NOT NULL, actor TEXT, ip TEXT, request_id TEXT,
         target TEXT, detail TEXT);
     CREATE INDEX IF NOT EXISTS _audit_created ON _audit (created);",
    ),
    (
        6,
        "CREATE TABLE IF NOT EXISTS _password_resets (token_hash TEXT PRIMARY KEY NOT NULL,
         user_id TEXT NOT NULL REFERENCES _users (id) ON DELETE CASCADE, expires TEXT NOT NULL,
         used TEXT, created TEXT NOT NULL);",
    ),
    (
        7,
        "CREATE TABLE IF NOT EXISTS _oidc_states (state_hash TEXT PRIMARY KEY NOT NULL,
         provider TEXT NOT NULL, pkce_verifier TEXT NOT NULL, nonce TEXT NOT NULL,
         redirect_to TEXT, expires TEXT NOT NULL, created TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS _oidc_states_expires ON _oidc_states (expires);",
    ),
    (
        8,
        "CREATE TABLE IF NOT EXISTS _pipeline_runs (id TEXT PRIMARY KEY NOT NULL,
         pipeline TEXT NOT NULL, status TEXT NOT NULL, trigger TEXT NOT NULL,
         options TEXT NOT NULL, created TEXT NOT NULL, started TEXT, finished TEXT,
         error TEXT, steps TEXT NOT NULL, heartbeat TEXT, cancel_requested TEXT);
     CREATE INDEX IF NOT EXISTS _pipeline_runs_pipeline ON _pipeline_runs (pipeline, created);
     CREATE INDEX IF NOT EXISTS _pipeline_runs_status ON _pipeline_runs (status);
     CREATE TABLE IF NOT EXISTS _pipeline_state (pipeline TEXT NOT NULL, node TEXT NOT NULL,
         cursor TEXT NOT NULL, updated TEXT NOT NULL, PRIMARY KEY (pipeline, node));
     CREATE TABLE IF NOT EXISTS _pipeline_schedule (pipeline TEXT PRIMARY KEY NOT NULL,
         last_fire TEXT NOT NULL);",
    ),
    (9, crate::search_index::ddl::SQLITE),
    // Revocation: a per-account token version carried in access tokens (bumped by logout,
    // password and role changes), keys attributed to the account that made them (keys once
    // made by keys are re-attributed to that key's creator), and at most one pending
    // password reset per account (older pending ones are spent).
    (
        10,
        "ALTER TABLE _users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
     UPDATE _api_keys SET created_by = (SELECT k.created_by FROM _api_keys k
         WHERE k.id = _api_keys.created_by) WHERE created_by IN (SELECT id FROM _api_keys);
     CREATE INDEX IF NOT EXISTS _api_keys_created_by ON _api_keys (created_by);
     UPDATE _password_resets SET used = created WHERE used IS NULL AND EXISTS (
         SELECT 1 FROM _password_resets n WHERE n.user_id = _password_resets.user_id
         AND n.used IS NULL AND (n.created > _password_resets.created
             OR (n.created = _password_resets.created AND n.token_hash > _password_resets.token_hash)));
     CREATE UNIQUE INDEX IF NOT EXISTS _password_resets_pending ON _password_resets (user_id)
         WHERE used IS NULL;",
    ),
    (11, crate::login_failures::DDL),
    (12, crate::oidc_links::DDL),
    // One run per pipeline across processes: the lease row a run holds while it runs, and
    // which process a run belongs to (so a dead one can be told from a slow one).
    (
        13,
        "CREATE TABLE IF NOT EXISTS _pipeline_leases (pipeline TEXT PRIMARY KEY NOT NULL,
         run_id TEXT NOT NULL, holder TEXT NOT NULL, heartbeat_at TEXT NOT NULL);
     ALTER TABLE _pipeline_runs ADD COLUMN holder TEXT;",
    ),
    // What event triggers last acted on (an upstream run, the files seen).
    (
        14,
        "CREATE TABLE IF NOT EXISTS _pipeline_triggers (pipeline TEXT NOT NULL,
         source TEXT NOT NULL, seen TEXT NOT NULL, updated TEXT NOT NULL,
         PRIMARY KEY (pipeline, source));",
    ),
    // Which pipeline owns which table: a pipeline creates and replaces only its own.
    (
        15,
        "CREATE TABLE IF NOT EXISTS _pipeline_tables (table_name TEXT PRIMARY KEY NOT NULL,
         pipeline TEXT NOT NULL, node TEXT NOT NULL, created_at TEXT NOT NULL);",
    ),
    // The SHA-256 of each migration file as applied: an edit made afterwards is reported.
    (16, "ALTER TABLE _migrations ADD COLUMN checksum TEXT;"),
    // The realtime event log and the counter that numbers it in commit order (`event_log`).
    (
        17,
        "CREATE TABLE IF NOT EXISTS _events (id BIGINT PRIMARY KEY NOT NULL, kind TEXT NOT NULL,
         topic TEXT NOT NULL, record_id TEXT, action TEXT NOT NULL, body TEXT NOT NULL,
         at_ms BIGINT NOT NULL);
     CREATE TABLE IF NOT EXISTS _event_head (position BIGINT NOT NULL);
     INSERT INTO _event_head (position) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM _event_head);",
    ),
    // Channel presence and stored channel messages (`channel_state`).
    (
        18,
        "CREATE TABLE IF NOT EXISTS _presence (channel TEXT NOT NULL, member TEXT NOT NULL,
         process TEXT NOT NULL, body TEXT NOT NULL, seen_ms BIGINT NOT NULL,
         PRIMARY KEY (channel, member));
     CREATE INDEX IF NOT EXISTS _presence_process ON _presence (process);
     CREATE TABLE IF NOT EXISTS _channel_messages (id BIGINT PRIMARY KEY NOT NULL,
         channel TEXT NOT NULL, sender TEXT NOT NULL, payload TEXT NOT NULL, created TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS _channel_messages_channel ON _channel_messages (channel, id);",
    ),
    // Bumped by every change of `_collections`: servers compare one number to know when to
    // reload the schema (`migrations::bump_schema_version`).
    (
        19,
        "CREATE TABLE IF NOT EXISTS _schema_version (version BIGINT NOT NULL);
     INSERT INTO _schema_version (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM _schema_version);",
    ),
];

/// Steps whose SQL differs on PostgreSQL.
const POSTGRES_STEPS: &[(i64, &str)] = &[(9, crate::search_index::ddl::POSTGRES)];

/// Brings the system tables up to date. On PostgreSQL an advisory lock makes concurrent
/// starts of several processes safe.
pub(crate) async fn upgrade(db: &dyn Database) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    if db.dialect() == Dialect::Postgres {
        tx.execute_script("SELECT pg_advisory_xact_lock(7262740001)")
            .await?;
    }
    tx.execute_script("CREATE TABLE IF NOT EXISTS _brigade_system (version INTEGER NOT NULL)")
        .await?;
    let mut sql = Sql::new(db.dialect());
    sql.push("SELECT COALESCE(MAX(version), 0) FROM _brigade_system");
    let current = match tx
        .query(&sql, &[ColType::Int])
        .await?
        .first()
        .and_then(|r| r.first())
    {
        Some(Value::Int(v)) => *v,
        _ => 0,
    };
    for (version, script) in STEPS.iter().filter(|(v, _)| *v > current) {
        let script = match db.dialect() {
            Dialect::Postgres => POSTGRES_STEPS
                .iter()
                .find(|(v, _)| v == version)
                .map_or(*script, |(_, s)| *s),
            Dialect::Sqlite => *script,
        };
        tx.execute_script(script).await?;
        let mut sql = Sql::new(db.dialect());
        sql.push("INSERT INTO _brigade_system (version) VALUES (")
            .bind(Value::Int(*version))
            .push(")");
        tx.execute(&sql).await?;
    }
    tx.commit().await
}

/// Reads a value of the key-value table.
pub(crate) async fn kv_get(conn: &mut dyn Conn, key: &str) -> Result<Option<String>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT value FROM _kv WHERE key = ")
        .bind(Value::Text(key.into()));
    Ok(conn
        .query(&sql, &[ColType::Text])
        .await?
        .pop()
        .and_then(|mut r| match r.pop() {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }))
}

/// Stores `value` under `key` unless a value is already there; returns the stored value.
pub(crate) async fn kv_get_or_insert(
    conn: &mut dyn Conn,
    key: &str,
    value: &str,
) -> Result<String, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("INSERT INTO _kv (key, value) VALUES (")
        .bind(Value::Text(key.into()))
        .push(", ")
        .bind(Value::Text(value.into()))
        .push(") ON CONFLICT (key) DO NOTHING");
    conn.execute(&sql).await?;
    kv_get(conn, key)
        .await?
        .ok_or_else(|| StoreError::internal(format!("kv `{key}` vanished")))
}

/// Sets `key` to `value`, replacing any previous value.
pub(crate) async fn kv_set(conn: &mut dyn Conn, key: &str, value: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("INSERT INTO _kv (key, value) VALUES (")
        .bind(Value::Text(key.into()))
        .push(", ")
        .bind(Value::Text(value.into()))
        .push(") ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    conn.execute(&sql).await?;
    Ok(())
}
