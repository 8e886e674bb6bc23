//! Materializing a SQL model: build it into a staging table, run its expectations (count,
//! sample, quarantine, drop), check its contract, then publish — all in one transaction, so
//! a failed expectation or a killed process leaves the previous table in place.

use brigade_core::value::Value;

use super::Warehouse;
use super::datatests::{self, DataTest, TestOutcome};
use super::expose::{self, Expose};
use super::load::{Finish, WriteMode, publish_table};
use super::runs;
use super::snapshots::{self, SnapshotSpec};
use super::tables::{self, Column, STAGING_PREFIX, ident};
use super::user_sql;
use crate::conn::{ColType, Conn, JsonRow};
use crate::error::StoreError;
use crate::sql::{Dialect, Ident, Sql};

/// How a model's result is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Materialize {
    Table,
    View,
    /// Merged into the existing table on `unique_key` (appended when it is empty).
    Incremental {
        unique_key: Vec<String>,
    },
    /// Versions per key with `valid_from`/`valid_to` (SCD type 2); never rebuilt.
    Snapshot(SnapshotSpec),
}

/// What an expectation does with failing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectationAction {
    Warn,
    Drop,
    Fail,
}

/// One model step, SQL already rendered.
#[derive(Debug, Clone)]
pub struct ModelPlan {
    pub pipeline: String,
    pub run_id: String,
    pub target: String,
    /// A `SELECT` (or `WITH .. SELECT`) over the store's tables.
    pub sql: String,
    pub materialize: Materialize,
    /// Rebuild an incremental model from scratch.
    pub full_refresh: bool,
    /// `(name, SQL boolean over a row, action)`, run in order.
    pub expectations: Vec<(String, String, ExpectationAction)>,
    /// Table-level data tests (`unique`, `relationships`, `row_count`, expressions), run on
    /// the table as it will be published, inside the publishing transaction.
    pub tests: Vec<DataTest>,
    /// Fail when the columns differ from the existing table's.
    pub freeze: bool,
    /// Make the table a read-only collection.
    pub expose: Option<Expose>,
}

/// The result of one expectation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExpectationOutcome {
    pub name: String,
    /// `passed`, `warned`, `dropped` or `failed`.
    pub status: &'static str,
    pub failing_rows: u64,
}

/// The result of a model step.
#[derive(Debug, Clone)]
pub struct ModelOutcome {
    /// Rows the model's query produced.
    pub rows_in: u64,
    /// Rows published (after drops).
    pub rows_out: u64,
    pub rows_dropped: u64,
    pub expectations: Vec<ExpectationOutcome>,
    /// The table-level tests' results.
    pub tests: Vec<TestOutcome>,
    /// Why the step failed (an expectation with `fail`, a broken contract); nothing was
    /// published then.
    pub failure: Option<String>,
    /// The published columns.
    pub columns: Vec<Column>,
    /// Snapshots: versions closed this run (changed or deleted rows).
    pub versions_closed: u64,
}

