//! Record reads and writes over any [`Conn`]: the SQL for one collection's table, the
//! mapping of rows to JSON records, relation checks and `expand`.

use std::collections::{BTreeMap, BTreeSet};

use brigade_core::schema::input::RecordInput;
use brigade_core::schema::{Collection, FieldType};
use brigade_core::value::Value;
use serde_json::{Map, Value as Json};

use crate::access::{Access, RuleOp, rule_for};
use crate::conn::{ColType, Conn};
use crate::ddl::{column_type, ident, table};
use crate::error::StoreError;
use crate::query::filter::Plan;
use crate::query::{Compiled, Lookup, RequestContext, SortKey, Source, check};
use crate::sql::Sql;

/// A record as the API returns it.
pub type Record = Map<String, Json>;

/// The select list and decode types of a collection, in column order.
fn columns(c: &Collection) -> Result<(String, Vec<ColType>), StoreError> {
    let mut names = vec![
        "\"id\"".to_string(),
        "\"created\"".into(),
        "\"updated\"".into(),
    ];
    let mut types = vec![ColType::Text, ColType::Text, ColType::Text];
    for f in &c.fields {
        names.push(ident(&f.name)?.to_string());
        types.push(f.kind.into());
    }
    Ok((names.join(", "), types))
}

fn to_record(c: &Collection, row: Vec<Value>) -> Record {
    let mut rec = Map::with_capacity(row.len());
    let mut values = row.into_iter();
    for name in ["id", "created", "updated"] {
        rec.insert(
            name.to_string(),
            values.next().map_or(Json::Null, |v| v.to_json()),
        );
    }
    for (f, v) in c.fields.iter().zip(values) {
        rec.insert(f.name.clone(), v.to_json());
    }
    rec
}

/// Fails with a field error when a relation value names no record the caller may view: a
/// record hidden by the target's view rule answers exactly like a missing one, so a relation
/// field cannot be used to learn which ids exist.
async fn check_relations(
    conn: &mut dyn Conn,
    c: &Collection,
    input: &RecordInput,
    lookup: Lookup<'_>,
    access: &Access,
) -> Result<(), StoreError> {
    for (name, value) in &input.values {
        let Value::Text(id) = value else { continue };
        let Some(field) = c.field(name).filter(|f| f.kind == FieldType::Relation) else {
            continue;
        };
        let target_name = field.options.collection.as_deref().unwrap_or_default();
        if crate::account_refs::targets_accounts(field) {
            if !crate::account_refs::exists(conn, id).await? {
                return Err(StoreError::invalid(name, format!("no account `{id}`")));
            }
            continue;
        }
        if target_name == c.name && input.id.as_deref() == Some(id.as_str()) {
            continue; // a record may point at itself
        }
        let missing = || {
            StoreError::invalid(
                name,
                format!("no record `{id}` in collection `{target_name}`"),
            )
        };
        let target = if target_name == c.name {
            None
        } else {
            lookup(target_name)
        };
        let target = target.as_deref().unwrap_or(c);
        let visible = match rule_for(conn.dialect(), target, RuleOp::View, access, lookup, None) {
            Err(StoreError::Forbidden { .. }) => return Err(missing()),
            other => other?,
        };
        let mut sql = Sql::new(conn.dialect());
        sql.push(&format!("SELECT 1 FROM {} WHERE \"id\" = ", table(target)?))
            .bind(Value::Text(id.clone()));
        if let Some(rule) = visible {
            sql.push(" AND (").append(rule).push(")");
        }
        if conn.query(&sql, &[ColType::Int]).await?.is_empty() {
            return Err(missing());
        }
    }
    Ok(())
}

