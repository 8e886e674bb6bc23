//! API keys in `_api_keys`: stored as SHA-256 hashes, with roles, an expiry and a
//! `last_used` time. Deleting a key revokes it. Every key is attributed to the account that
//! made it (`created_by`; a key made with another key belongs to that key's account): a key
//! never acts with roles that account no longer holds, and taking a role from the account
//! revokes its keys.

use brigade_core::value::Value;

use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::Sql;

/// A stored key (never the key itself).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub last_used: Option<String>,
    pub created: String,
}

const COLUMNS: &str = "id, name, roles, created_by, expires, last_used, created";
const TYPES: &[ColType] = &[ColType::Text; 7];

fn text(v: Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

fn to_row(row: Vec<Value>) -> Option<ApiKeyRow> {
    let mut it = row.into_iter();
    Some(ApiKeyRow {
        id: text(it.next()?)?,
        name: text(it.next()?)?,
        roles: serde_json::from_str(&text(it.next()?)?).unwrap_or_default(),
        created_by: text(it.next()?)?,
        expires_at: it.next().and_then(text),
        last_used: it.next().and_then(text),
        created: text(it.next()?)?,
    })
}

pub(crate) async fn insert(
    conn: &mut dyn Conn,
    name: &str,
    key_hash: &str,
    roles: &[String],
    created_by: &str,
    expires: Option<&str>,
) -> Result<ApiKeyRow, StoreError> {
    let roles = serde_json::to_string(roles)
        .map_err(|e| StoreError::internal_from("serializing roles", e))?;
    let mut sql = Sql::new(conn.dialect());
    sql.push(
        "INSERT INTO _api_keys (id, name, key_hash, roles, created_by, expires, created) VALUES (",
    )
    .bind(Value::Text(brigade_core::ids::new_id()))
    .push(", ")
    .bind(Value::Text(name.into()))
    .push(", ")
    .bind(Value::Text(key_hash.into()))
    .push(", ")
    .bind(Value::Text(roles))
    .push(", ")
    .bind(Value::Text(created_by.into()))
    .push(", ")
    .bind(expires.map_or(Value::Null, |e| Value::Text(e.into())))
    .push(", ")
    .bind(Value::Text(brigade_core::time::now()))
    .push(&format!(") RETURNING {COLUMNS}"));
    conn.query(&sql, TYPES)
        .await?
        .into_iter()
        .next()
        .and_then(to_row)
        .ok_or_else(|| StoreError::internal("INSERT returned no key"))
}

/// A key found by its hash, with the current roles of the account it belongs to (`None`
/// when that account no longer exists).
#[derive(Debug, Clone)]
pub struct ApiKeyLookup {
    pub key: ApiKeyRow,
    pub owner_roles: Option<Vec<String>>,
}

pub(crate) async fn by_hash_with_owner(
    conn: &mut dyn Conn,
    key_hash: &str,
) -> Result<Option<ApiKeyLookup>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push(
        "SELECT k.id, k.name, k.roles, k.created_by, k.expires, k.last_used, k.created, u.roles \
         FROM _api_keys k LEFT JOIN _users u ON u.id = k.created_by WHERE k.key_hash = ",
    )
    .bind(Value::Text(key_hash.into()));
    Ok(conn
        .query(&sql, &[ColType::Text; 8])
        .await?
        .into_iter()
        .next()
        .and_then(|mut row| {
            let owner_roles = row
                .pop()
                .and_then(text)
                .map(|r| serde_json::from_str(&r).unwrap_or_default());
            Some(ApiKeyLookup {
                key: to_row(row)?,
                owner_roles,
            })
        }))
}

/// Revokes every key attributed to `owner`; how many there were.
pub(crate) async fn delete_by_owner(conn: &mut dyn Conn, owner: &str) -> Result<u64, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("DELETE FROM _api_keys WHERE created_by = ")
        .bind(Value::Text(owner.into()));
    conn.execute(&sql).await
}

pub(crate) async fn list(conn: &mut dyn Conn) -> Result<Vec<ApiKeyRow>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!("SELECT {COLUMNS} FROM _api_keys ORDER BY id"));
    Ok(conn
        .query(&sql, TYPES)
        .await?
        .into_iter()
        .filter_map(to_row)
        .collect())
}

pub(crate) async fn delete(conn: &mut dyn Conn, id: &str) -> Result<bool, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("DELETE FROM _api_keys WHERE id = ")
        .bind(Value::Text(id.into()));
    Ok(conn.execute(&sql).await? > 0)
}

pub(crate) async fn touch(conn: &mut dyn Conn, id: &str, at: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _api_keys SET last_used = ")
        .bind(Value::Text(at.into()))
        .push(" WHERE id = ")
        .bind(Value::Text(id.into()));
    conn.execute(&sql).await?;
    Ok(())
}