impl Warehouse<'_> {
    /// Runs one model per `plan` and, unless it fails, publishes it with `finish`.
    ///
    /// # Errors
    /// [`StoreError::Unprocessable`] with the database's message when the model's SQL is
    /// wrong; expectation and contract failures come back in [`ModelOutcome::failure`].
    pub async fn materialize(
        self,
        plan: &ModelPlan,
        finish: Finish,
    ) -> Result<ModelOutcome, StoreError> {
        let target = ident(&plan.target)?;
        let now = brigade_core::time::now();
        let mut tx = self.store.db.begin().await?;
        // Read in the transaction, not from the schema cache: another process (a server
        // whose run this one waited for) may have exposed the model since this one started.
        let collection = crate::migrations::load_collection(tx.as_mut(), &plan.target).await?;
        if plan.expose.is_some()
            && let Some(c) = collection.as_ref().filter(|c| c.pipeline.is_none())
        {
            return Err(StoreError::Unprocessable(format!(
                "cannot expose model `{}`: a collection with that name already exists; rename the model or the collection",
                c.name
            )));
        }
        // Before anything is dropped or built: the table must be this pipeline's own.
        super::ownership::claim(tx.as_mut(), &plan.pipeline, &plan.target, &plan.target).await?;
        let select = plan.sql.trim().trim_end_matches(';').trim_end();
        let (wrapped, kinds) = match &plan.expose {
            Some(e) => {
                let w = expose::wrap(tx.as_mut(), select, e, &now).await?;
                (Some(w.select), w.kinds)
            }
            None => (None, Default::default()),
        };
        let select = wrapped.as_deref().unwrap_or(select);
        if plan.materialize == Materialize::View {
            let outcome = view(tx.as_mut(), plan, &target, select).await?;
            if outcome.failure.is_none() {
                if let Some(e) = &plan.expose {
                    expose::register(
                        tx.as_mut(),
                        &plan.target,
                        e,
                        &kinds,
                        collection.as_ref(),
                        &now,
                    )
                    .await?;
                }
                runs::finish_in(tx.as_mut(), finish).await?;
                tx.commit().await?;
                if plan.expose.is_some() {
                    self.store.reload_schema().await?;
                }
            }
            return Ok(outcome);
        }
        let staging = staging_name(&plan.run_id, &plan.target)?;
        tx.execute_script(&format!(
            "DROP TABLE IF EXISTS {staging}; CREATE TABLE {staging} AS {select}"
        ))
        .await
        .map_err(user_sql)?;
        let rows_in = count(tx.as_mut(), &staging, None).await?;
        let mut outcome = ModelOutcome {
            rows_in,
            rows_out: rows_in,
            rows_dropped: 0,
            expectations: Vec::new(),
            tests: Vec::new(),
            failure: None,
            columns: Vec::new(),
            versions_closed: 0,
        };
        let columns = tables::columns(tx.as_mut(), staging.as_str())
            .await?
            .unwrap_or_default();
        if expectations(tx.as_mut(), plan, &staging, &columns, &mut outcome).await? {
            return Ok(outcome);
        }
        if let Materialize::Snapshot(spec) = &plan.materialize {
            match snapshots::apply(tx.as_mut(), &staging, &plan.target, &columns, spec, &now)
                .await?
            {
                Err(message) => {
                    outcome.failure = Some(message);
                    return Ok(outcome);
                }
                Ok(counts) => {
                    outcome.rows_out = counts.inserted;
                    outcome.versions_closed = counts.closed;
                }
            }
            // Tests see the history as it will be published.
            if table_tests(tx.as_mut(), plan, &mut outcome).await? {
                return Ok(outcome);
            }
            tx.execute_script(&format!("DROP TABLE {staging}")).await?;
            outcome.columns = columns;
            runs::finish_in(tx.as_mut(), finish).await?;
            tx.commit().await?;
            return Ok(outcome);
        }
        let existing = tables::columns(tx.as_mut(), &plan.target).await?;
        if plan.freeze
            && let Some(existing) = &existing
            && let Some(message) = contract_violation(&plan.target, existing, &columns)
        {
            outcome.failure = Some(message);
            return Ok(outcome);
        }
        if let Some(failure) = repeated_ids(tx.as_mut(), plan, &staging).await? {
            outcome.failure = Some(failure);
            return Ok(outcome);
        }
        let mode = match &plan.materialize {
            Materialize::Incremental { unique_key } if existing.is_some() && !plan.full_refresh => {
                if unique_key.is_empty() {
                    WriteMode::Append
                } else {
                    WriteMode::Merge(unique_key.clone())
                }
            }
            Materialize::Incremental { unique_key } if !unique_key.is_empty() => {
                // First build: replace, then key the table for later merges.
                if existing.is_some() {
                    tx.execute_script(&format!("DROP TABLE {target}"))
                        .await
                        .map_err(user_sql)?;
                }
                WriteMode::Merge(unique_key.clone())
            }
            _ => WriteMode::Replace,
        };
        // Repeated merge keys: the last row wins; the report counts what the table got.
        let duplicates =
            publish_table(tx.as_mut(), &staging, &plan.target, &columns, &mode).await?;
        outcome.rows_out = outcome.rows_out.saturating_sub(duplicates);
        outcome.rows_dropped += duplicates;
        // Tests see the table as published (an incremental model's whole table, not just the
        // new rows); a failing one rolls the publication back.
        if table_tests(tx.as_mut(), plan, &mut outcome).await? {
            return Ok(outcome);
        }
        outcome.columns = columns;
        if let Some(e) = &plan.expose {
            let index = ident(
                &format!("{}__id", plan.target)
                    .chars()
                    .take(63)
                    .collect::<String>(),
            )?;
            tx.execute_script(&format!(
                "CREATE INDEX IF NOT EXISTS {index} ON {target} (id)"
            ))
            .await?;
            expose::register(
                tx.as_mut(),
                &plan.target,
                e,
                &kinds,
                collection.as_ref(),
                &now,
            )
            .await?;
        }
        runs::finish_in(tx.as_mut(), finish).await?;
        tx.commit().await?;
        if plan.expose.is_some() {
            self.store.reload_schema().await?;
        }
        Ok(outcome)
    }
}