/// Whether the record `input` would become (with `id`, stamped `now`) meets `rule`: the
/// create rule is checked against a one-row derived table before anything is inserted, so a
/// refused caller learns nothing from unique or custom-id conflicts with hidden records.
pub(crate) async fn would_match(
    conn: &mut dyn Conn,
    c: &Collection,
    input: &RecordInput,
    id: &str,
    now: &str,
    rule: Sql,
) -> Result<bool, StoreError> {
    let dialect = conn.dialect();
    let mut sql = Sql::new(dialect);
    sql.push("SELECT 1 FROM (SELECT CAST(")
        .bind(Value::Text(id.to_string()))
        .push(" AS TEXT) AS \"id\", CAST(")
        .bind(Value::Text(now.to_string()))
        .push(" AS TEXT) AS \"created\", CAST(")
        .bind(Value::Text(now.to_string()))
        .push(" AS TEXT) AS \"updated\"");
    for f in &c.fields {
        let value = input
            .values
            .iter()
            .find(|(name, _)| *name == f.name)
            .map_or(Value::Null, |(_, v)| v.clone());
        sql.push(", CAST(").bind(value).push(&format!(
            " AS {}) AS {}",
            column_type(dialect, f.kind),
            ident(&f.name)?
        ));
    }
    sql.push(&format!(") AS {} WHERE ", table(c)?)).append(rule);
    Ok(!conn.query(&sql, &[ColType::Int]).await?.is_empty())
}

/// Inserts a record and returns it.
pub(crate) async fn insert(
    conn: &mut dyn Conn,
    c: &Collection,
    input: RecordInput,
    lookup: Lookup<'_>,
    access: &Access,
    now: String,
) -> Result<Record, StoreError> {
    check_relations(conn, c, &input, lookup, access).await?;
    let id = input.id.unwrap_or_else(brigade_core::ids::new_id);
    let (select, types) = columns(c)?;
    let mut sql = Sql::new(conn.dialect());
    let mut names = vec![
        "\"id\"".to_string(),
        "\"created\"".into(),
        "\"updated\"".into(),
    ];
    for (name, _) in &input.values {
        names.push(ident(name)?.to_string());
    }
    sql.push(&format!(
        "INSERT INTO {} ({}) VALUES (",
        table(c)?,
        names.join(", ")
    ));
    sql.bind(Value::Text(id))
        .push(", ")
        .bind(Value::Text(now.clone()))
        .push(", ")
        .bind(Value::Text(now));
    for (_, value) in input.values {
        sql.push(", ").bind(value);
    }
    sql.push(&format!(") RETURNING {select}"));
    let row = conn
        .query(&sql, &types)
        .await?
        .pop()
        .ok_or_else(|| StoreError::internal("INSERT returned no row"))?;
    Ok(to_record(c, row))
}

/// Updates the given fields of a record and returns it.
pub(crate) async fn update(
    conn: &mut dyn Conn,
    c: &Collection,
    id: &str,
    input: RecordInput,
    lookup: Lookup<'_>,
    access: &Access,
) -> Result<Record, StoreError> {
    check_relations(conn, c, &input, lookup, access).await?;
    let (select, types) = columns(c)?;
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!("UPDATE {} SET \"updated\" = ", table(c)?))
        .bind(Value::Text(brigade_core::time::now()));
    for (name, value) in input.values {
        sql.push(&format!(", {} = ", ident(&name)?)).bind(value);
    }
    sql.push(" WHERE \"id\" = ")
        .bind(Value::Text(id.to_string()));
    sql.push(&format!(" RETURNING {select}"));
    match conn.query(&sql, &types).await?.pop() {
        Some(row) => Ok(to_record(c, row)),
        None => Err(not_found(c, id)),
    }
}

/// Deletes a record.
pub(crate) async fn delete(
    conn: &mut dyn Conn,
    c: &Collection,
    id: &str,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!("DELETE FROM {} WHERE \"id\" = ", table(c)?))
        .bind(Value::Text(id.to_string()));
    match conn.execute(&sql).await? {
        0 => Err(not_found(c, id)),
        _ => Ok(()),
    }
}

/// Reads one record, optionally only when `rule` also holds.
pub(crate) async fn get(
    conn: &mut dyn Conn,
    c: &Collection,
    id: &str,
    rule: Option<Sql>,
) -> Result<Record, StoreError> {
    let (select, types) = columns(c)?;
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!(
        "SELECT {select} FROM {} WHERE \"id\" = ",
        table(c)?
    ))
    .bind(Value::Text(id.to_string()));
    if let Some(rule) = rule {
        sql.push(" AND (").append(rule).push(")");
    }
    match conn.query(&sql, &types).await?.pop() {
        Some(row) => Ok(to_record(c, row)),
        None => Err(not_found(c, id)),
    }
}

