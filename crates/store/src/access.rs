//! Collection rules: which rule of a collection applies to an operation, and its SQL.
//!
//! This is the one enforcement point: list, view, create, update, delete, expand and batch
//! all ask [`rule_for`], so a rule cannot be bypassed through another door. List and view
//! rules become part of the query's `WHERE`, never a post-filter.

use std::sync::Arc;

use brigade_core::errors::FieldErrors;
use brigade_core::schema::Collection;
use serde_json::{Map, Value as Json};

use crate::error::StoreError;
use crate::query::filter::Plan;
use crate::query::{Lookup, RequestContext, Source};
use crate::records::{check_source, rule_sql};
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
    const ALL: [RuleOp; 5] = [
        RuleOp::List,
        RuleOp::View,
        RuleOp::Create,
        RuleOp::Update,
        RuleOp::Delete,
    ];

    fn source(self, c: &Collection) -> Option<&str> {
        match self {
            RuleOp::List => c.rules.list.as_deref(),
            RuleOp::View => c.rules.view.as_deref(),
            RuleOp::Create => c.rules.create.as_deref(),
            RuleOp::Update => c.rules.update.as_deref(),
            RuleOp::Delete => c.rules.delete.as_deref(),
        }
    }

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
/// As [`rule_plan`].
pub(crate) fn rule_for(
    dialect: Dialect,
    c: &Collection,
    op: RuleOp,
    access: &Access,
    lookup: Lookup<'_>,
    body: Option<&Map<String, Json>>,
) -> Result<Option<Sql>, StoreError> {
    Ok(rule_plan(c, op, access, lookup, body)?
        .map(|plan| crate::query::filter::sql::emit(dialect, &plan)))
}

/// The rule of `c` for `op` as `access` sees it, checked: `Ok(None)` means no restriction,
/// `Ok(Some(plan))` that records must match `plan`. `body` replaces `@request.body`.
///
/// # Errors
/// [`StoreError::Forbidden`] when the rule is `null` (superusers only) for a non-superuser;
/// [`StoreError::Internal`] if a stored rule no longer checks (e.g. a field was dropped).
pub(crate) fn rule_plan(
    c: &Collection,
    op: RuleOp,
    access: &Access,
    lookup: Lookup<'_>,
    body: Option<&Map<String, Json>>,
) -> Result<Option<Plan>, StoreError> {
    let Access::Caller(ctx) = access else {
        return Ok(None);
    };
    let Some(source) = op.source(c) else {
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
    check_source(c, source, lookup, Source::Rule(&ctx), None)
        .map(Some)
        .map_err(|e| match e {
            StoreError::Invalid(errors) => StoreError::internal(format!(
                "the {} rule of `{}` does not compile: {}",
                op.name(),
                c.name,
                errors.summary()
            )),
            other => other,
        })
}

/// Compiles every rule of `schema` (the collections as a change would leave them), so that a
/// rule naming a missing field, or walking a relation that is gone, is refused when the change
/// is made instead of answering 500 to every request afterwards. Errors name
/// `rules.<op>` for the collection being changed, `collections.<name>.rules.<op>` for another
/// collection whose rule the change would break.
///
/// # Errors
/// [`StoreError::Invalid`] with one entry per rule that does not compile.
pub(crate) fn check_rules(
    dialect: Dialect,
    changed: &str,
    schema: &[Arc<Collection>],
) -> Result<(), StoreError> {
    let lookup = |name: &str| schema.iter().find(|c| c.name == name).cloned();
    // With no `@request` values every such comparison is false, but its field is still checked.
    let nobody = RequestContext::default();
    let mut errors = FieldErrors::new();
    for c in schema {
        for op in RuleOp::ALL {
            let Some(source) = op.source(c).filter(|s| !s.trim().is_empty()) else {
                continue;
            };
            if let Err(StoreError::Invalid(found)) =
                rule_sql(dialect, c, source, &lookup, &nobody, None)
            {
                let key = if c.name == changed {
                    format!("rules.{}", op.name())
                } else {
                    format!("collections.{}.rules.{}", c.name, op.name())
                };
                for (_, message) in found.iter() {
                    errors.add(key.clone(), message.clone());
                }
            }
        }
    }
    errors.into_result().map_err(StoreError::Invalid)
}
