//! dbt's data tests over a pipeline table: `unique`, `relationships`, `row_count`, a SQL
//! expression over the whole table, and row checks (`not_null`, `accepted_values`, a model's
//! `check`). Each test is a query returning its failing rows; the count says whether it
//! passed and the first rows are the sample a user sees. They run inside a step's
//! publishing transaction (a failing `fail` test publishes nothing) or alone, read-only, for
//! `brigade pipeline test`.

use brigade_core::value::Value;

use super::Warehouse;
use super::models::ExpectationAction;
use super::tables::ident;
use super::user_sql;
use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::{Ident, Sql};

/// What a test checks.
#[derive(Debug, Clone, PartialEq)]
pub enum TestKind {
    /// A SQL boolean every row must satisfy (`not_null`, `accepted_values`, `check`).
    Row(String),
    /// No two rows share these columns (rows with a NULL in them are ignored).
    Unique(Vec<String>),
    /// Every non-NULL `column` is a `to_column` of table `to_table`.
    Relationships {
        column: String,
        to_table: String,
        to_column: String,
    },
    /// The table's row count is within bounds.
    RowCount { min: Option<u64>, max: Option<u64> },
    /// A SQL boolean over the table, usually an aggregate: `sum(amount) > 0`.
    Expression(String),
}

/// One declared test.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTest {
    pub name: String,
    /// The column it is about, for reports.
    pub column: Option<String>,
    pub kind: TestKind,
    /// `Warn` reports, `Fail` fails the step (`Drop` is treated as `Warn` here).
    pub action: ExpectationAction,
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TestOutcome {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `passed`, `warned`, `failed`, or `error` (the test's SQL did not run).
    pub status: &'static str,
    pub failing_rows: u64,
    /// Up to five failing rows (or values) as JSON text.
    pub sample: Vec<String>,
    /// What failed, in a sentence (empty when passed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Quotes `v` as a SQL literal (text, number or boolean) for `accepted_values`.
///
/// # Errors
/// A value that is not a string, number or boolean.
pub fn literal(v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(format!("'{}'", s.replace('\'', "''"))),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.to_string()),
        other => Err(format!("`{other}` is not a string, number or boolean")),
    }
}

/// The row check of `not_null` on `column`.
///
/// # Errors
/// An invalid column name.
pub fn not_null_check(column: &str) -> Result<String, StoreError> {
    Ok(format!("{} IS NOT NULL", ident(column)?))
}

/// The row check of `accepted_values` on `column` (NULLs pass, as in dbt).
///
/// # Errors
/// An invalid column name or value.
pub fn accepted_values_check(
    column: &str,
    values: &[serde_json::Value],
) -> Result<String, StoreError> {
    let c = ident(column)?;
    let list = values
        .iter()
        .map(literal)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| StoreError::invalid("values", m))?;
    Ok(format!("{c} IS NULL OR {c} IN ({})", list.join(", ")))
}

