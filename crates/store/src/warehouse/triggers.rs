//! What the event triggers of pipelines last acted on (`_pipeline_triggers`): the upstream
//! run an `after` trigger fired for, the files a `files` trigger has seen. Advancing it is a
//! compare-and-swap, so with several processes on one database exactly one of them starts
//! the run an event calls for.

use brigade_core::value::Value;

use super::Runs;
use crate::conn::ColType;
use crate::error::StoreError;
use crate::sql::Sql;

impl Runs<'_> {
    /// What trigger `source` of `pipeline` last acted on; `None` before the first look.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn trigger_seen(
        self,
        pipeline: &str,
        source: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT seen FROM _pipeline_triggers WHERE pipeline = ")
            .bind(Value::Text(pipeline.into()))
            .push(" AND source = ")
            .bind(Value::Text(source.into()));
        Ok(
            match conn
                .query(&sql, &[ColType::Text])
                .await?
                .first()
                .and_then(|r| r.first())
            {
                Some(Value::Text(t)) => Some(t.clone()),
                _ => None,
            },
        )
    }

    /// Moves trigger `source` of `pipeline` from `old` (`None`: no row yet) to `new`.
    /// `true` for exactly one caller per move, however many processes try it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn trigger_advance(
        self,
        pipeline: &str,
        source: &str,
        old: Option<&str>,
        new: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        let now = Value::Text(brigade_core::time::now());
        match old {
            None => {
                sql.push(
                    "INSERT INTO _pipeline_triggers (pipeline, source, seen, updated) VALUES (",
                )
                .bind(Value::Text(pipeline.into()))
                .push(", ")
                .bind(Value::Text(source.into()))
                .push(", ")
                .bind(Value::Text(new.into()))
                .push(", ")
                .bind(now)
                .push(") ON CONFLICT (pipeline, source) DO NOTHING");
            }
            Some(old) => {
                sql.push("UPDATE _pipeline_triggers SET seen = ")
                    .bind(Value::Text(new.into()))
                    .push(", updated = ")
                    .bind(now)
                    .push(" WHERE pipeline = ")
                    .bind(Value::Text(pipeline.into()))
                    .push(" AND source = ")
                    .bind(Value::Text(source.into()))
                    .push(" AND seen = ")
                    .bind(Value::Text(old.into()));
            }
        }
        let moved = tx.execute(&sql).await? == 1;
        tx.commit().await?;
        Ok(moved)
    }

    /// The id and finish time of the last successful run of `pipeline` that finished
    /// before `before` (RFC 3339), if any.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn last_succeeded(
        self,
        pipeline: &str,
        before: Option<&str>,
    ) -> Result<Option<(String, String)>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT id, finished FROM _pipeline_runs WHERE pipeline = ")
            .bind(Value::Text(pipeline.into()))
            .push(" AND status = 'succeeded' AND finished IS NOT NULL");
        if let Some(before) = before {
            sql.push(" AND finished < ")
                .bind(Value::Text(before.into()));
        }
        sql.push(" ORDER BY finished DESC, id DESC LIMIT 1");
        let rows = conn.query(&sql, &[ColType::Text, ColType::Text]).await?;
        Ok(rows.into_iter().next().and_then(|r| {
            let mut r = r.into_iter();
            match (r.next(), r.next()) {
                (Some(Value::Text(id)), Some(Value::Text(finished))) => Some((id, finished)),
                _ => None,
            }
        }))
    }
}
