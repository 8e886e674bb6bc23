//! Relations to accounts: a relation field whose target is `users`
//! ([`ACCOUNTS_COLLECTION`]) points at an account in `_users`, the owner field PocketBase
//! and Supabase users build first. Accounts are not a collection (they have no rules, and
//! their rows hold password hashes), so this module is the one place that reads them for a
//! relation: checking that a written id names an account, and `expand`, which shows a
//! public profile only — the email only to that account itself and to superusers, never the
//! roles, hash or token state.

use std::collections::{BTreeMap, BTreeSet};

use brigade_core::schema::{ACCOUNTS_COLLECTION, Field, FieldType};
use brigade_core::value::Value;
use serde_json::{Map, Value as Json};

use crate::access::Access;
use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::Sql;

/// Whether `field` is a relation to accounts: its target is `users`, which no collection may
/// be named.
pub(crate) fn targets_accounts(field: &Field) -> bool {
    field.kind == FieldType::Relation
        && field.options.collection.as_deref() == Some(ACCOUNTS_COLLECTION)
}

/// Whether `id` names an account.
pub(crate) async fn exists(conn: &mut dyn Conn, id: &str) -> Result<bool, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT 1 FROM _users WHERE id = ")
        .bind(Value::Text(id.to_string()));
    Ok(!conn.query(&sql, &[ColType::Int]).await?.is_empty())
}

/// The public profiles of the accounts `ids`, by id, as `viewer` may see them: `id`,
/// `profile` and `created`; `email` too when the viewer is that account or a superuser.
pub(crate) async fn public_profiles(
    conn: &mut dyn Conn,
    ids: &BTreeSet<String>,
    viewer: &Access,
) -> Result<BTreeMap<String, Map<String, Json>>, StoreError> {
    let mut out = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT id, email, profile, created FROM _users WHERE id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Value::Text(id.clone()));
    }
    sql.push(")");
    let rows = conn
        .query(
            &sql,
            &[ColType::Text, ColType::Text, ColType::Text, ColType::Text],
        )
        .await?;
    let viewer_id = match viewer {
        Access::Superuser => None,
        Access::Caller(ctx) => match (ctx.auth.get("id"), ctx.auth.get("kind")) {
            (Some(Json::String(id)), Some(Json::String(kind))) if kind == "user" => Some(id),
            _ => None,
        },
    };
    for row in rows {
        let [
            Value::Text(id),
            Value::Text(email),
            Value::Text(profile),
            Value::Text(created),
        ] = &row[..]
        else {
            return Err(StoreError::internal(format!(
                "malformed account row for expand: {row:?}"
            )));
        };
        let profile: Json = serde_json::from_str(profile).map_err(|e| {
            StoreError::internal_from(format!("account {id} has a corrupt profile"), e)
        })?;
        let mut view = Map::new();
        view.insert("id".into(), Json::String(id.clone()));
        let sees_email = matches!(viewer, Access::Superuser) || viewer_id.is_some_and(|v| v == id);
        if sees_email {
            view.insert("email".into(), Json::String(email.clone()));
        }
        view.insert("profile".into(), profile);
        view.insert("created".into(), Json::String(created.clone()));
        out.insert(id.clone(), view);
    }
    Ok(out)
}
