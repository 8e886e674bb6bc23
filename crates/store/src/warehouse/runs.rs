//! Run records, incremental cursors and schedule claims of pipelines. Runs are rows, so
//! history survives restarts; a step's record and cursor commit with its data.

use brigade_core::value::Value;

use super::Runs;
use super::load::Finish;
use crate::conn::{ColType, Conn, Row};
use crate::error::StoreError;
use crate::sql::Sql;

/// A pipeline run as stored. `steps` and `options` are JSON documents owned by the runner.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub pipeline: String,
    pub status: super::RunStatus,
    pub trigger: String,
    pub options: serde_json::Value,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub error: Option<String>,
    pub steps: serde_json::Value,
}

/// The incremental cursor of one extract after a load.
#[derive(Debug, Clone)]
pub struct StateUpdate {
    pub pipeline: String,
    pub node: String,
    /// The cursor as JSON (a number or a string).
    pub cursor: serde_json::Value,
    /// The keys of the rows loaded at that cursor value, so the next load (which reads
    /// from the value on, `>=`) takes only the rows it has not seen.
    pub boundary: Vec<String>,
}

/// The `_pipeline_state` node under which the boundary keys of extract `node` are kept
/// (beside its cursor, so the cursor row itself keeps its plain shape).
fn boundary_node(node: &str) -> String {
    format!("{node}#boundary")
}

const COLUMNS: &str =
    "id, pipeline, status, trigger, options, created, started, finished, error, steps";
const TYPES: &[ColType] = &[
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Json,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Text,
    ColType::Json,
];

