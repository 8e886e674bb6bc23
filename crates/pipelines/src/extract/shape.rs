//! JSON records (NDJSON, JSON arrays, API responses, scraped items) to typed rows. Nested
//! objects are flattened (`user.id` → `user_id`), arrays kept as JSON. Column types come
//! from the first records (a sample); a key first seen later adds a column.

use brigade_store::Row;
use brigade_store::warehouse::{Column, ColumnType};
use serde_json::{Map, Value as Json};

use super::{Batcher, Message, Rejected, infer, normalize};
use crate::error::PipelineError;

/// Records per type sample.
pub const SAMPLE: usize = 500;

/// Turns records into rows for one extract.
pub struct Shaper {
    columns: Vec<Column>,
    overrides: Vec<(String, ColumnType)>,
    sample: Vec<(String, u64, Map<String, Json>)>,
    ready: bool,
    cursor: Option<(String, Option<Json>)>,
    /// The source of the rows waiting in the batcher: they go out under it when the source
    /// changes, so `_source` names each row's own file or page.
    pending_source: Option<String>,
    /// The bronze table's columns: the type of a column whose sample is all NULL.
    existing: Vec<Column>,
}

impl Shaper {
    /// A shaper with type `overrides` and an optional incremental `cursor` (column, since).
    pub fn new(
        overrides: Vec<(String, ColumnType)>,
        cursor: Option<(String, Option<Json>)>,
    ) -> Self {
        Shaper {
            columns: Vec::new(),
            overrides,
            sample: Vec::new(),
            ready: false,
            cursor,
            pending_source: None,
            existing: Vec::new(),
        }
    }

    /// Columns the sample gives no type (only NULLs) take their type from `existing`, the
    /// bronze table's columns, rather than text.
    pub fn known(mut self, existing: Option<&[Column]>) -> Self {
        self.existing = existing.map(<[Column]>::to_vec).unwrap_or_default();
        self
    }

    /// The columns so far.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Takes one record read from `source` at `line`; messages to send go to `out`.
    ///
    /// # Errors
    /// A bad record under `on_bad_row = "fail"`, or a missing cursor column.
    pub fn push(
        &mut self,
        source: &str,
        line: u64,
        record: Map<String, Json>,
        batcher: &mut Batcher,
        out: &mut Vec<Message>,
    ) -> Result<(), PipelineError> {
        let record = flatten(record);
        if !self.ready {
            self.sample.push((source.to_string(), line, record));
            if self.sample.len() >= SAMPLE {
                self.settle(batcher, out)?;
            }
            return Ok(());
        }
        self.convert(source, line, &record, batcher, out)
    }

    /// Flushes the sample when the source had fewer records than a sample.
    ///
    /// # Errors
    /// As [`Shaper::push`].
    pub fn finish(
        &mut self,
        batcher: &mut Batcher,
        out: &mut Vec<Message>,
    ) -> Result<(), PipelineError> {
        if !self.ready {
            self.settle(batcher, out)?;
        }
        if let Some(source) = self.pending_source.take() {
            out.extend(batcher.drain(&source));
        }
        Ok(())
    }

