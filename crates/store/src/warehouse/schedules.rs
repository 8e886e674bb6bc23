//! Reading the schedule claims (`_pipeline_schedule`) back: the last firing some process
//! claimed, so a starting scheduler can tell which firings nobody was up to run.

use brigade_core::value::Value;

use super::Runs;
use crate::conn::ColType;
use crate::error::StoreError;
use crate::sql::Sql;

impl Runs<'_> {
    /// The last firing claimed for `key` (a pipeline name), RFC 3339; `None` before the
    /// first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn schedule_last_fire(self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT last_fire FROM _pipeline_schedule WHERE pipeline = ")
            .bind(Value::Text(key.into()));
        let rows = conn.query(&sql, &[ColType::Text]).await?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Value::Text(t)) if !t.is_empty() => Some(t.clone()),
            _ => None,
        })
    }
}