fn staging_name(run_id: &str, target: &str) -> Result<Ident, StoreError> {
    let short: String = run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    ident(
        &format!("{STAGING_PREFIX}{short}_{target}")
            .chars()
            .take(63)
            .collect::<String>(),
    )
}

async fn view(
    tx: &mut dyn Conn,
    plan: &ModelPlan,
    target: &Ident,
    select: &str,
) -> Result<ModelOutcome, StoreError> {
    match tables::columns(tx, &plan.target).await? {
        Some(_) if tables::is_view(tx, &plan.target).await? => {
            tx.execute_script(&format!("DROP VIEW {target}")).await?;
        }
        Some(_) => {
            let cascade = if tx.dialect() == Dialect::Postgres {
                " CASCADE"
            } else {
                ""
            };
            tx.execute_script(&format!("DROP TABLE {target}{cascade}"))
                .await?;
        }
        None => {}
    }
    tx.execute_script(&format!("CREATE VIEW {target} AS {select}"))
        .await
        .map_err(user_sql)?;
    let rows = count(tx, target, None).await?;
    let columns = tables::columns(tx, &plan.target).await?.unwrap_or_default();
    let mut outcome = ModelOutcome {
        rows_in: rows,
        rows_out: rows,
        rows_dropped: 0,
        expectations: Vec::new(),
        tests: Vec::new(),
        failure: None,
        columns: columns.clone(),
        versions_closed: 0,
    };
    if !expectations(tx, plan, target, &columns, &mut outcome).await? {
        outcome.failure = repeated_ids(tx, plan, target).await?;
        if outcome.failure.is_none() {
            table_tests(tx, plan, &mut outcome).await?;
        }
    }
    Ok(outcome)
}

/// An exposed model's record ids must be unique (else `GET` by id returns one of several rows
/// at random): names up to 5 repeated ids and how many repeat, or `None` when all are unique.
async fn repeated_ids(
    tx: &mut dyn Conn,
    plan: &ModelPlan,
    table: &Ident,
) -> Result<Option<String>, StoreError> {
    let Some(expose) = &plan.expose else {
        return Ok(None);
    };
    let mut sql = Sql::new(tx.dialect());
    sql.push("SELECT id, count(*) FROM ")
        .ident(table)
        .push(" GROUP BY id HAVING count(*) > 1 ORDER BY count(*) DESC, id LIMIT 5");
    let sample = tx.query(&sql, &[ColType::Text, ColType::Int]).await?;
    if sample.is_empty() {
        return Ok(None);
    }
    let mut sql = Sql::new(tx.dialect());
    sql.push("SELECT count(*) FROM (SELECT id FROM ")
        .ident(table)
        .push(" GROUP BY id HAVING count(*) > 1) d");
    let repeated = match tx
        .query(&sql, &[ColType::Int])
        .await?
        .first()
        .and_then(|r| r.first())
    {
        Some(Value::Int(n)) => *n,
        _ => 0,
    };
    let shown: Vec<String> = sample
        .iter()
        .map(|r| match r.as_slice() {
            [Value::Text(id), Value::Int(n)] => format!("`{id}` ({n} rows)"),
            [_, Value::Int(n)] => format!("NULL ({n} rows)"),
            _ => "?".to_string(),
        })
        .collect();
    let key = if expose.key.is_empty() {
        "its `id` column".to_string()
    } else {
        format!("unique_key ({})", expose.key.join(", "))
    };
    Ok(Some(format!(
        "model `{}` is exposed with {key} but {repeated} key(s) repeat, e.g. {}; a record id must be \
         unique: fix the model or choose a unique_key that is unique. Nothing was published",
        plan.target,
        shown.join(", ")
    )))
}

