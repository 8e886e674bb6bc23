//! Pending OpenID Connect logins in `_oidc_states`: what the callback needs to finish a login
//! (PKCE verifier, nonce, where to go afterwards). They live in the database rather than in
//! process memory so that a login started on one server process can be completed on another,
//! and the `state` is stored only as a hash, like refresh tokens. Each row is taken (deleted)
//! exactly once, which is what makes a replayed callback fail.

use brigade_core::value::Value;

use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::Sql;

/// A login that was sent to a provider and has not come back yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// SHA-256 of the `state` parameter (hex).
    pub state_hash: String,
    /// The `[auth.oidc.NAME]` the login was started with.
    pub provider: String,
    /// The PKCE `code_verifier` sent with the token request.
    pub pkce_verifier: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// A relative path the client asked to return to after login.
    pub redirect_to: Option<String>,
    /// RFC 3339; the callback is refused after this.
    pub expires: String,
}

const COLUMNS: &str = "state_hash, provider, pkce_verifier, nonce, redirect_to, expires";

/// Stores a pending login and drops the expired ones (abandoned logins never come back).
pub(crate) async fn insert(conn: &mut dyn Conn, login: &PendingLogin) -> Result<(), StoreError> {
    let now = brigade_core::time::now();
    let mut sql = Sql::new(conn.dialect());
    sql.push("DELETE FROM _oidc_states WHERE expires <= ")
        .bind(Value::Text(now.clone()));
    conn.execute(&sql).await?;
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!(
        "INSERT INTO _oidc_states ({COLUMNS}, created) VALUES ("
    ))
    .bind(Value::Text(login.state_hash.clone()))
    .push(", ")
    .bind(Value::Text(login.provider.clone()))
    .push(", ")
    .bind(Value::Text(login.pkce_verifier.clone()))
    .push(", ")
    .bind(Value::Text(login.nonce.clone()))
    .push(", ")
    .bind(login.redirect_to.clone().map_or(Value::Null, Value::Text))
    .push(", ")
    .bind(Value::Text(login.expires.clone()))
    .push(", ")
    .bind(Value::Text(now))
    .push(")");
    conn.execute(&sql).await?;
    Ok(())
}

/// Deletes the pending login with this state hash and returns it if it had not expired.
/// Deleting first means two concurrent callbacks with the same state cannot both succeed.
pub(crate) async fn take(
    conn: &mut dyn Conn,
    state_hash: &str,
) -> Result<Option<PendingLogin>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("DELETE FROM _oidc_states WHERE state_hash = ")
        .bind(Value::Text(state_hash.into()))
        .push(&format!(" RETURNING {COLUMNS}"));
    let row = conn.query(&sql, &[ColType::Text; 6]).await?.pop();
    let Some(row) = row else {
        return Ok(None);
    };
    let mut it = row.into_iter().map(|v| match v {
        Value::Text(s) => Some(s),
        _ => None,
    });
    let mut text = || it.next().flatten();
    let login = (|| {
        Some(PendingLogin {
            state_hash: text()?,
            provider: text()?,
            pkce_verifier: text()?,
            nonce: text()?,
            redirect_to: text(),
            expires: text()?,
        })
    })();
    Ok(login.filter(|l| l.expires > brigade_core::time::now()))
}