impl DataTest {
    /// A `SELECT` of the failing rows of this test over `table`.
    fn failing(&self, table: &Ident) -> Result<String, StoreError> {
        Ok(match &self.kind {
            TestKind::Row(check) => format!("SELECT * FROM {table} WHERE ({check}) IS NOT TRUE"),
            TestKind::Unique(columns) => {
                let cols = columns
                    .iter()
                    .map(|c| ident(c).map(|i| i.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                let list = cols.join(", ");
                let not_null = cols
                    .iter()
                    .map(|c| format!("{c} IS NOT NULL"))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!(
                    "SELECT {list}, count(*) AS n_rows FROM {table} WHERE {not_null} \
                     GROUP BY {list} HAVING count(*) > 1"
                )
            }
            TestKind::Relationships {
                column,
                to_table,
                to_column,
            } => {
                let (c, t, tc) = (ident(column)?, ident(to_table)?, ident(to_column)?);
                format!(
                    "SELECT s.{c} FROM {table} s WHERE s.{c} IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM {t} o WHERE o.{tc} = s.{c})"
                )
            }
            TestKind::RowCount { min, max } => {
                let mut out = Vec::new();
                if let Some(min) = min {
                    out.push(format!("n < {min}"));
                }
                if let Some(max) = max {
                    out.push(format!("n > {max}"));
                }
                if out.is_empty() {
                    out.push("1 = 0".into());
                }
                format!(
                    "SELECT n AS row_count FROM (SELECT count(*) AS n FROM {table}) x WHERE {}",
                    out.join(" OR ")
                )
            }
            TestKind::Expression(expr) => format!(
                "SELECT ok AS expression_true FROM (SELECT CASE WHEN ({expr}) THEN 1 ELSE 0 END \
                 AS ok FROM {table}) x WHERE ok = 0"
            ),
        })
    }

    /// What a failure means, for the message.
    fn describe(&self, failing: u64) -> String {
        let what = match &self.kind {
            TestKind::Row(check) => format!("{failing} row(s) fail `{check}`"),
            TestKind::Unique(columns) => format!(
                "{failing} value(s) of ({}) appear more than once",
                columns.join(", ")
            ),
            TestKind::Relationships {
                column,
                to_table,
                to_column,
            } => format!("{failing} row(s) have a `{column}` not found in {to_table}.{to_column}"),
            TestKind::RowCount { min, max } => match (min, max) {
                (Some(min), Some(max)) => format!("expected between {min} and {max} rows"),
                (Some(min), None) => format!("expected at least {min} rows"),
                (None, Some(max)) => format!("expected at most {max} rows"),
                (None, None) => "expected any number of rows".into(),
            },
            TestKind::Expression(expr) => format!("`{expr}` is not true"),
        };
        match &self.column {
            Some(c) => format!("test `{}` on column `{c}` failed: {what}", self.name),
            None => format!("test `{}` failed: {what}", self.name),
        }
    }
}

/// Runs `tests` over `table` in `tx`. A test whose SQL does not run is an error with its
/// name (callers inside a step fail the step with it).
///
/// # Errors
/// The database's, naming the test.
pub(crate) async fn run(
    tx: &mut dyn Conn,
    table: &str,
    tests: &[DataTest],
) -> Result<Vec<TestOutcome>, StoreError> {
    let t = ident(table)?;
    let mut out = Vec::with_capacity(tests.len());
    for test in tests {
        out.push(run_one(tx, &t, test).await.map_err(|e| match e {
            StoreError::Unprocessable(m) | StoreError::Internal { message: m, .. } => {
                StoreError::Unprocessable(format!(
                    "test `{}` of `{table}` could not run: {m}",
                    test.name
                ))
            }
            other => other,
        })?);
    }
    Ok(out)
}

async fn run_one(
    tx: &mut dyn Conn,
    table: &Ident,
    test: &DataTest,
) -> Result<TestOutcome, StoreError> {
    let failing_sql = test.failing(table)?;
    let mut sql = Sql::new(tx.dialect());
    sql.push("SELECT count(*) FROM (")
        .push(&failing_sql)
        .push(") failing");
    let rows = tx.query(&sql, &[ColType::Int]).await.map_err(user_sql)?;
    let failing = match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    };
    let mut outcome = TestOutcome {
        name: test.name.clone(),
        column: test.column.clone(),
        status: "passed",
        failing_rows: failing,
        sample: Vec::new(),
        message: String::new(),
    };
    if failing == 0 {
        return Ok(outcome);
    }
    let mut sql = Sql::new(tx.dialect());
    sql.push(&failing_sql).push(" LIMIT 5");
    outcome.sample = tx
        .query_json(&sql)
        .await
        .map_err(user_sql)?
        .into_iter()
        .map(|r| serde_json::Value::Object(r).to_string())
        .collect();
    outcome.status = match test.action {
        ExpectationAction::Fail => "failed",
        ExpectationAction::Warn | ExpectationAction::Drop => "warned",
    };
    outcome.message = format!(
        "{}; e.g. {}",
        test.describe(failing),
        outcome.sample.join(", ")
    );
    Ok(outcome)
}

impl Warehouse<'_> {
    /// Runs `tests` over the current `table`, reading only: `brigade pipeline test`. A test
    /// whose SQL does not run comes back with status `error` and the database's message; a
    /// missing table fails every test.
    ///
    /// # Errors
    /// Only when the database is unreachable.
    pub async fn run_data_tests(
        self,
        table: &str,
        tests: &[DataTest],
    ) -> Result<Vec<TestOutcome>, StoreError> {
        let t = ident(table)?;
        let mut conn = self.store.db.read().await?;
        let exists = super::tables::columns(conn.as_mut(), table)
            .await?
            .is_some();
        let mut out = Vec::with_capacity(tests.len());
        for test in tests {
            let outcome = if exists {
                run_one(conn.as_mut(), &t, test).await
            } else {
                Err(StoreError::Unprocessable(format!(
                    "table `{table}` does not exist yet; run the pipeline first"
                )))
            };
            out.push(match outcome {
                Ok(o) => o,
                Err(e @ StoreError::Unavailable { .. }) => return Err(e),
                Err(e) => TestOutcome {
                    name: test.name.clone(),
                    column: test.column.clone(),
                    status: "error",
                    failing_rows: 0,
                    sample: Vec::new(),
                    message: format!("test `{}` could not run: {e}", test.name),
                },
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_checks_and_failing_queries() {
        assert_eq!(not_null_check("id").unwrap(), "\"id\" IS NOT NULL");
        assert_eq!(
            accepted_values_check("status", &[serde_json::json!("it's"), serde_json::json!(2)])
                .unwrap(),
            "\"status\" IS NULL OR \"status\" IN ('it''s', 2)"
        );
        assert!(accepted_values_check("s", &[serde_json::json!([1])]).is_err());
        assert!(not_null_check("bad name").is_err());
        let t = Ident::parse("orders").unwrap();
        let unique = DataTest {
            name: "unique_id".into(),
            column: Some("id".into()),
            kind: TestKind::Unique(vec!["id".into()]),
            action: ExpectationAction::Fail,
        };
        assert!(
            unique
                .failing(&t)
                .unwrap()
                .contains("GROUP BY \"id\" HAVING count(*) > 1")
        );
        assert!(unique.describe(2).contains("column `id`"));
        let count = DataTest {
            name: "rows".into(),
            column: None,
            kind: TestKind::RowCount {
                min: Some(1),
                max: None,
            },
            action: ExpectationAction::Warn,
        };
        assert!(count.failing(&t).unwrap().ends_with("WHERE n < 1"));
    }
}
