//! Snapshots (slowly changing dimensions, type 2): a model's rows kept as versions per key,
//! each with `valid_from` and `valid_to` (NULL while current), as dbt snapshots do. A
//! version closes when its row changes (the `check` strategy compares columns; the
//! `updated_at` strategy trusts a newer timestamp) and, optionally, when its key leaves
//! the source. History is never rebuilt: a full refresh leaves it as it is.

use super::datatests::{self, DataTest, TestKind};
use super::models::ExpectationAction;
use super::tables::{self, Column, ColumnType, ident};
use super::user_sql;
use crate::conn::Conn;
use crate::error::StoreError;
use crate::sql::{Dialect, Ident, Sql};

/// The validity columns every snapshot table has.
pub const VALID_FROM: &str = "valid_from";
pub const VALID_TO: &str = "valid_to";

/// How a snapshot tells a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    pub unique_key: Vec<String>,
    /// The `check` strategy's columns; `None` with no `updated_at`: every non-key column.
    pub check_cols: Option<Vec<String>>,
    /// The `updated_at` strategy's timestamp column.
    pub updated_at: Option<String>,
    /// Close the current version of keys missing from the source.
    pub invalidate_hard_deletes: bool,
}

/// What one snapshot step changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SnapshotCounts {
    /// New versions written (new keys and changed rows).
    pub inserted: u64,
    /// Versions closed (changed or deleted rows).
    pub closed: u64,
}

