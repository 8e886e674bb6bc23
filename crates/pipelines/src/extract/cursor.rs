//! The incremental cursor of an extract: which rows are new since the last load, and why
//! the others were left out.
//!
//! As in dlt, the comparison is `>=`: a row whose cursor equals the last stored value may be
//! a late arrival (two rows share a timestamp, the second was written after the last load).
//! To load it exactly once, each load remembers the keys of the rows it loaded at its
//! largest cursor value (the *boundary*: the primary key, or a hash of the whole row when
//! there is none), and the next load skips rows at that value whose key it has seen. A
//! cursor stored without boundary keys (by an older version) counts every row at its value
//! as seen, as the strict `>` of that version did, so an upgrade loads nothing twice.
//! Rows left out are counted by reason ([`Skipped`]) for the step report.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use brigade_core::value::Value;
use brigade_store::Row;
use brigade_store::warehouse::Column;
use serde::{Deserialize, Serialize};

use super::infer;

/// Rows an extract read but did not load, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The cursor is older than the last load's.
    #[serde(default)]
    pub below_cursor: u64,
    /// The cursor column is NULL: the row cannot be placed, so incremental loads leave it out.
    #[serde(default)]
    pub null_cursor: u64,
    /// The cursor equals the last load's and the row was loaded then.
    #[serde(default)]
    pub boundary_duplicate: u64,
    /// Outside a backfill's `from <= cursor < to`.
    #[serde(default)]
    pub outside_range: u64,
    /// Did not parse, with `on_bad_row = "skip"`.
    #[serde(default)]
    pub bad_row: u64,
}

impl Skipped {
    /// Whether nothing was skipped (the report then leaves the counts out).
    pub fn is_empty(&self) -> bool {
        *self == Skipped::default()
    }

    /// All rows skipped.
    pub fn total(&self) -> u64 {
        self.below_cursor
            + self.null_cursor
            + self.boundary_duplicate
            + self.outside_range
            + self.bad_row
    }
}

/// Filters rows past the incremental cursor and tracks the largest value.
#[derive(Debug, Clone)]
pub struct CursorFilter {
    index: usize,
    since: Option<Value>,
    /// Keys of the rows loaded at `since` (the last load's boundary); `None`: unknown, every
    /// row at `since` counts as loaded.
    seen: Option<BTreeSet<String>>,
    /// Columns identifying a row (the primary key); empty: the whole row.
    keys: Vec<usize>,
    /// Backfill bounds: `from <= cursor < to`.
    range: Option<(Value, Value)>,
    pub max: Option<Value>,
    /// Keys of the kept rows at `max`.
    at_max: BTreeSet<String>,
    pub skipped: Skipped,
}

