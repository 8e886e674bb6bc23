//! Accounts in `_users`. Passwords arrive already hashed (the auth crate owns Argon2id);
//! emails are stored lowercased so lookups are case-insensitive on both backends.
//!
//! Each account has a token version, carried in its access tokens. Every write that must end
//! existing access — a password or role change, logout, refresh-token reuse — increments it
//! in the same statement, so tokens issued before stop verifying (see `brigade_auth::versions`).

use brigade_core::value::Value;

use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::Sql;

/// A stored account.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub created: String,
    pub updated: String,
    /// Free-form profile fields given at registration (`name`, ...).
    pub profile: serde_json::Map<String, serde_json::Value>,
    /// Access tokens issued at another version are no longer accepted.
    pub token_version: i64,
}

const COLUMNS: &str = "id, email, password_hash, roles, created, updated, profile, token_version";
const TYPES: &[ColType] = &[
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Int,
];

fn to_user(mut row: Vec<Value>) -> Result<UserRow, StoreError> {
    let malformed =
        |what: &str| StoreError::internal(format!("a row of _users is malformed: {what}"));
    let Some(Value::Int(token_version)) = row.pop() else {
        return Err(malformed("token_version is not an integer"));
    };
    let mut it = row.into_iter();
    let mut text = |column: &str| match it.next() {
        Some(Value::Text(s)) => Ok(s),
        _ => Err(malformed(&format!("{column} is not text"))),
    };
    let id = text("id")?;
    let email = text("email")?;
    let password_hash = text("password_hash")?;
    let roles = serde_json::from_str(&text("roles")?)
        .map_err(|e| malformed(&format!("roles of {id} are not a JSON list: {e}")))?;
    let created = text("created")?;
    let updated = text("updated")?;
    let profile = serde_json::from_str(&text("profile")?)
        .map_err(|e| malformed(&format!("profile of {id} is not a JSON object: {e}")))?;
    Ok(UserRow {
        id,
        email,
        password_hash,
        roles,
        created,
        updated,
        profile,
        token_version,
    })
}

pub(crate) async fn insert(
    conn: &mut dyn Conn,
    email: &str,
    password_hash: &str,
    roles: &[String],
    profile: &serde_json::Map<String, serde_json::Value>,
) -> Result<UserRow, StoreError> {
    let now = brigade_core::time::now();
    let roles = serde_json::to_string(roles)
        .map_err(|e| StoreError::internal_from("serializing roles", e))?;
    let profile = serde_json::to_string(profile)
        .map_err(|e| StoreError::internal_from("serializing a profile", e))?;
    let mut sql = Sql::new(conn.dialect());
    sql.push(
        "INSERT INTO _users (id, email, password_hash, roles, created, updated, profile) VALUES (",
    )
    .bind(Value::Text(brigade_core::ids::new_id()))
    .push(", ")
    .bind(Value::Text(email.to_lowercase()))
    .push(", ")
    .bind(Value::Text(password_hash.into()))
    .push(", ")
    .bind(Value::Text(roles))
    .push(", ")
    .bind(Value::Text(now.clone()))
    .push(", ")
    .bind(Value::Text(now))
    .push(", ")
    .bind(Value::Text(profile))
    .push(&format!(") RETURNING {COLUMNS}"));
    let row = conn.query(&sql, TYPES).await.map_err(|e| match e {
        StoreError::Conflict { .. } => {
            StoreError::conflict("email", "an account with this email already exists")
        }
        other => other,
    })?;
    row.into_iter()
        .next()
        .ok_or_else(|| StoreError::internal("INSERT returned no user"))
        .and_then(to_user)
}

pub(crate) async fn by_email(
    conn: &mut dyn Conn,
    email: &str,
) -> Result<Option<UserRow>, StoreError> {
    if email.contains('\0') {
        return Ok(None); // no stored address contains NUL, and PostgreSQL rejects it in text
    }
    select_one(conn, "email", email.to_lowercase()).await
}

pub(crate) async fn by_id(conn: &mut dyn Conn, id: &str) -> Result<Option<UserRow>, StoreError> {
    select_one(conn, "id", id.to_string()).await
}