/// Applies `staging` (the model's rows this run) to the snapshot table `target` at `now`.
/// A user mistake (duplicate keys, a missing column, a table that is not a snapshot) is
/// `Err(Ok(message))`: the step fails and nothing changes.
pub(super) async fn apply(
    tx: &mut dyn Conn,
    staging: &Ident,
    target_name: &str,
    columns: &[Column],
    spec: &SnapshotSpec,
    now: &str,
) -> Result<Result<SnapshotCounts, String>, StoreError> {
    let dialect = tx.dialect();
    let target = ident(target_name)?;
    for reserved in [VALID_FROM, VALID_TO] {
        if columns.iter().any(|c| c.name == reserved) {
            return Ok(Err(format!(
                "snapshot `{target_name}`: the model returns a `{reserved}` column, which the snapshot adds itself; rename it"
            )));
        }
    }
    let named = |col: &str, role: &str| -> Result<Result<Ident, String>, StoreError> {
        if !columns.iter().any(|c| c.name == col) {
            return Ok(Err(format!(
                "snapshot `{target_name}`: its {role} `{col}` is not a column of the model (it has: {})",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Ok(ident(col)?))
    };
    let mut keys = Vec::new();
    for k in &spec.unique_key {
        match named(k, "unique_key")? {
            Ok(k) => keys.push(k),
            Err(m) => return Ok(Err(m)),
        }
    }
    let updated_at = match &spec.updated_at {
        Some(u) => match named(u, "updated_at")? {
            Ok(u) => Some(u),
            Err(m) => return Ok(Err(m)),
        },
        None => None,
    };
    let mut checked = Vec::new();
    let check_names: Vec<String> = match &spec.check_cols {
        Some(cols) => cols.clone(),
        None => columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|c| !spec.unique_key.contains(c))
            .collect(),
    };
    for c in &check_names {
        match named(c, "check_cols column")? {
            Ok(c) => checked.push(c),
            Err(m) => return Ok(Err(m)),
        }
    }
    if let Some(message) = key_problem(tx, staging, target_name, &spec.unique_key).await? {
        return Ok(Err(message));
    }
    let data: Vec<Ident> = columns
        .iter()
        .map(|c| ident(&c.name))
        .collect::<Result<_, _>>()?;
    let list = |prefix: &str| {
        data.iter()
            .map(|c| format!("{prefix}{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // `t` is how the statement names the snapshot table: an alias or the table itself.
    let same_key = |t: &str| {
        keys.iter()
            .map(|k| format!("{t}.{k} = s.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let ts = ColumnType::Timestamp.sql(dialect);
    let now_sql = match dialect {
        Dialect::Postgres => format!("CAST('{now}' AS {ts})"),
        Dialect::Sqlite => format!("'{now}'"),
    };
    // When a version starts: the run's time, or the row's own timestamp (the run's time
    // when the row has none).
    let from_expr = match &updated_at {
        Some(u) => match dialect {
            Dialect::Postgres => format!("COALESCE(CAST(s.{u} AS {ts}), {now_sql})"),
            Dialect::Sqlite => format!("COALESCE(s.{u}, {now_sql})"),
        },
        None => now_sql.clone(),
    };

    let existing = tables::columns(tx, target_name).await?;
    let Some(existing) = existing else {
        let mut defs: Vec<(Ident, ColumnType)> = columns
            .iter()
            .map(|c| Ok((ident(&c.name)?, c.ty)))
            .collect::<Result<_, StoreError>>()?;
        defs.push((ident(VALID_FROM)?, ColumnType::Timestamp));
        defs.push((ident(VALID_TO)?, ColumnType::Timestamp));
        tx.execute_script(&tables::create_table(dialect, &target, &defs))
            .await?;
        let mut sql = Sql::new(dialect);
        sql.push(&format!(
            "INSERT INTO {target} ({}, {VALID_FROM}, {VALID_TO}) SELECT {}, {from_expr}, NULL FROM {staging} s",
            list(""),
            list("s.")
        ));
        let inserted = tx.execute(&sql).await.map_err(user_sql)?;
        let index = ident(
            &format!("{target_name}__key")
                .chars()
                .take(63)
                .collect::<String>(),
        )?;
        let key_list = keys
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        tx.execute_script(&format!(
            "CREATE INDEX IF NOT EXISTS {index} ON {target} ({key_list}, {VALID_TO})"
        ))
        .await?;
        return Ok(Ok(SnapshotCounts {
            inserted,
            closed: 0,
        }));
    };
    if !existing.iter().any(|c| c.name == VALID_FROM)
        || !existing.iter().any(|c| c.name == VALID_TO)
    {
        return Ok(Err(format!(
            "`{target_name}` exists and is not a snapshot (no valid_from/valid_to columns); rename the model or drop the table"
        )));
    }
    // New source columns join the history (NULL in older versions).
    for c in columns {
        if !existing.iter().any(|e| e.name == c.name) {
            tx.execute_script(&format!(
                "ALTER TABLE {target} ADD COLUMN {} {}",
                ident(&c.name)?,
                c.ty.sql(dialect)
            ))
            .await?;
        }
    }
    let t = target.to_string();
    let changed = match &updated_at {
        // A timestamp appearing where there was none is a change too.
        Some(u) => match dialect {
            Dialect::Postgres => format!(
                "CAST(s.{u} AS {ts}) > CAST({t}.{u} AS {ts}) OR ({t}.{u} IS NULL AND s.{u} IS NOT NULL)"
            ),
            Dialect::Sqlite => {
                format!("s.{u} > {t}.{u} OR ({t}.{u} IS NULL AND s.{u} IS NOT NULL)")
            }
        },
        None if checked.is_empty() => "FALSE".to_string(),
        None => checked
            .iter()
            .map(|c| format!("s.{c} IS DISTINCT FROM {t}.{c}"))
            .collect::<Vec<_>>()
            .join(" OR "),
    };
    // Close the current versions of changed rows, at the time the new version starts.
    let mut sql = Sql::new(dialect);
    sql.push(&format!(
        "UPDATE {target} SET {VALID_TO} = (SELECT {from_expr} FROM {staging} s WHERE {same_key}) \
         WHERE {VALID_TO} IS NULL AND EXISTS (SELECT 1 FROM {staging} s WHERE {same_key} AND ({changed}))",
        same_key = same_key(&t),
    ));
    let mut closed = tx.execute(&sql).await.map_err(user_sql)?;
    // Keys gone from the source.
    if spec.invalidate_hard_deletes {
        let mut sql = Sql::new(dialect);
        sql.push(&format!(
            "UPDATE {target} SET {VALID_TO} = {now_sql} WHERE {VALID_TO} IS NULL \
             AND NOT EXISTS (SELECT 1 FROM {staging} s WHERE {same_key})",
            same_key = same_key(&t),
        ));
        closed += tx.execute(&sql).await.map_err(user_sql)?;
    }
    // New keys, changed rows and returning keys have no current version now.
    let mut sql = Sql::new(dialect);
    sql.push(&format!(
        "INSERT INTO {target} ({}, {VALID_FROM}, {VALID_TO}) SELECT {}, {from_expr}, NULL FROM {staging} s \
         WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {same_key} AND t.{VALID_TO} IS NULL)",
        list(""),
        list("s."),
        same_key = same_key("t"),
    ));
    let inserted = tx.execute(&sql).await.map_err(user_sql)?;
    Ok(Ok(SnapshotCounts { inserted, closed }))
}

/// Why the model's rows cannot be tracked by `keys`, if they cannot: a key with a NULL part
/// matches no version (it would get a new one every run), and a repeated key has no single
/// current version. Checked with the data tests' `not_null` and `unique`.
async fn key_problem(
    tx: &mut dyn Conn,
    staging: &Ident,
    target_name: &str,
    keys: &[String],
) -> Result<Option<String>, StoreError> {
    let all_set = keys
        .iter()
        .map(|k| ident(k).map(|k| format!("{k} IS NOT NULL")))
        .collect::<Result<Vec<_>, _>>()?
        .join(" AND ");
    let key_list = keys.join(", ");
    let test = |name: &str, kind: TestKind| DataTest {
        name: name.into(),
        column: Some(key_list.clone()),
        kind,
        action: ExpectationAction::Fail,
    };
    let tests = [
        test("key_not_null", TestKind::Row(all_set)),
        test("key_unique", TestKind::Unique(keys.to_vec())),
    ];
    let outcomes = datatests::run(tx, staging.as_str(), &tests).await?;
    Ok(match outcomes.iter().position(|o| o.status != "passed") {
        None => None,
        Some(0) => Some(format!(
            "snapshot `{target_name}`: {} row(s) have a NULL unique_key ({key_list}); a snapshot tracks rows by key, so filter them out or choose a key that is always set",
            outcomes[0].failing_rows
        )),
        Some(_) => Some(format!(
            "snapshot `{target_name}`: unique_key ({key_list}) is not unique in the model's rows: {} key(s) occur more than once, e.g. {}",
            outcomes[1].failing_rows,
            outcomes[1].sample.join(", ")
        )),
    })
}
