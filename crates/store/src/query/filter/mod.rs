//! The filter language against a collection's schema: one check, two back ends.
//!
//! - [`check`](check::check) turns a parsed [`Expr`] into a typed [`Plan`]. It is the only
//!   place that knows the schema, and so the only source of user-facing errors.
//! - [`sql`] emits a plan as a SQL boolean expression (lists, counts, rule checks).
//! - [`eval`] tests a plan against one record in memory (realtime), with the same meaning.
//!
//! Literals are type-checked against the field they are compared with (an integer field
//! compared with `'abc'` is a 400 naming the position, not a database error), `!=` and `!~`
//! keep records where the field is null (what a user means by "not equal"), and `~` matches
//! `%` and `_` literally. `a.b` walks a relation.
//!
//! Two kinds of source are checked here, and they are trusted differently:
//! - a **rule** is written by whoever defines the schema: it may use `@request.*`, and its
//!   relation walks see every record of the target;
//! - a caller's **filter** (`filter=` on lists, counts and searches) may not use `@request`,
//!   every relation walk it makes sees only the target records the caller may view (the
//!   target's view rule is part of the walk, so a filter cannot test predicates on hidden
//!   records), and for non-superusers its cost is bounded by [`MAX_FILTER_COST`].
//!
//! A comparison of a field with an `@request.*` value that is absent (anonymous callers have
//! no `@request.auth.id`) or JSON `null` never matches: only the literal `null` means IS NULL.
//! Such a value equals the literal `null` (`@request.body.owner = null`: "not sent") and
//! nothing else.

mod check;
pub mod eval;
pub mod plan;
pub(crate) mod sql;

use std::sync::Arc;

use brigade_core::schema::Collection;

use crate::access::Access;
use crate::sql::Sql;

pub(crate) use check::{check, like_needle};
pub use eval::{NoRelated, Related};
pub use plan::{Column, Node, Order, Plan, Scalar};
pub(crate) use sql::escape_like;

/// Values for `@request.*` when the filter is a collection rule.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// `@request.auth.*`: `id`, `email`, `roles` (null when anonymous).
    pub auth: serde_json::Map<String, serde_json::Value>,
    /// `@request.body.*`.
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// Finds collections by name for relation walks.
pub(crate) type Lookup<'a> = &'a (dyn Fn(&str) -> Option<Arc<Collection>> + Send + Sync);

/// The most a non-superuser's filter may cost (see [`Plan::cost`]): enough for a search box
/// over a dozen text fields or a few relation walks, far below what made a 100k-row table
/// take seconds per request. A comparison costs 1, a `~` or `!~` 5, a relation step 10.
pub const MAX_FILTER_COST: u32 = 100;

/// A compiled filter or rule.
pub(crate) struct Compiled {
    pub(crate) sql: Sql,
    /// Whether it may scan many rows (a `~` or a relation step): such list reads queue for
    /// PostgreSQL's heavy-read permits.
    pub(crate) scans: bool,
}

/// What a checked source is, which decides what it may do (see the module docs).
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A collection or index rule with the caller's `@request` values.
    Rule(&'a RequestContext),
    /// A caller's filter: relation walks are limited by the targets' view rules for `access`.
    Filter(&'a Access),
}

#[cfg(test)]
mod tests;
