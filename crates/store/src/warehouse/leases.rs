//! Pipeline leases (`_pipeline_leases`): at most one run of a pipeline at a time, however
//! many processes (CLI runs, servers) share the database. A run takes its pipeline's row
//! before it touches a table, refreshes its heartbeat while it runs and deletes it at the
//! end; a run that finds the row held waits. Taking the row is one `INSERT .. ON CONFLICT DO
//! NOTHING` or one conditional `UPDATE`, so two processes can never both hold it.

use brigade_core::value::Value;

use super::Runs;
use crate::conn::ColType;
use crate::error::StoreError;
use crate::sql::Sql;

/// The lease of a pipeline held by a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub pipeline: String,
    pub run_id: String,
    /// Which process holds it, as the runner wrote it.
    pub holder: String,
    /// RFC 3339, refreshed every few seconds while the run is alive.
    pub heartbeat_at: String,
}

/// What [`Runs::lease_take`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaim {
    /// The caller's run holds the lease now.
    Taken,
    /// Another run that is still queued or running holds it.
    Held(Lease),
}

/// A run left `queued` or `running` whose heartbeat is old.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRun {
    pub id: String,
    pub pipeline: String,
    /// RFC 3339, `None` for runs recorded before heartbeats existed.
    pub heartbeat: Option<String>,
    /// The process that ran it, as the runner wrote it.
    pub holder: Option<String>,
}

fn text(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::Text(s)) => Some(s),
        _ => None,
    }
}

