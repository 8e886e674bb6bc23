//! Checked filters and rules for evaluation outside SQL (realtime), and the store as the
//! [`Related`] loader their relation steps read through.

use async_trait::async_trait;
use brigade_core::schema::Collection;
use serde_json::{Map, Value as Json};

use super::Store;
use crate::access::{Access, RuleOp, rule_plan};
use crate::error::StoreError;
use crate::query::Source;
use crate::query::filter::{Plan, Related};
use crate::records::{self, Record, check_source};

impl Store {
    /// A caller's `filter=` on collection `name`, checked as a list request would check it
    /// (relation steps carry the targets' view rules for `access`, cost budget included).
    ///
    /// # Errors
    /// [`StoreError::CollectionNotFound`]; [`StoreError::Invalid`] on key `filter` with the
    /// same messages and positions as a list request.
    pub fn filter_plan(
        &self,
        name: &str,
        filter: &str,
        access: &Access,
    ) -> Result<Plan, StoreError> {
        let c = self.collection(name)?;
        let lookup = self.lookup();
        check_source(&c, filter, &lookup, Source::Filter(access), None)
    }

    /// The `op` rule of collection `name` for `access`, checked with its `@request` values
    /// (`body` replaces `@request.body`). `Ok(None)`: no restriction (superusers, empty rule).
    ///
    /// # Errors
    /// [`StoreError::CollectionNotFound`]; [`StoreError::Forbidden`] when the rule is
    /// superusers-only; [`StoreError::Internal`] when a stored rule no longer checks.
    pub fn rule_plan(
        &self,
        name: &str,
        op: RuleOp,
        access: &Access,
        body: Option<&Map<String, Json>>,
    ) -> Result<Option<Plan>, StoreError> {
        let c = self.collection(name)?;
        let lookup = self.lookup();
        rule_plan(&c, op, access, &lookup, body)
    }
}

#[async_trait]
impl Related for Store {
    async fn related(
        &self,
        collection: &Collection,
        id: &str,
    ) -> Result<Option<Record>, StoreError> {
        if !brigade_core::ids::is_plausible_id(id) {
            return Ok(None);
        }
        let mut conn = self.db.read().await?;
        match records::get(conn.as_mut(), collection, id, None).await {
            Ok(record) => Ok(Some(record)),
            Err(StoreError::RecordNotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }
}
