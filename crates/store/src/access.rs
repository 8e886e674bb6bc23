//! Collection rules: which rule of a collection applies to an operation, and its SQL.
//!
//! This is the one enforcement point: list, view, create, update, delete, expand and batch
//! all ask [`rule_for`], so a rule cannot be bypassed through another door. List and view
//! rules become part of the query's `WHERE`, never a post-filter.

use brigade_core::schema::Collection;
use serde_json::{Map, Value as Json};

use crate::error::StoreError;
use crate::query::{Lookup, RequestContext};
use crate::records::filter_sql;
use crate::sql::{Dialect, Sql};

/// Who performs an operation.
#[derive(Debug, Clone)]
pub enum Access {
    /// Superusers (role `admin`): rules do not apply.
    Superuser,
    /// Anyone else; `auth` is empty for anonymous callers.
    Caller(RequestContext),
}

impl Access {
    /// An anonymous caller.
    pub fn anonymous() -> Self {
        Access::Caller(RequestContext::default())
    }

    fn is_anonymous(&self) -> bool {
        matches!(self, Access::Caller(ctx) if ctx.auth.is_empty())
    }

    /// The error for a refused operation: 401-ish for anonymous callers, 403-ish otherwise.
    pub(crate) fn refused(&self, message: impl Into<String>) -> StoreError {
        StoreError::Forbidden {
            anonymous: self.is_anonymous(),
            message: message.into(),
        }
    }
}

/// The operations rules exist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOp {
    List,
    View,
    Create,
    Update,
    Delete,
}

impl RuleOp {
    fn name(self) -> &'static str {
        match self {
            RuleOp::List => "list",
            RuleOp::View => "view",
            RuleOp::Create => "create",
            RuleOp::Update => "update",
            RuleOp::Delete => "delete",
        }
    }
}

/// `Ok(None)`: no restriction. `Ok(Some(sql))`: rows must match `sql`.
///
/// # Errors
/// [`StoreError::Forbidden`] when the rule is `null` (superusers only) for a non-superuser;
/// [`StoreError::Invalid`] if a stored rule no longer compiles (e.g. a field was dropped).
pub(crate) fn rule_for(
    dialect: Dialect,
    c: &Collection,
    op: RuleOp,
    access: &Access,
    lookup: Lookup<'_>,
    body: Option<&Map<String, Json>>,
) -> Result<Option<Sql>, StoreError> {
    let Access::Caller(ctx) = access else {
        return Ok(None);
    };
    let rule = match op {
        RuleOp::List => &c.rules.list,
        RuleOp::View => &c.rules.view,
        RuleOp::Create => &c.rules.create,
        RuleOp::Update => &c.rules.update,
        RuleOp::Delete => &c.rules.delete,
    };
    let Some(source) = rule else {
        return Err(access.refused(format!(
            "only superusers may {} records of `{}`",
            op.name(),
            c.name
        )));
    };
    if source.trim().is_empty() {
        return Ok(None);
    }
    let mut ctx = ctx.clone();
    if let Some(body) = body {
        ctx.body = body.clone();
    }
    filter_sql(dialect, c, source, lookup, Some(&ctx))
        .map(Some)
        .map_err(|e| match e {
            StoreError::Invalid(errors) => StoreError::Internal(format!(
                "the {} rule of `{}` does not compile: {}",
                op.name(),
                c.name,
                errors.summary()
            )),
            other => other,
        })
}