/// Runs the plan's table-level tests over its target; returns `true` when one failed the
/// step (its message, with sample values, is the outcome's failure).
async fn table_tests(
    tx: &mut dyn Conn,
    plan: &ModelPlan,
    outcome: &mut ModelOutcome,
) -> Result<bool, StoreError> {
    outcome.tests = datatests::run(tx, &plan.target, &plan.tests).await?;
    if let Some(failed) = outcome.tests.iter().find(|t| t.status == "failed") {
        outcome.failure = Some(failed.message.clone());
        return Ok(true);
    }
    Ok(false)
}

/// Runs the plan's expectations over `table`; returns `true` when one failed the step.
async fn expectations(
    tx: &mut dyn Conn,
    plan: &ModelPlan,
    table: &Ident,
    columns: &[Column],
    outcome: &mut ModelOutcome,
) -> Result<bool, StoreError> {
    let counts = all_counts(tx, plan, table).await;
    for (i, (name, check, action)) in plan.expectations.iter().enumerate() {
        let counted = counts.as_ref().ok().and_then(|c| c.get(i).copied());
        let failing = match counted {
            Some(n) => Ok(n),
            None => count(tx, table, Some(check)).await,
        }
        .map_err(|e| match e {
            StoreError::Unprocessable(m) | StoreError::Internal { message: m, .. } => {
                StoreError::Unprocessable(format!(
                    "expectation `{name}` of `{}`: `{check}` is not valid SQL here: {m}",
                    plan.target
                ))
            }
            other => other,
        })?;
        let status = match (failing, action) {
            (0, _) => "passed",
            (_, ExpectationAction::Warn) => "warned",
            (_, ExpectationAction::Drop) => "dropped",
            (_, ExpectationAction::Fail) => "failed",
        };
        outcome.expectations.push(ExpectationOutcome {
            name: name.clone(),
            status,
            failing_rows: failing,
        });
        if failing == 0 {
            continue;
        }
        match action {
            ExpectationAction::Fail => {
                let sample = sample(tx, table, check).await?;
                let rows: Vec<String> = sample
                    .iter()
                    .map(|r| serde_json::Value::Object(r.clone()).to_string())
                    .collect();
                outcome.failure = Some(format!(
                    "expectation `{name}` ({check}) failed on {failing} row(s) of `{}`; first failing rows: {}",
                    plan.target,
                    rows.join(", ")
                ));
                return Ok(true);
            }
            ExpectationAction::Warn | ExpectationAction::Drop => {
                quarantine(tx, plan, table, columns, name, check).await?;
                if *action == ExpectationAction::Drop {
                    tx.execute_script(&format!("DELETE FROM {table} WHERE ({check}) IS NOT TRUE"))
                        .await
                        .map_err(user_sql)?;
                    outcome.rows_dropped += failing;
                    outcome.rows_out = outcome.rows_out.saturating_sub(failing);
                }
            }
        }
    }
    Ok(false)
}

/// The failing rows of every expectation in one scan. Rows an earlier `drop` expectation
/// removes do not count against later ones, exactly as when they run one by one.
///
/// # Errors
/// The database's (a check that does not compile); callers fall back to one query per
/// expectation to name it.
async fn all_counts(
    tx: &mut dyn Conn,
    plan: &ModelPlan,
    table: &Ident,
) -> Result<Vec<u64>, StoreError> {
    if plan.expectations.len() < 2 {
        return Err(StoreError::internal("one expectation: count it alone"));
    }
    let mut sums = Vec::new();
    let mut kept = String::new();
    for (_, check, action) in &plan.expectations {
        sums.push(format!(
            "COALESCE(SUM(CASE WHEN ({check}) IS NOT TRUE{kept} THEN 1 ELSE 0 END), 0)"
        ));
        if *action == ExpectationAction::Drop {
            kept.push_str(&format!(" AND ({check}) IS TRUE"));
        }
    }
    let mut sql = Sql::new(tx.dialect());
    sql.push("SELECT ")
        .push(&sums.join(", "))
        .push(" FROM ")
        .ident(table);
    let types = vec![ColType::Int; sums.len()];
    // A savepoint keeps the transaction usable on PostgreSQL if a check does not compile.
    tx.execute_script("SAVEPOINT brigade_counts").await?;
    match tx.query(&sql, &types).await {
        Ok(rows) => {
            tx.execute_script("RELEASE SAVEPOINT brigade_counts")
                .await?;
            Ok(rows
                .first()
                .map(|r| {
                    r.iter()
                        .map(|v| match v {
                            Value::Int(n) => u64::try_from(*n).unwrap_or(0),
                            _ => 0,
                        })
                        .collect()
                })
                .unwrap_or_default())
        }
        Err(e) => {
            tx.execute_script("ROLLBACK TO SAVEPOINT brigade_counts")
                .await?;
            Err(e)
        }
    }
}