fn text(v: Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

fn json(v: Value) -> serde_json::Value {
    match v {
        Value::Json(j) => j,
        Value::Text(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}

fn decode(row: Row) -> Result<RunRecord, StoreError> {
    let mut it = row.into_iter();
    let mut next = || it.next().unwrap_or(Value::Null);
    let malformed =
        |what: &str| StoreError::internal(format!("a row of _pipeline_runs is malformed: {what}"));
    let id = text(next()).ok_or_else(|| malformed("no id"))?;
    let pipeline = text(next()).ok_or_else(|| malformed("no pipeline"))?;
    let status = text(next())
        .unwrap_or_default()
        .parse()
        .map_err(|e| malformed(&format!("run {id}: {e}")))?;
    Ok(RunRecord {
        id,
        pipeline,
        status,
        trigger: text(next()).ok_or_else(|| malformed("no trigger"))?,
        options: json(next()),
        created: text(next()).ok_or_else(|| malformed("no created time"))?,
        started: text(next()),
        finished: text(next()),
        error: text(next()),
        steps: json(next()),
    })
}

fn opt(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Null, Value::Text)
}

/// Writes `finish` inside the caller's transaction.
pub(super) async fn finish_in(tx: &mut dyn Conn, finish: Finish) -> Result<(), StoreError> {
    if let Some(run_id) = &finish.leased_by {
        // Locks the lease row until commit, so a sweep cannot take it in between.
        let mut sql = Sql::new(tx.dialect());
        sql.push("SELECT run_id FROM _pipeline_leases WHERE run_id = ")
            .bind(Value::Text(run_id.clone()));
        if tx.dialect() == crate::sql::Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        if tx.query(&sql, &[ColType::Text]).await?.is_empty() {
            return Err(StoreError::conflict(
                "run",
                format!(
                    "run `{run_id}` no longer holds its pipeline's lease (another process took it for dead after its heartbeat stopped; raise [pipelines] stale_after if this process was only slow); nothing of this step was published and the run that took the lease over goes on"
                ),
            ));
        }
    }
    if let Some(rejected) = finish.rejected.filter(|r| !r.rows.is_empty()) {
        keep_rejected(tx, rejected).await?;
    }
    if let Some(state) = finish.state {
        let boundary = serde_json::Value::from(state.boundary);
        for (node, value) in [
            (boundary_node(&state.node), boundary),
            (state.node, state.cursor),
        ] {
            let mut sql = Sql::new(tx.dialect());
            sql.push("INSERT INTO _pipeline_state (pipeline, node, cursor, updated) VALUES (")
                .bind(Value::Text(state.pipeline.clone()))
                .push(", ")
                .bind(Value::Text(node))
                .push(", ")
                .bind(Value::Text(value.to_string()))
                .push(", ")
                .bind(Value::Text(brigade_core::time::now()))
                .push(
                    ") ON CONFLICT (pipeline, node) DO UPDATE SET cursor = excluded.cursor, \
                     updated = excluded.updated",
                );
            tx.execute(&sql).await?;
        }
    }
    if let Some((run_id, steps)) = finish.run_steps {
        let steps = keep_finished(tx, &run_id, steps).await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("UPDATE _pipeline_runs SET steps = ")
            .bind(Value::Text(steps.to_string()))
            .push(", heartbeat = ")
            .bind(Value::Text(brigade_core::time::now()))
            .push(" WHERE id = ")
            .bind(Value::Text(run_id));
        tx.execute(&sql).await?;
    }
    Ok(())
}

/// `steps` with every step the stored run already records as finished kept as stored: with
/// steps running in parallel, one step's snapshot of the others may predate their commit,
/// and a step that committed must never read as unfinished (a retry would run it again).
async fn keep_finished(
    tx: &mut dyn Conn,
    run_id: &str,
    steps: serde_json::Value,
) -> Result<serde_json::Value, StoreError> {
    let finished = |s: &serde_json::Value| {
        s["status"]
            .as_str()
            .and_then(|s| s.parse::<super::StepStatus>().ok())
            .is_some_and(super::StepStatus::is_finished)
    };
    let serde_json::Value::Array(mut given) = steps else {
        return Ok(steps);
    };
    let mut sql = Sql::new(tx.dialect());
    sql.push("SELECT steps FROM _pipeline_runs WHERE id = ")
        .bind(Value::Text(run_id.into()));
    if tx.dialect() == crate::sql::Dialect::Postgres {
        sql.push(" FOR UPDATE");
    }
    let stored = match tx
        .query(&sql, &[ColType::Text])
        .await?
        .first()
        .and_then(|r| r.first())
    {
        Some(Value::Text(t)) => {
            serde_json::from_str::<Vec<serde_json::Value>>(t).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    for step in &mut given {
        if let Some(done) = stored
            .iter()
            .find(|s| s["name"] == step["name"] && finished(s))
            && !finished(step)
        {
            *step = done.clone();
        }
    }
    Ok(serde_json::Value::Array(given))
}

/// Marks run `id` failed with `error` and frees its pipeline's lease, unless it already
/// ended or (with `stale_before`) refreshed its heartbeat since then. Returns whether it did.
pub(super) async fn fail_unfinished(
    tx: &mut dyn Conn,
    id: &str,
    error: &str,
    stale_before: Option<&str>,
) -> Result<bool, StoreError> {
    let mut sql = Sql::new(tx.dialect());
    sql.push("UPDATE _pipeline_runs SET status = 'failed', finished = ")
        .bind(Value::Text(brigade_core::time::now()))
        .push(", error = ")
        .bind(Value::Text(error.into()))
        .push(" WHERE id = ")
        .bind(Value::Text(id.into()))
        .push(" AND status IN ('queued', 'running')");
    if let Some(before) = stale_before {
        sql.push(" AND (heartbeat IS NULL OR heartbeat < ")
            .bind(Value::Text(before.into()))
            .push(")");
    }
    let failed = tx.execute(&sql).await? == 1;
    // An interrupted run (no heartbeat condition) frees its lease whatever its status was.
    if failed || stale_before.is_none() {
        let mut sql = Sql::new(tx.dialect());
        sql.push("DELETE FROM _pipeline_leases WHERE run_id = ")
            .bind(Value::Text(id.into()));
        tx.execute(&sql).await?;
    }
    Ok(failed)
}

impl Runs<'_> {
    /// Stores a new run.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn insert(self, run: &RunRecord) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("INSERT INTO _pipeline_runs (")
            .push(COLUMNS)
            .push(", heartbeat) VALUES (");
        let values = [
            Value::Text(run.id.clone()),
            Value::Text(run.pipeline.clone()),
            Value::Text(run.status.as_str().into()),
            Value::Text(run.trigger.clone()),
            Value::Text(run.options.to_string()),
            Value::Text(run.created.clone()),
            opt(&run.started),
            opt(&run.finished),
            opt(&run.error),
            Value::Text(run.steps.to_string()),
            Value::Text(brigade_core::time::now()),
        ];
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(v);
        }
        sql.push(")");
        tx.execute(&sql).await?;
        tx.commit().await
    }

    /// Updates a run's status, times, error and steps.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn update(self, run: &RunRecord) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        // A parallel step may have committed since the caller's view of it.
        let steps = keep_finished(tx.as_mut(), &run.id, run.steps.clone()).await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("UPDATE _pipeline_runs SET status = ")
            .bind(Value::Text(run.status.as_str().into()))
            .push(", started = ")
            .bind(opt(&run.started))
            .push(", finished = ")
            .bind(opt(&run.finished))
            .push(", error = ")
            .bind(opt(&run.error))
            .push(", steps = ")
            .bind(Value::Text(steps.to_string()))
            .push(", heartbeat = ")
            .bind(Value::Text(brigade_core::time::now()))
            .push(" WHERE id = ")
            .bind(Value::Text(run.id.clone()));
        tx.execute(&sql).await?;
        tx.commit().await
    }

    /// One run by id.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn get(self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM _pipeline_runs WHERE id = ")
            .bind(Value::Text(id.into()));
        conn.query(&sql, TYPES).await?.pop().map(decode).transpose()
    }

    /// The runs of `pipeline` (all pipelines when `None`), newest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn list(
        self,
        pipeline: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT ")
            .push(COLUMNS)
            .push(" FROM _pipeline_runs");
        if let Some(p) = pipeline {
            sql.push(" WHERE pipeline = ").bind(Value::Text(p.into()));
        }
        sql.push(" ORDER BY created DESC, id DESC LIMIT ")
            .bind(Value::Int(limit))
            .push(" OFFSET ")
            .bind(Value::Int(offset));
        conn.query(&sql, TYPES)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    /// Stores the steps of a running run (progress of the current step).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn set_steps(self, id: &str, steps: &serde_json::Value) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        finish_in(
            tx.as_mut(),
            Finish {
                run_steps: Some((id.to_string(), steps.clone())),
                ..Finish::default()
            },
        )
        .await?;
        tx.commit().await
    }

    /// Marks run `id` failed with `error` unless it already ended (a shutdown that could not
    /// wait for it), and frees its pipeline's lease.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn interrupt(self, id: &str, error: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        fail_unfinished(tx.as_mut(), id, error, None).await?;
        tx.commit().await
    }

    /// Asks whichever process runs `id` to cancel it (it polls [`Runs::cancel_requested`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn request_cancel(self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("UPDATE _pipeline_runs SET cancel_requested = ")
            .bind(Value::Text(brigade_core::time::now()))
            .push(" WHERE id = ")
            .bind(Value::Text(id.into()));
        tx.execute(&sql).await?;
        tx.commit().await
    }

    /// Whether someone asked to cancel run `id`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn cancel_requested(self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT cancel_requested FROM _pipeline_runs WHERE id = ")
            .bind(Value::Text(id.into()));
        Ok(matches!(
            conn.query(&sql, &[ColType::Text])
                .await?
                .pop()
                .and_then(|r| r.into_iter().next()),
            Some(Value::Text(_))
        ))
    }

    /// The incremental cursor of `node` in `pipeline`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn pipeline_state(
        self,
        pipeline: &str,
        node: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT cursor FROM _pipeline_state WHERE pipeline = ")
            .bind(Value::Text(pipeline.into()))
            .push(" AND node = ")
            .bind(Value::Text(node.into()));
        Ok(conn
            .query(&sql, &[ColType::Json])
            .await?
            .pop()
            .and_then(|r| r.into_iter().next())
            .map(json))
    }

    /// The boundary keys stored with the cursor of `node` (see [`StateUpdate::boundary`]);
    /// `None` when there are none (a cursor written before boundaries were kept).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn pipeline_boundary(
        self,
        pipeline: &str,
        node: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let keys = self.pipeline_state(pipeline, &boundary_node(node)).await?;
        Ok(keys.and_then(|k| serde_json::from_value(k).ok()))
    }

    /// Commits `finish` (rejected rows, cursor, the run's steps) for a step that loaded no
    /// table: an empty source leaves the bronze table as it was.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn pipeline_finish(self, finish: Finish) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        finish_in(tx.as_mut(), finish).await?;
        tx.commit().await
    }

    /// Claims the scheduled firing of `pipeline` at `fire` (RFC 3339). Exactly one caller
    /// per firing gets `true`, however many processes share the database: the claim is one
    /// conditional `UPDATE` of the pipeline's schedule row.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Internal`].
    pub async fn claim_schedule(self, pipeline: &str, fire: &str) -> Result<bool, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("INSERT INTO _pipeline_schedule (pipeline, last_fire) VALUES (")
            .bind(Value::Text(pipeline.into()))
            .push(", '')  ON CONFLICT (pipeline) DO NOTHING");
        tx.execute(&sql).await?;
        let mut sql = Sql::new(tx.dialect());
        sql.push("UPDATE _pipeline_schedule SET last_fire = ")
            .bind(Value::Text(fire.into()))
            .push(" WHERE pipeline = ")
            .bind(Value::Text(pipeline.into()))
            .push(" AND last_fire < ")
            .bind(Value::Text(fire.into()));
        let claimed = tx.execute(&sql).await? == 1;
        tx.commit().await?;
        Ok(claimed)
    }
}