pub(crate) fn not_found(c: &Collection, id: &str) -> StoreError {
    StoreError::RecordNotFound {
        collection: c.name.clone(),
        id: id.to_string(),
    }
}

/// A page of records and, unless skipped, the total count.
pub(crate) async fn list(
    conn: &mut dyn Conn,
    c: &Collection,
    filter: Option<Sql>,
    sort: &[SortKey],
    page: i64,
    per_page: i64,
    count: bool,
) -> Result<(Vec<Record>, Option<i64>), StoreError> {
    let (select, types) = columns(c)?;
    let t = table(c)?;
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!("SELECT {select} FROM {t}"));
    if let Some(f) = &filter {
        sql.push(" WHERE ").append(f.clone());
    }
    let order = sort
        .iter()
        .map(|k| {
            ident(&k.column).map(|i| format!("{i}{}", if k.descending { " DESC" } else { " ASC" }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    sql.push(&format!(" ORDER BY {} LIMIT ", order.join(", ")))
        .bind(Value::Int(per_page));
    sql.push(" OFFSET ")
        .bind(Value::Int((page - 1).saturating_mul(per_page)));
    let items = conn
        .query(&sql, &types)
        .await?
        .into_iter()
        .map(|r| to_record(c, r))
        .collect();
    let total = if count {
        Some(self::count(conn, c, filter).await?)
    } else {
        None
    };
    Ok((items, total))
}

/// How many records match `filter`.
pub(crate) async fn count(
    conn: &mut dyn Conn,
    c: &Collection,
    filter: Option<Sql>,
) -> Result<i64, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push(&format!("SELECT COUNT(*) FROM {}", table(c)?));
    if let Some(f) = filter {
        sql.push(" WHERE ").append(f);
    }
    let rows = conn.query(&sql, &[ColType::Int]).await?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    })
}

/// The view rule of a collection for `expand`: `None` hides the relation entirely.
pub(crate) type ViewRule<'a> = &'a (dyn Fn(&Collection) -> Option<Option<Sql>> + Send + Sync);

/// Adds `expand: {field: record}` to each record for each relation path, showing only the
/// related records the caller may view.
pub(crate) async fn expand(
    conn: &mut dyn Conn,
    c: &Collection,
    records: &mut [Record],
    paths: &[Vec<String>],
    lookup: Lookup<'_>,
    view_rule: ViewRule<'_>,
    viewer: &Access,
) -> Result<(), StoreError> {
    // Group paths by their first step so each relation is fetched once per level.
    let mut by_first: BTreeMap<&str, Vec<Vec<String>>> = BTreeMap::new();
    for p in paths {
        if let Some((first, rest)) = p.split_first() {
            let entry = by_first.entry(first.as_str()).or_default();
            if !rest.is_empty() {
                entry.push(rest.to_vec());
            }
        }
    }
    for (field_name, rest) in by_first {
        if let Some(field) = c
            .field(field_name)
            .filter(|f| crate::account_refs::targets_accounts(f))
        {
            let ids = relation_ids(records, &field.name);
            let profiles = crate::account_refs::public_profiles(conn, &ids, viewer).await?;
            insert_expanded(records, field_name, &profiles);
            continue;
        }
        let Some(target) = c
            .field(field_name)
            .and_then(|f| f.options.collection.as_deref())
            .and_then(lookup)
        else {
            continue;
        };
        let Some(rule) = view_rule(&target) else {
            continue;
        };
        let ids = relation_ids(records, field_name);
        if ids.is_empty() {
            continue;
        }
        let (select, types) = columns(&target)?;
        let mut sql = Sql::new(conn.dialect());
        sql.push(&format!(
            "SELECT {select} FROM {} WHERE \"id\" IN (",
            table(&target)?
        ));
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Value::Text(id.clone()));
        }
        sql.push(")");
        if let Some(rule) = rule {
            sql.push(" AND (").append(rule).push(")");
        }
        let mut related: Vec<Record> = conn
            .query(&sql, &types)
            .await?
            .into_iter()
            .map(|r| to_record(&target, r))
            .collect();
        if !rest.is_empty() {
            Box::pin(expand(
                conn,
                &target,
                &mut related,
                &rest,
                lookup,
                view_rule,
                viewer,
            ))
            .await?;
        }
        let by_id: BTreeMap<String, Record> = related
            .into_iter()
            .filter_map(|r| {
                r.get("id")
                    .and_then(Json::as_str)
                    .map(|id| (id.to_string(), r.clone()))
            })
            .collect();
        insert_expanded(records, field_name, &by_id);
    }
    Ok(())
}

