//! The audit log in `_audit`: who did what, when, from where, reached through
//! [`Store::audit`]. Entries are plain rows, and the table is described as a read-only
//! [`Collection`] so `GET /api/audit` gets the same filter, sort and paging as any collection.

use std::sync::{Arc, OnceLock};

use brigade_core::schema::{Collection, Field, FieldOptions, FieldType, Rules};
use brigade_core::value::Value;
use serde_json::Value as Json;

use crate::conn::Conn;
use crate::error::StoreError;
use crate::handle::{Page, Store};
use crate::query::{ListParams, parse_fields, parse_sort};
use crate::records;
use crate::sql::Sql;

/// The audit log. Borrowed from a [`Store`] by [`Store::audit`].
#[derive(Clone, Copy)]
pub struct Audit<'a> {
    store: &'a Store,
}

impl Store {
    /// The audit log.
    pub fn audit(&self) -> Audit<'_> {
        Audit { store: self }
    }
}

/// What an audit entry records. Stored and filtered by its name (`auth.login`, ...), which
/// is stable: entries outlive releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A password sign-in.
    AuthLogin,
    /// A sign-in with a wrong email or password.
    AuthLoginFailed,
    /// Sign-ins refused for a while after too many failures.
    AuthLoginLocked,
    /// A self-registration.
    AuthRegister,
    /// A refresh token exchanged for a new pair.
    AuthRefresh,
    /// A used refresh token replayed: its login is revoked.
    AuthRefreshReused,
    /// A refresh token revoked by its holder.
    AuthLogout,
    /// Profile fields changed by the account.
    AuthProfileUpdate,
    /// A password changed by the account.
    AuthPasswordChange,
    /// A reset email asked for.
    AuthPasswordResetRequested,
    /// A password set with a reset token.
    AuthPasswordReset,
    /// A sign-in through an OpenID Connect provider.
    AuthOidcLogin,
    /// A refused OpenID Connect callback.
    AuthOidcLoginFailed,
    /// A collection created.
    CollectionCreate,
    /// A collection's fields, indexes or rules changed.
    CollectionUpdate,
    /// A collection dropped.
    CollectionDelete,
    /// An account's roles changed.
    UserRoles,
    /// An API key created.
    KeyCreate,
    /// An API key revoked.
    KeyDelete,
    /// A record created.
    RecordCreate,
    /// A record changed.
    RecordUpdate,
    /// A record deleted.
    RecordDelete,
    /// A batch of record writes.
    RecordBatch,
}

impl AuditAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::AuthLogin => "auth.login",
            AuditAction::AuthLoginFailed => "auth.login_failed",
            AuditAction::AuthLoginLocked => "auth.login_locked",
            AuditAction::AuthRegister => "auth.register",
            AuditAction::AuthRefresh => "auth.refresh",
            AuditAction::AuthRefreshReused => "auth.refresh_reused",
            AuditAction::AuthLogout => "auth.logout",
            AuditAction::AuthProfileUpdate => "auth.profile_update",
            AuditAction::AuthPasswordChange => "auth.password_change",
            AuditAction::AuthPasswordResetRequested => "auth.password_reset_requested",
            AuditAction::AuthPasswordReset => "auth.password_reset",
            AuditAction::AuthOidcLogin => "auth.oidc_login",
            AuditAction::AuthOidcLoginFailed => "auth.oidc_login_failed",
            AuditAction::CollectionCreate => "collection.create",
            AuditAction::CollectionUpdate => "collection.update",
            AuditAction::CollectionDelete => "collection.delete",
            AuditAction::UserRoles => "user.roles",
            AuditAction::KeyCreate => "key.create",
            AuditAction::KeyDelete => "key.delete",
            AuditAction::RecordCreate => "record.create",
            AuditAction::RecordUpdate => "record.update",
            AuditAction::RecordDelete => "record.delete",
            AuditAction::RecordBatch => "record.batch",
        }
    }

    /// Whether it is a security event, whose entry is never dropped: everything but record
    /// writes (a new action is kept unless it is declared droppable here).
    pub fn is_security(self) -> bool {
        !matches!(
            self,
            AuditAction::RecordCreate
                | AuditAction::RecordUpdate
                | AuditAction::RecordDelete
                | AuditAction::RecordBatch
        )
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audited action.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub action: AuditAction,
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
    pub fn new(action: AuditAction) -> Self {
        AuditEntry {
            action,
            actor: None,
            ip: None,
            request_id: None,
            target: None,
            detail: Json::Null,
            time: brigade_core::time::now(),
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
                .bind(Value::Text(e.action.as_str().into()))
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

impl Audit<'_> {
    /// Appends audit entries in one transaction.
    ///
    /// # Errors
    /// Database errors.
    pub async fn record(self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.db.begin().await?;
        insert_many(tx.as_mut(), entries).await?;
        tx.commit().await
    }

    /// Deletes audit entries older than `before` (RFC 3339); returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune(self, before: &str) -> Result<u64, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let n = prune(tx.as_mut(), before).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Lists audit entries with the filter language (`action = 'auth.login_failed'`),
    /// `sort` (default newest first) and paging.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for bad parameters.
    pub async fn list(self, params: &ListParams) -> Result<Page, StoreError> {
        let c = collection();
        let lookup = |_: &str| None;
        let (page, per_page, skip_total) = params.paging()?;
        let sort = parse_sort(&c, Some(params.sort.as_deref().unwrap_or("-created")))?;
        let filter = match params
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(src) => Some(
                records::filter_sql(
                    self.store.dialect(),
                    &c,
                    src,
                    &lookup,
                    &crate::access::Access::Superuser,
                    None,
                )?
                .sql,
            ),
            None => None,
        };
        let mut conn = self.store.db.read().await?;
        let fields = parse_fields(&c, params.fields.as_deref())?;
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
}