impl Runs<'_> {
    /// Takes the lease of `pipeline` for run `run_id`: when nobody holds it, or when the run
    /// holding it is no longer queued or running (it ended, or a sweep found its process
    /// dead). Otherwise returns the lease that is in the way.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn lease_take(
        self,
        pipeline: &str,
        run_id: &str,
        holder: &str,
    ) -> Result<LeaseClaim, StoreError> {
        let now = brigade_core::time::now();
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("INSERT INTO _pipeline_leases (pipeline, run_id, holder, heartbeat_at) VALUES (")
            .bind(Value::Text(pipeline.into()))
            .push(", ")
            .bind(Value::Text(run_id.into()))
            .push(", ")
            .bind(Value::Text(holder.into()))
            .push(", ")
            .bind(Value::Text(now.clone()))
            .push(") ON CONFLICT (pipeline) DO NOTHING");
        if tx.execute(&sql).await? == 1 {
            tx.commit().await?;
            return Ok(LeaseClaim::Taken);
        }
        let mut sql = Sql::new(tx.dialect());
        sql.push(
            "SELECT l.run_id, l.holder, l.heartbeat_at, r.status FROM _pipeline_leases l \
             LEFT JOIN _pipeline_runs r ON r.id = l.run_id WHERE l.pipeline = ",
        )
        .bind(Value::Text(pipeline.into()));
        let row = tx
            .query(
                &sql,
                &[ColType::Text, ColType::Text, ColType::Text, ColType::Text],
            )
            .await?
            .pop();
        let Some(row) = row else {
            // Released between the two statements (PostgreSQL): an empty lease, try again.
            tx.commit().await?;
            return Ok(LeaseClaim::Held(Lease {
                pipeline: pipeline.into(),
                run_id: String::new(),
                holder: String::new(),
                heartbeat_at: now,
            }));
        };
        let mut it = row.into_iter();
        let lease = Lease {
            pipeline: pipeline.into(),
            run_id: text(it.next()).unwrap_or_default(),
            holder: text(it.next()).unwrap_or_default(),
            heartbeat_at: text(it.next()).unwrap_or_default(),
        };
        let status = text(it.next());
        let live =
            lease.run_id == run_id || matches!(status.as_deref(), Some("queued") | Some("running"));
        if live && lease.run_id != run_id {
            tx.commit().await?;
            return Ok(LeaseClaim::Held(lease));
        }
        // The holder's run ended without releasing it (or it is ours already): replace it,
        // unless another process replaced it first.
        let mut sql = Sql::new(tx.dialect());
        sql.push("UPDATE _pipeline_leases SET run_id = ")
            .bind(Value::Text(run_id.into()))
            .push(", holder = ")
            .bind(Value::Text(holder.into()))
            .push(", heartbeat_at = ")
            .bind(Value::Text(now))
            .push(" WHERE pipeline = ")
            .bind(Value::Text(pipeline.into()))
            .push(" AND run_id = ")
            .bind(Value::Text(lease.run_id.clone()));
        let taken = tx.execute(&sql).await? == 1;
        tx.commit().await?;
        Ok(if taken {
            LeaseClaim::Taken
        } else {
            LeaseClaim::Held(lease)
        })
    }

    /// Refreshes the heartbeat of run `run_id` (and of its lease when `leased`). Returns
    /// `false` when the run is no longer queued or running, or no longer holds the lease: a
    /// sweep decided its process was dead, and it must stop without publishing.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn beat(self, run_id: &str, leased: bool) -> Result<bool, StoreError> {
        let now = brigade_core::time::now();
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("UPDATE _pipeline_runs SET heartbeat = ")
            .bind(Value::Text(now.clone()))
            .push(" WHERE id = ")
            .bind(Value::Text(run_id.into()))
            .push(" AND status IN ('queued', 'running')");
        let mut ours = tx.execute(&sql).await? == 1;
        if leased {
            let mut sql = Sql::new(tx.dialect());
            sql.push("UPDATE _pipeline_leases SET heartbeat_at = ")
                .bind(Value::Text(now))
                .push(" WHERE run_id = ")
                .bind(Value::Text(run_id.into()));
            ours &= tx.execute(&sql).await? == 1;
        }
        tx.commit().await?;
        Ok(ours)
    }

    /// Gives the lease of `pipeline` up if run `run_id` holds it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn lease_release(self, pipeline: &str, run_id: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("DELETE FROM _pipeline_leases WHERE pipeline = ")
            .bind(Value::Text(pipeline.into()))
            .push(" AND run_id = ")
            .bind(Value::Text(run_id.into()));
        tx.execute(&sql).await?;
        tx.commit().await
    }

    /// Records which process runs `run_id` (see [`StaleRun::holder`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn set_holder(self, run_id: &str, holder: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("UPDATE _pipeline_runs SET holder = ")
            .bind(Value::Text(holder.into()))
            .push(" WHERE id = ")
            .bind(Value::Text(run_id.into()));
        tx.execute(&sql).await?;
        tx.commit().await
    }

    /// Runs of `pipeline` (all pipelines when `None`) left `queued` or `running` whose
    /// heartbeat is older than `before` (RFC 3339).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn stale(
        self,
        pipeline: Option<&str>,
        before: &str,
    ) -> Result<Vec<StaleRun>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push(
            "SELECT id, pipeline, heartbeat, holder FROM _pipeline_runs \
             WHERE status IN ('queued', 'running') AND (heartbeat IS NULL OR heartbeat < ",
        )
        .bind(Value::Text(before.into()))
        .push(")");
        if let Some(p) = pipeline {
            sql.push(" AND pipeline = ").bind(Value::Text(p.into()));
        }
        let rows = conn
            .query(
                &sql,
                &[ColType::Text, ColType::Text, ColType::Text, ColType::Text],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut it = row.into_iter();
                StaleRun {
                    id: text(it.next()).unwrap_or_default(),
                    pipeline: text(it.next()).unwrap_or_default(),
                    heartbeat: text(it.next()),
                    holder: text(it.next()),
                }
            })
            .collect())
    }

    /// Marks run `id` failed with `error` and frees its lease, unless it ended or beat its
    /// heartbeat since `before` in the meantime. Returns whether it did.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn fail_stale(self, id: &str, before: &str, error: &str) -> Result<bool, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let failed = super::runs::fail_unfinished(tx.as_mut(), id, error, Some(before)).await?;
        tx.commit().await?;
        Ok(failed)
    }
}