/// The distinct ids the records' relation `field` holds.
fn relation_ids(records: &[Record], field: &str) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| r.get(field).and_then(Json::as_str).map(str::to_string))
        .collect()
}

/// Puts `related[id]` under `expand.<field>` of each record whose `field` is `id`.
fn insert_expanded(records: &mut [Record], field: &str, related: &BTreeMap<String, Record>) {
    for rec in records.iter_mut() {
        let Some(found) = rec
            .get(field)
            .and_then(Json::as_str)
            .and_then(|id| related.get(id))
            .cloned()
        else {
            continue;
        };
        let slot = rec
            .entry("expand")
            .or_insert_with(|| Json::Object(Map::new()));
        if let Json::Object(map) = slot {
            map.insert(field.to_string(), Json::Object(found));
        }
    }
}

/// Keeps only the requested keys of a record.
pub(crate) fn project(rec: &mut Record, fields: &[String]) {
    rec.retain(|k, _| fields.iter().any(|f| f == k));
}

/// Compiles a rule (with the caller's `@request` values) against `c`.
pub(crate) fn rule_sql(
    dialect: crate::sql::Dialect,
    c: &Collection,
    source: &str,
    lookup: Lookup<'_>,
    request: &RequestContext,
    metadata: Option<&str>,
) -> Result<Sql, StoreError> {
    compile_source(dialect, c, source, lookup, Source::Rule(request), metadata).map(|c| c.sql)
}

/// Compiles a caller's `filter=` against `c`: relation walks see only what `access` may
/// view, and a non-superuser's filter has a cost budget. With `metadata`, names that are not
/// columns are keys of that JSON column.
pub(crate) fn filter_sql(
    dialect: crate::sql::Dialect,
    c: &Collection,
    source: &str,
    lookup: Lookup<'_>,
    access: &Access,
    metadata: Option<&str>,
) -> Result<Compiled, StoreError> {
    compile_source(dialect, c, source, lookup, Source::Filter(access), metadata)
}

fn compile_source(
    dialect: crate::sql::Dialect,
    c: &Collection,
    source: &str,
    lookup: Lookup<'_>,
    kind: Source<'_>,
    metadata: Option<&str>,
) -> Result<Compiled, StoreError> {
    let plan = check_source(c, source, lookup, kind, metadata)?;
    Ok(Compiled {
        sql: crate::query::filter::sql::emit(dialect, &plan),
        scans: plan.scans(),
    })
}

/// Parses and checks `source` against `c`.
///
/// # Errors
/// [`StoreError::Invalid`] on key `filter`: NUL characters, syntax errors, and whatever
/// [`check`] refuses.
pub(crate) fn check_source(
    c: &Collection,
    source: &str,
    lookup: Lookup<'_>,
    kind: Source<'_>,
    metadata: Option<&str>,
) -> Result<Plan, StoreError> {
    if let Some(at) = source.chars().position(|c| c == '\0') {
        return Err(StoreError::invalid(
            "filter",
            format!("at position {at}: NUL characters are not allowed"),
        ));
    }
    let expr = brigade_core::filter::parse(source)
        .map_err(|e| StoreError::invalid("filter", e.to_string()))?;
    check(c, lookup, source, &expr, kind, metadata)
}