impl CursorFilter {
    /// A filter on column `name` of `columns`, keeping rows at or after `since`.
    ///
    /// # Errors
    /// The cursor column is not among the columns.
    pub fn new(
        name: &str,
        columns: &[Column],
        since: Option<&serde_json::Value>,
    ) -> Result<CursorFilter, String> {
        let index = columns.iter().position(|c| c.name == name).ok_or_else(|| {
            format!(
                "the incremental cursor `{name}` is not a column of the source (columns: {})",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let since = since.map(|s| infer::json_to(s, columns[index].ty).unwrap_or(Value::Null));
        Ok(CursorFilter {
            index,
            since: since.filter(|v| *v != Value::Null),
            seen: None,
            keys: Vec::new(),
            range: None,
            max: None,
            at_max: BTreeSet::new(),
            skipped: Skipped::default(),
        })
    }

    /// Rows are identified by `primary_key` (all of whose columns must be among `columns`,
    /// else by the whole row); `seen` are the keys the last load took at its cursor value
    /// (`None`: not known, all rows at that value were loaded).
    pub fn with_boundary(
        mut self,
        seen: Option<&[String]>,
        primary_key: &[String],
        columns: &[Column],
    ) -> Self {
        self.seen = seen.map(|s| s.iter().cloned().collect());
        let keys: Option<Vec<usize>> = primary_key
            .iter()
            .map(|k| {
                let k = super::normalize(k);
                columns.iter().position(|c| c.name == k)
            })
            .collect();
        self.keys = keys.unwrap_or_default();
        self
    }

    /// Restricts the filter to `from <= cursor < to` (a backfill).
    pub fn with_range(
        mut self,
        range: Option<&(serde_json::Value, serde_json::Value)>,
        columns: &[Column],
    ) -> Self {
        let ty = columns[self.index].ty;
        self.range = range.map(|(from, to)| {
            (
                infer::json_to(from, ty).unwrap_or(Value::Null),
                infer::json_to(to, ty).unwrap_or(Value::Null),
            )
        });
        self
    }

    /// Whether `row` is new (past the cursor, or at it and not loaded before); counts the
    /// rows it leaves out and tracks the maximum.
    pub fn keep(&mut self, row: &Row) -> bool {
        let Some(value) = row.get(self.index).filter(|v| **v != Value::Null) else {
            self.skipped.null_cursor += 1;
            return false;
        };
        if let Some((from, to)) = &self.range
            && (compare(value, from) == Some(Ordering::Less)
                || compare(value, to) != Some(Ordering::Less))
        {
            self.skipped.outside_range += 1;
            return false;
        }
        let mut key = None;
        if let Some(since) = &self.since {
            match compare(value, since) {
                Some(Ordering::Greater) => {}
                Some(Ordering::Equal) => {
                    let k = self.key(row);
                    if self.seen.as_ref().is_none_or(|s| s.contains(&k)) {
                        self.skipped.boundary_duplicate += 1;
                        return false;
                    }
                    key = Some(k);
                }
                _ => {
                    self.skipped.below_cursor += 1;
                    return false;
                }
            }
        }
        let order = self.max.as_ref().map(|m| compare(value, m));
        match order {
            None | Some(Some(Ordering::Greater)) => {
                self.max = Some(value.clone());
                self.at_max.clear();
                self.at_max.insert(key.unwrap_or_else(|| self.key(row)));
            }
            Some(Some(Ordering::Equal)) => {
                self.at_max.insert(key.unwrap_or_else(|| self.key(row)));
            }
            _ => {}
        }
        true
    }

    /// The identity of `row` at the boundary: a hash of its key columns (or of all).
    fn key(&self, row: &Row) -> String {
        let values: Vec<serde_json::Value> = if self.keys.is_empty() {
            row.iter().map(Value::to_json).collect()
        } else {
            self.keys
                .iter()
                .map(|i| row.get(*i).map_or(serde_json::Value::Null, Value::to_json))
                .collect()
        };
        format!(
            "{:016x}",
            fnv1a(serde_json::Value::Array(values).to_string().as_bytes())
        )
    }

    /// The largest value kept, as JSON for the state table.
    pub fn max_json(&self) -> Option<serde_json::Value> {
        self.max.as_ref().map(Value::to_json)
    }

    /// The keys to remember with [`CursorFilter::max_json`]: the rows loaded at that value,
    /// with those of earlier loads when the value did not move. `None` when nothing was kept.
    pub fn boundary(&self) -> Option<Vec<String>> {
        let max = self.max.as_ref()?;
        let mut keys = self.at_max.clone();
        if self
            .since
            .as_ref()
            .is_some_and(|s| compare(max, s) == Some(Ordering::Equal))
        {
            keys.extend(self.seen.iter().flatten().cloned());
        }
        Some(keys.into_iter().collect())
    }
}

/// FNV-1a, 64 bits: stable across builds and versions (boundary keys outlive the process).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use brigade_store::warehouse::ColumnType;

    use super::*;

    fn cols() -> Vec<Column> {
        vec![
            Column {
                name: "id".into(),
                ty: ColumnType::Integer,
            },
            Column {
                name: "t".into(),
                ty: ColumnType::Integer,
            },
        ]
    }

    fn row(id: i64, t: Option<i64>) -> Row {
        vec![Value::Int(id), t.map_or(Value::Null, Value::Int)]
    }

    #[test]
    fn keeps_rows_past_and_at_the_cursor_once_and_counts_the_rest() {
        let cols = cols();
        let mut first = CursorFilter::new("t", &cols, None).unwrap();
        assert!(first.keep(&row(1, Some(4))));
        assert!(first.keep(&row(2, Some(5))));
        assert!(!first.keep(&row(3, None)));
        assert_eq!(first.max_json(), Some(serde_json::json!(5)));
        let boundary = first.boundary().unwrap();
        assert_eq!(boundary.len(), 1, "only the row at the largest value");
        assert_eq!(first.skipped.null_cursor, 1);

        // The next load: row 2 again (seen), a late row 4 at the same value, older and newer.
        let mut next = CursorFilter::new("t", &cols, Some(&serde_json::json!(5)))
            .unwrap()
            .with_boundary(Some(&boundary), &[], &cols);
        assert!(!next.keep(&row(2, Some(5))), "loaded by the last run");
        assert!(next.keep(&row(4, Some(5))), "late, at the cursor");
        assert!(!next.keep(&row(1, Some(4))));
        assert!(!next.keep(&row(9, None)));
        assert_eq!(
            next.skipped,
            Skipped {
                below_cursor: 1,
                null_cursor: 1,
                boundary_duplicate: 1,
                ..Skipped::default()
            }
        );
        // The cursor did not move: the boundary keeps both rows at 5.
        let both = next.boundary().unwrap();
        assert_eq!(both.len(), 2);
        let mut again = CursorFilter::new("t", &cols, Some(&serde_json::json!(5)))
            .unwrap()
            .with_boundary(Some(&both), &[], &cols);
        assert!(!again.keep(&row(2, Some(5))) && !again.keep(&row(4, Some(5))));
        assert!(again.boundary().is_none(), "nothing kept: the state stays");
        // A cursor from before boundaries were kept: every row at it was loaded.
        let mut legacy = CursorFilter::new("t", &cols, Some(&serde_json::json!(5)))
            .unwrap()
            .with_boundary(None, &[], &cols);
        assert!(!legacy.keep(&row(4, Some(5))) && legacy.keep(&row(5, Some(6))));
    }

    #[test]
    fn a_primary_key_identifies_boundary_rows_and_ranges_count_what_they_leave_out() {
        let cols = cols();
        let mut f = CursorFilter::new("t", &cols, None).unwrap().with_boundary(
            Some(&[]),
            &["id".into()],
            &cols,
        );
        assert!(f.keep(&row(1, Some(5))));
        let seen = f.boundary().unwrap();
        // Same key, other values: still the row loaded before.
        let mut g = CursorFilter::new("t", &cols, Some(&serde_json::json!(5)))
            .unwrap()
            .with_boundary(Some(&seen), &["id".into()], &cols);
        let mut changed = row(1, Some(5));
        changed.push(Value::Text("more".into()));
        assert!(!g.keep(&changed));
        assert!(CursorFilter::new("nope", &cols, None).is_err());
        let range = (serde_json::json!(10), serde_json::json!(20));
        let mut b = CursorFilter::new("t", &cols, None)
            .unwrap()
            .with_range(Some(&range), &cols);
        let kept: Vec<i64> = [9, 10, 15, 20, 21]
            .into_iter()
            .filter(|n| b.keep(&row(0, Some(*n))))
            .collect();
        assert_eq!(kept, [10, 15], "from <= cursor < to");
        assert_eq!(b.skipped.outside_range, 3);
    }
}
