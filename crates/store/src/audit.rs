//! The audit log in `_audit`: who did what, when, from where. Entries are plain rows, and the
//! table is described as a read-only [`Collection`] so `GET /api/audit` gets the same filter,
//! sort and paging as any collection.

use std::sync::{Arc, OnceLock};

use brigade_core::schema::{Collection, Field, FieldOptions, FieldType, Rules};
use brigade_core::value::Value;
use serde_json::Value as Json;

use crate::conn::Conn;
use crate::error::StoreError;
use crate::sql::Sql;

/// One audited action.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// e.g. `auth.login`, `auth.login_failed`, `record.create`, `collection.update`.
    pub action: String,
    /// The user, key or email behind the action.
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// What was acted on, e.g. `posts/01a2...`.
    pub target: Option<String>,
    pub detail: Json,
    /// When it happened (canonical RFC 3339); set by [`AuditEntry::new`].
    pub time: String,
}

impl AuditEntry {
    /// An entry stamped with the current time.
    pub fn new(action: &str) -> Self {
        AuditEntry {
            action: action.into(),
            time: brigade_core::time::now(),
            detail: Json::Null,
            ..Default::default()
        }
    }
}

/// `_audit` as a read-only collection.
pub fn collection() -> Arc<Collection> {
    static AUDIT: OnceLock<Arc<Collection>> = OnceLock::new();
    AUDIT
        .get_or_init(|| {
            let field = |name: &str, kind: FieldType| Field {
                id: format!("audit_{name}"),
                name: name.into(),
                kind,
                required: false,
                unique: false,
                default: None,
                options: FieldOptions::default(),
            };
            Arc::new(Collection {
                id: "audit".into(),
                name: "_audit".into(),
                fields: vec![
                    field("action", FieldType::Text),
                    field("actor", FieldType::Text),
                    field("ip", FieldType::Text),
                    field("request_id", FieldType::Text),
                    field("target", FieldType::Text),
                    field("detail", FieldType::Json),
                ],
                indexes: Vec::new(),
                rules: Rules::default(),
                pipeline: None,
                system_columns: true,
                created: String::new(),
                updated: String::new(),
            })
        })
        .clone()
}

pub(crate) async fn insert_many(
    conn: &mut dyn Conn,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Text);
    for chunk in entries.chunks(100) {
        let mut sql = Sql::new(conn.dialect());
        sql.push("INSERT INTO _audit (id, created, updated, action, actor, ip, request_id, target, detail) VALUES ");
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(Value::Text(brigade_core::ids::new_id()))
                .push(", ")
                .bind(Value::Text(e.time.clone()))
                .push(", ")
                .bind(Value::Text(e.time.clone()))
                .push(", ")
                .bind(Value::Text(e.action.clone()))
                .push(", ")
                .bind(text(&e.actor))
                .push(", ")
                .bind(text(&e.ip))
                .push(", ")
                .bind(text(&e.request_id))
                .push(", ")
                .bind(text(&e.target))
                .push(", ")
                .bind(if e.detail.is_null() {
                    Value::Null
                } else {
                    Value::Text(e.detail.to_string())
                })
                .push(")");
        }
        conn.execute(&sql).await?;
    }
    Ok(())
}

pub(crate) async fn prune(conn: &mut dyn Conn, before: &str) -> Result<u64, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("DELETE FROM _audit WHERE created < ")
        .bind(Value::Text(before.into()));
    conn.execute(&sql).await
}