async fn count(tx: &mut dyn Conn, table: &Ident, failing: Option<&str>) -> Result<u64, StoreError> {
    let mut sql = Sql::new(tx.dialect());
    sql.push("SELECT count(*) FROM ").ident(table);
    if let Some(check) = failing {
        sql.push(" WHERE (").push(check).push(") IS NOT TRUE");
    }
    let rows = tx.query(&sql, &[ColType::Int]).await.map_err(user_sql)?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    })
}

async fn sample(tx: &mut dyn Conn, table: &Ident, check: &str) -> Result<Vec<JsonRow>, StoreError> {
    let mut sql = Sql::new(tx.dialect());
    sql.push("SELECT * FROM ")
        .ident(table)
        .push(" WHERE (")
        .push(check)
        .push(") IS NOT TRUE LIMIT 5");
    tx.query_json(&sql).await.map_err(user_sql)
}

/// The name of a model's quarantine table.
pub(crate) fn quarantine_table(target: &str) -> String {
    format!("{target}__quarantine").chars().take(63).collect()
}

/// Copies the failing rows of `check` into the model's quarantine table, creating it (or
/// adding new columns) as needed.
async fn quarantine(
    tx: &mut dyn Conn,
    plan: &ModelPlan,
    table: &Ident,
    columns: &[Column],
    name: &str,
    check: &str,
) -> Result<(), StoreError> {
    let qname = quarantine_table(&plan.target);
    let q = ident(&qname)?;
    match tables::columns(tx, &qname).await? {
        None => {
            tx.execute_script(&format!(
                "CREATE TABLE {q} AS SELECT CAST(NULL AS TEXT) AS _run_id, CAST(NULL AS TEXT) AS \
                 _expectation, CAST(NULL AS TEXT) AS _quarantined_at, s.* FROM {table} s WHERE 1 = 0"
            ))
            .await
            .map_err(user_sql)?;
        }
        Some(existing) => {
            for column in columns
                .iter()
                .filter(|c| !existing.iter().any(|e| e.name == c.name))
            {
                tx.execute_script(&format!(
                    "ALTER TABLE {q} ADD COLUMN {} {}",
                    ident(&column.name)?,
                    column.ty.sql(tx.dialect())
                ))
                .await?;
            }
        }
    }
    let list = columns
        .iter()
        .map(|c| ident(&c.name).map(|i| i.to_string()))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let mut sql = Sql::new(tx.dialect());
    sql.push("INSERT INTO ")
        .ident(&q)
        .push(" (_run_id, _expectation, _quarantined_at, ")
        .push(&list)
        .push(") SELECT ")
        .push("CAST(")
        .bind(Value::Text(plan.run_id.clone()))
        .push(" AS TEXT), ")
        .push("CAST(")
        .bind(Value::Text(name.to_string()))
        .push(" AS TEXT), ")
        .push("CAST(")
        .bind(Value::Text(brigade_core::time::now()))
        .push(" AS TEXT), ")
        .push(&list)
        .push(" FROM ")
        .ident(table)
        .push(" WHERE (")
        .push(check)
        .push(") IS NOT TRUE");
    tx.execute(&sql).await.map_err(user_sql)?;
    Ok(())
}

fn contract_violation(target: &str, existing: &[Column], new: &[Column]) -> Option<String> {
    let show = |cols: &[Column]| {
        cols.iter()
            .map(|c| format!("{} {}", c.name, c.ty.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    (existing != new).then(|| {
        format!(
            "contract of `{target}` is frozen: the table has ({}) but the model now returns ({}); \
             change the model back, or set contract = \"evolve\" and run with --full-refresh",
            show(existing),
            show(new)
        )
    })
}