    fn settle(
        &mut self,
        batcher: &mut Batcher,
        out: &mut Vec<Message>,
    ) -> Result<(), PipelineError> {
        let mut columns: Vec<(String, Option<ColumnType>)> = Vec::new();
        for (_, _, record) in &self.sample {
            for (key, value) in record {
                let (ty, _) = infer::from_json(value);
                match columns.iter_mut().find(|(k, _)| k == key) {
                    Some((_, slot)) => {
                        *slot = match (*slot, ty) {
                            (Some(a), Some(b)) => Some(infer::widen(a, b)),
                            (a, b) => a.or(b),
                        };
                    }
                    None => columns.push((key.clone(), ty)),
                }
            }
        }
        self.columns = columns
            .into_iter()
            .map(|(name, ty)| {
                let ty = self
                    .overrides
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| *t)
                    .or(ty)
                    .or_else(|| self.existing.iter().find(|c| c.name == name).map(|c| c.ty))
                    .unwrap_or(ColumnType::Text);
                Column { name, ty }
            })
            .collect();
        self.ready = true;
        out.push(Message::Columns(self.columns.clone()));
        // No columns (no records): nothing to filter, and nothing to complain about.
        if let Some((name, since)) = &self.cursor
            && !self.columns.is_empty()
        {
            batcher
                .start_cursor(name, &self.columns, since.as_ref())
                .map_err(PipelineError::Extract)?;
        }
        for (source, line, record) in std::mem::take(&mut self.sample) {
            self.convert(&source, line, &record, batcher, out)?;
        }
        Ok(())
    }

    fn convert(
        &mut self,
        source: &str,
        line: u64,
        record: &Map<String, Json>,
        batcher: &mut Batcher,
        out: &mut Vec<Message>,
    ) -> Result<(), PipelineError> {
        if self.pending_source.as_deref() != Some(source)
            && let Some(previous) = self.pending_source.replace(source.to_string())
        {
            out.extend(batcher.drain(&previous));
        }
        let mut added = false;
        for (key, value) in record {
            if !self.columns.iter().any(|c| c.name == *key) {
                let ty = self
                    .overrides
                    .iter()
                    .find(|(n, _)| n == key)
                    .map(|(_, t)| *t)
                    .or(infer::from_json(value).0)
                    .unwrap_or(ColumnType::Text);
                self.columns.push(Column {
                    name: key.clone(),
                    ty,
                });
                added = true;
            }
        }
        if added {
            // Rows already batched have fewer columns; the loader pads them.
            out.extend(batcher.drain(source));
            out.push(Message::Columns(self.columns.clone()));
        }
        let mut row: Row = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let value = record.get(&column.name).unwrap_or(&Json::Null);
            match infer::json_to(value, column.ty) {
                Ok(v) => row.push(v),
                Err(e) => {
                    return batcher.bad(Rejected {
                        source: source.to_string(),
                        line,
                        error: format!("column `{}`: {e}", column.name),
                        raw: Json::Object(record.clone()).to_string(),
                    });
                }
            }
        }
        batcher.row(row);
        Ok(())
    }
}

/// Flattens nested objects into `parent_child` keys and normalizes every key.
pub fn flatten(record: Map<String, Json>) -> Map<String, Json> {
    let mut out = Map::with_capacity(record.len());
    fn walk(prefix: &str, record: Map<String, Json>, out: &mut Map<String, Json>, depth: usize) {
        for (key, value) in record {
            let name = if prefix.is_empty() {
                normalize(&key)
            } else {
                normalize(&format!("{prefix}_{key}"))
            };
            match value {
                Json::Object(inner) if depth < 4 => walk(&name, inner, out, depth + 1),
                other => {
                    // Keys that normalize alike (`a b`, `a_b`) keep both values.
                    let mut unique = name.clone();
                    let mut n = 2;
                    while out.contains_key(&unique) {
                        unique = format!("{name}_{n}");
                        n += 1;
                    }
                    out.insert(unique, other);
                }
            }
        }
    }
    walk("", record, &mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BadRows;

    #[test]
    fn shapes_records_with_late_columns() {
        let mut shaper = Shaper::new(vec![], None);
        let mut batcher = Batcher::new("x", BadRows::Fail);
        let mut out = Vec::new();
        let rec = |v: Json| v.as_object().cloned().unwrap();
        shaper
            .push(
                "s",
                1,
                rec(serde_json::json!({"id": 1, "user": {"name": "a"}})),
                &mut batcher,
                &mut out,
            )
            .unwrap();
        shaper.finish(&mut batcher, &mut out).unwrap();
        shaper
            .push(
                "s",
                2,
                rec(serde_json::json!({"id": 2, "tags": ["a"]})),
                &mut batcher,
                &mut out,
            )
            .unwrap();
        let names: Vec<&str> = shaper.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "user_name", "tags"]);
        assert_eq!(shaper.columns()[2].ty, ColumnType::Json);
        assert!(matches!(out.last(), Some(Message::Columns(c)) if c.len() == 3));
        assert_eq!(batcher.rows.len(), 1);
        let bad = shaper.push(
            "s",
            3,
            rec(serde_json::json!({"id": "x"})),
            &mut batcher,
            &mut out,
        );
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("s line 3: column `id`")
        );
        let both = flatten(rec(serde_json::json!({"a b": 1, "a_b": 2})));
        assert_eq!(both.get("a_b"), Some(&serde_json::json!(1)));
        assert_eq!(both.get("a_b_2"), Some(&serde_json::json!(2)));
    }
}