/// The user whose `column` (a constant of ours) equals `value`.
async fn select_one(
    conn: &mut dyn Conn,
    column: &'static str,
    value: String,
) -> Result<Option<UserRow>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!("SELECT {COLUMNS} FROM _users WHERE {column} = "))
        .bind(Value::Text(value));
    conn.query(&sql, TYPES)
        .await?
        .into_iter()
        .next()
        .map(to_user)
        .transpose()
}

/// Replaces the password hash and ends the account's access tokens; the new token version,
/// or `None` for an unknown account.
pub(crate) async fn set_password(
    conn: &mut dyn Conn,
    id: &str,
    password_hash: &str,
) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _users SET password_hash = ")
        .bind(Value::Text(password_hash.into()))
        .push(", token_version = token_version + 1, updated = ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(" WHERE id = ")
        .bind(Value::Text(id.into()))
        .push(" RETURNING token_version");
    version_of(conn, &sql).await
}

/// Ends the account's access tokens (logout, refresh-token reuse); the new token version,
/// or `None` for an unknown account.
pub(crate) async fn bump_token_version(
    conn: &mut dyn Conn,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _users SET token_version = token_version + 1 WHERE id = ")
        .bind(Value::Text(id.into()))
        .push(" RETURNING token_version");
    version_of(conn, &sql).await
}

/// The current token version of an account, `None` when it does not exist.
pub(crate) async fn token_version(
    conn: &mut dyn Conn,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT token_version FROM _users WHERE id = ")
        .bind(Value::Text(id.into()));
    version_of(conn, &sql).await
}

async fn version_of(conn: &mut dyn Conn, sql: &Sql) -> Result<Option<i64>, StoreError> {
    Ok(
        match conn
            .query(sql, &[ColType::Int])
            .await?
            .first()
            .and_then(|r| r.first())
        {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        },
    )
}

pub(crate) async fn count_with_role(conn: &mut dyn Conn, role: &str) -> Result<i64, StoreError> {
    // Roles are a small JSON array of strings; a quoted match is exact.
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT COUNT(*) FROM _users WHERE roles LIKE ")
        .bind(Value::Text(format!("%\"{role}\"%")));
    Ok(
        match conn
            .query(&sql, &[ColType::Int])
            .await?
            .first()
            .and_then(|r| r.first())
        {
            Some(Value::Int(n)) => *n,
            _ => 0,
        },
    )
}

pub(crate) async fn set_profile(
    conn: &mut dyn Conn,
    id: &str,
    profile: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), StoreError> {
    let profile = serde_json::to_string(profile)
        .map_err(|e| StoreError::internal_from("serializing a profile", e))?;
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _users SET profile = ")
        .bind(Value::Text(profile))
        .push(", updated = ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(" WHERE id = ")
        .bind(Value::Text(id.into()));
    conn.execute(&sql).await?;
    Ok(())
}

/// Replaces the roles and ends the account's access tokens (they carry the old roles); the
/// new token version, or `None` for an unknown account.
pub(crate) async fn set_roles(
    conn: &mut dyn Conn,
    id: &str,
    roles: &[String],
) -> Result<Option<i64>, StoreError> {
    let roles = serde_json::to_string(roles)
        .map_err(|e| StoreError::internal_from("serializing roles", e))?;
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _users SET roles = ")
        .bind(Value::Text(roles))
        .push(", token_version = token_version + 1, updated = ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(" WHERE id = ")
        .bind(Value::Text(id.into()))
        .push(" RETURNING token_version");
    version_of(conn, &sql).await
}

pub(crate) async fn page(
    conn: &mut dyn Conn,
    offset: i64,
    limit: i64,
) -> Result<(Vec<UserRow>, i64), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!("SELECT {COLUMNS} FROM _users ORDER BY id LIMIT "))
        .bind(Value::Int(limit))
        .push(" OFFSET ")
        .bind(Value::Int(offset));
    let users = conn
        .query(&sql, TYPES)
        .await?
        .into_iter()
        .map(to_user)
        .collect::<Result<_, _>>()?;
    let mut count = Sql::new(conn.dialect());
    count.push("SELECT COUNT(*) FROM _users");
    let total = match conn
        .query(&count, &[ColType::Int])
        .await?
        .first()
        .and_then(|r| r.first())
    {
        Some(Value::Int(n)) => *n,
        _ => 0,
    };
    Ok((users, total))
}