async fn keep_rejected(
    tx: &mut dyn Conn,
    rejected: super::load::RejectedRows,
) -> Result<(), StoreError> {
    let table = super::tables::ident(&rejected.table)?;
    tx.execute_script(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (_run_id TEXT NOT NULL, _source TEXT NOT NULL, \
         _line BIGINT NOT NULL, _error TEXT NOT NULL, _raw TEXT NOT NULL, _rejected_at TEXT NOT NULL)"
    ))
    .await?;
    let now = brigade_core::time::now();
    let columns: Vec<crate::sql::Ident> = [
        "_run_id",
        "_source",
        "_line",
        "_error",
        "_raw",
        "_rejected_at",
    ]
    .iter()
    .map(|c| super::tables::ident(c))
    .collect::<Result<_, _>>()?;
    let rows: Vec<Row> = rejected
        .rows
        .into_iter()
        .map(|(source, line, error, raw)| {
            vec![
                Value::Text(rejected.run_id.clone()),
                Value::Text(source),
                Value::Int(line),
                Value::Text(error),
                Value::Text(raw.replace('\0', "")),
                Value::Text(now.clone()),
            ]
        })
        .collect();
    tx.insert_rows(&table, &columns, &rows, &[]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::RunRecord;
    use crate::handle::Store;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::sqlite::SqliteDatabase::open(&dir.path().join("t.db"), 2).unwrap();
        let store = Store::with_database(Arc::new(db), &dir.path().join("migrations"))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_publishes_only_while_its_run_holds_the_lease() {
        let (_dir, store) = store().await;
        let finish = || super::Finish {
            leased_by: Some("r1".into()),
            ..super::Finish::default()
        };
        let mut tx = store.db.begin().await.unwrap();
        let refused = super::finish_in(tx.as_mut(), finish()).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("no longer holds its pipeline's lease"),
            "{refused}"
        );
        drop(tx);
        let mut tx = store.db.begin().await.unwrap();
        tx.execute_script(
            "INSERT INTO _pipeline_leases (pipeline, run_id, holder, heartbeat_at) \
             VALUES ('p', 'r1', 'test', '2026-01-01T00:00:00.000Z')",
        )
        .await
        .unwrap();
        super::finish_in(tx.as_mut(), finish()).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stale_view_never_turns_a_committed_step_back_into_running() {
        let (_dir, store) = store().await;
        let step = |name: &str, status: &str| json!({"name": name, "status": status});
        let mut run = RunRecord {
            id: "r1".into(),
            pipeline: "p".into(),
            status: super::super::RunStatus::Running,
            trigger: "cli".into(),
            options: json!({}),
            created: "2026-01-01T00:00:00.000Z".into(),
            started: None,
            finished: None,
            error: None,
            steps: json!([step("a", "running"), step("b", "running")]),
        };
        store.runs().insert(&run).await.unwrap();
        // Step a commits with its data; the runner's view still says it runs.
        store
            .runs()
            .set_steps("r1", &json!([step("a", "succeeded"), step("b", "running")]))
            .await
            .unwrap();
        run.steps = json!([step("a", "running"), step("b", "failed")]);
        store.runs().update(&run).await.unwrap();
        let stored = store.runs().get("r1").await.unwrap().unwrap();
        assert_eq!(
            stored.steps,
            json!([step("a", "succeeded"), step("b", "failed")])
        );
    }
}
