//! Identities at OpenID Connect providers linked to accounts, in `_oidc_links`: one row per
//! `(provider, subject)`, at most one identity per provider and account. A returning user
//! is recognised by the provider's stable `sub`, never by an email address, which a provider
//! may reassign or let anyone claim.

use brigade_core::value::Value;

use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::Sql;
use crate::users::UserRow;

/// The tables of this module (portable SQL): step 11 of the system tables.
pub(crate) const DDL: &str = "CREATE TABLE IF NOT EXISTS _oidc_links (provider TEXT NOT NULL,
     subject TEXT NOT NULL, user_id TEXT NOT NULL REFERENCES _users (id) ON DELETE CASCADE,
     created TEXT NOT NULL, PRIMARY KEY (provider, subject));
 CREATE UNIQUE INDEX IF NOT EXISTS _oidc_links_user ON _oidc_links (user_id, provider);";

/// The account linked to `subject` at `provider`.
pub(crate) async fn user_id(
    conn: &mut dyn Conn,
    provider: &str,
    subject: &str,
) -> Result<Option<String>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT user_id FROM _oidc_links WHERE provider = ")
        .bind(Value::Text(provider.into()))
        .push(" AND subject = ")
        .bind(Value::Text(subject.into()));
    Ok(first_text(conn.query(&sql, &[ColType::Text]).await?))
}

/// The subject at `provider` already linked to the account `user_id`.
pub(crate) async fn subject_of(
    conn: &mut dyn Conn,
    provider: &str,
    user_id: &str,
) -> Result<Option<String>, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT subject FROM _oidc_links WHERE provider = ")
        .bind(Value::Text(provider.into()))
        .push(" AND user_id = ")
        .bind(Value::Text(user_id.into()));
    Ok(first_text(conn.query(&sql, &[ColType::Text]).await?))
}

/// Links `subject` at `provider` to `user_id`; `false` when that identity or that account's
/// identity at `provider` is already linked (by a concurrent login, for instance).
pub(crate) async fn insert(
    conn: &mut dyn Conn,
    provider: &str,
    subject: &str,
    user_id: &str,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("INSERT INTO _oidc_links (provider, subject, user_id, created) VALUES (")
        .bind(Value::Text(provider.into()))
        .push(", ")
        .bind(Value::Text(subject.into()))
        .push(", ")
        .bind(Value::Text(user_id.into()))
        .push(", ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(") ON CONFLICT DO NOTHING");
    Ok(conn.execute(&sql).await? == 1)
}

fn first_text(rows: Vec<Vec<Value>>) -> Option<String> {
    rows.into_iter()
        .next()
        .and_then(|row| row.into_iter().next())
        .and_then(|v| match v {
            Value::Text(s) => Some(s),
            _ => None,
        })
}

/// Who an OpenID Connect login is, as decided by [`crate::Accounts::oidc_login`].
#[derive(Debug, Clone)]
pub enum OidcLogin {
    /// The identity was linked before: its account.
    Known(UserRow),
    /// First login of this identity, now linked to the existing role-less account that has
    /// the verified email.
    Linked(UserRow),
    /// First login of this identity: a new account without roles, linked to it.
    Created(UserRow),
    /// Not linked, and the provider does not vouch for an email address.
    Unverified,
    /// The account with that email holds roles: it is never linked automatically.
    Privileged,
    /// The account with that email is already linked to another identity at this provider.
    OtherIdentity,
}
