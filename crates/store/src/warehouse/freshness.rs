//! The age of a table's newest data, for source freshness checks: the newest value of a
//! timestamp column (by default `_loaded_at`, which every bronze row carries).

use brigade_core::value::Value;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::Warehouse;
use super::tables::{self, ident};
use crate::conn::ColType;
use crate::error::StoreError;
use crate::sql::Sql;

impl Warehouse<'_> {
    /// The newest value of `column` in `table`, or `None` when the table does not exist, is
    /// empty, or the column holds no date-time.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad name, [`StoreError::Unprocessable`] when `table`
    /// has no such column, or the database's.
    pub async fn newest_timestamp(
        self,
        table: &str,
        column: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (t, c) = (ident(table)?, ident(column)?);
        let mut conn = self.store.db.read().await?;
        let Some(columns) = tables::columns(conn.as_mut(), table).await? else {
            return Ok(None);
        };
        if !columns.iter().any(|col| col.name == column) {
            return Err(StoreError::Unprocessable(format!(
                "table `{table}` has no column `{column}` for its freshness check"
            )));
        }
        let mut sql = Sql::new(conn.dialect());
        sql.push("SELECT CAST(max(")
            .ident(&c)
            .push(") AS TEXT) FROM ")
            .ident(&t);
        let rows = conn.query(&sql, &[ColType::Text]).await?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Value::Text(text)) => parse_timestamp(text),
            _ => None,
        })
    }
}

/// RFC 3339 (Brigade's own), PostgreSQL's `timestamptz` text, a naive date-time (UTC) or a
/// date.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(d) = DateTime::parse_from_str(t, format) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, format) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp;

    #[test]
    fn reads_the_timestamp_texts_of_both_stores() {
        let want = "2026-12-04T19:06:27.123Z";
        for text in [
            "2026-12-04T19:06:27.123Z",
            "2026-12-04 19:06:27.123+00",
            "2026-12-04 20:06:27.123+01:00",
            "2026-12-04 19:06:27.123",
        ] {
            let got = parse_timestamp(text).map(brigade_core::time::format_datetime);
            assert_eq!(got.as_deref(), Some(want), "{text}");
        }
        assert!(parse_timestamp("2026-12-04").is_some());
        assert!(parse_timestamp("not a time").is_none());
    }
}
