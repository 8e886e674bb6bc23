//! Refresh tokens in `_refresh_tokens`: stored as hashes only, rotated on every use, grouped
//! in families so that replaying a used token revokes every token of that login (and the
//! account's access tokens, see `users::bump_token_version`). Also the single-use
//! password-reset tokens in `_password_resets`, at most one pending per account.

use brigade_core::value::Value;

use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::Sql;
use crate::users;

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// Valid: the token is spent and a successor was stored; the user id is returned.
    Rotated { user_id: String },
    /// Already used or revoked: the whole family is now revoked, and so are the access
    /// tokens of its user.
    Reused { user_id: String },
    /// Unknown or expired.
    Invalid,
}

pub(crate) async fn insert(
    conn: &mut dyn Conn,
    user_id: &str,
    family: &str,
    token_hash: &str,
    expires: &str,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push(
        "INSERT INTO _refresh_tokens (id, user_id, family, token_hash, expires, created) VALUES (",
    )
    .bind(Value::Text(brigade_core::ids::new_id()))
    .push(", ")
    .bind(Value::Text(user_id.into()))
    .push(", ")
    .bind(Value::Text(family.into()))
    .push(", ")
    .bind(Value::Text(token_hash.into()))
    .push(", ")
    .bind(Value::Text(expires.into()))
    .push(", ")
    .bind(Value::Text(brigade_core::time::now()))
    .push(")");
    conn.execute(&sql).await?;
    Ok(())
}

pub(crate) async fn revoke_family(conn: &mut dyn Conn, family: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _refresh_tokens SET revoked = ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(" WHERE family = ")
        .bind(Value::Text(family.into()))
        .push(" AND revoked IS NULL");
    conn.execute(&sql).await?;
    Ok(())
}

/// `(family, user_id, expires, used, revoked)` of a token hash.
pub(crate) async fn find(
    conn: &mut dyn Conn,
    token_hash: &str,
) -> Result<Option<[Value; 5]>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push(
        "SELECT family, user_id, expires, used, revoked FROM _refresh_tokens WHERE token_hash = ",
    )
    .bind(Value::Text(token_hash.into()));
    let rows = conn.query(&sql, &[ColType::Text; 5]).await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| <[Value; 5]>::try_from(r).ok()))
}

/// Spends `old_hash` and stores `new_hash` in the same family, in the caller's transaction.
pub(crate) async fn rotate(
    conn: &mut dyn Conn,
    old_hash: &str,
    new_hash: &str,
    new_expires: &str,
) -> Result<Rotation, StoreError> {
    let Some(
        [
            Value::Text(family),
            Value::Text(user_id),
            Value::Text(expires),
            used,
            revoked,
        ],
    ) = find(conn, old_hash).await?
    else {
        return Ok(Rotation::Invalid);
    };
    if used != Value::Null || revoked != Value::Null {
        revoke_family(conn, &family).await?;
        users::bump_token_version(conn, &user_id).await?;
        return Ok(Rotation::Reused { user_id });
    }
    let now = brigade_core::time::now();
    if expires <= now {
        return Ok(Rotation::Invalid);
    }
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _refresh_tokens SET used = ")
        .bind(Value::Text(now))
        .push(" WHERE token_hash = ")
        .bind(Value::Text(old_hash.into()))
        .push(" AND used IS NULL AND revoked IS NULL");
    if conn.execute(&sql).await? != 1 {
        // Spent concurrently by another request: treat as reuse.
        revoke_family(conn, &family).await?;
        users::bump_token_version(conn, &user_id).await?;
        return Ok(Rotation::Reused { user_id });
    }
    insert(conn, &user_id, &family, new_hash, new_expires).await?;
    Ok(Rotation::Rotated { user_id })
}

/// Revokes every refresh token of a user (password change or reset).
pub(crate) async fn revoke_user(conn: &mut dyn Conn, user_id: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _refresh_tokens SET revoked = ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(" WHERE user_id = ")
        .bind(Value::Text(user_id.into()))
        .push(" AND revoked IS NULL");
    conn.execute(&sql).await?;
    Ok(())
}

/// Stores a reset token, replacing the account's pending one (a unique index over unused
/// resets per user makes this hold under concurrent requests too).
pub(crate) async fn insert_reset(
    conn: &mut dyn Conn,
    user_id: &str,
    token_hash: &str,
    expires: &str,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("INSERT INTO _password_resets (token_hash, user_id, expires, created) VALUES (")
        .bind(Value::Text(token_hash.into()))
        .push(", ")
        .bind(Value::Text(user_id.into()))
        .push(", ")
        .bind(Value::Text(expires.into()))
        .push(", ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(
            ") ON CONFLICT (user_id) WHERE used IS NULL DO UPDATE SET \
             token_hash = excluded.token_hash, expires = excluded.expires, created = excluded.created",
        );
    conn.execute(&sql).await?;
    Ok(())
}

/// Spends a reset token; returns its user when it was unused and unexpired.
pub(crate) async fn use_reset(
    conn: &mut dyn Conn,
    token_hash: &str,
) -> Result<Option<String>, StoreError> {
    let now = brigade_core::time::now();
    let mut sql = Sql::new(conn.dialect());
    sql.push("UPDATE _password_resets SET used = ")
        .bind(Value::Text(now.clone()))
        .push(" WHERE token_hash = ")
        .bind(Value::Text(token_hash.into()))
        .push(" AND used IS NULL AND expires > ")
        .bind(Value::Text(now))
        .push(" RETURNING user_id");
    Ok(conn
        .query(&sql, &[ColType::Text])
        .await?
        .into_iter()
        .next()
        .and_then(|mut r| match r.pop() {
            Some(Value::Text(id)) => Some(id),
            _ => None,
        }))
}
