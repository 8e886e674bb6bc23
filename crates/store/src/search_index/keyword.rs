//! Keyword search per dialect. SQLite: a contentless FTS5 table per index, ranked by FTS5's
//! `bm25()` with the title weighted over headings over text. PostgreSQL: a weighted
//! `tsvector` per chunk (English stemming and stop words) is turned into postings
//! (`_search_postings`) and document frequencies (`_search_df`) in the same transaction as the
//! chunks, and BM25 is summed over the postings of the query's lexemes — a plain B-tree
//! lookup per lexeme, where matching `tsvector`s and unnesting them cost a second per query
//! on the PostgreSQL manual.

use brigade_core::value::Value;

use super::ddl::{PG_CONFIG, fts_table};
use super::{DocumentInput, Restriction, bind_ids};
use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::{Dialect, Sql};

/// BM25 weights of the title, heading and text columns.
const WEIGHTS: (f64, f64, f64) = (3.0, 2.0, 1.0);
/// BM25 parameters on PostgreSQL (FTS5 uses the same defaults).
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// The weighted `tsvector` expression of a chunk (PostgreSQL).
pub(super) fn pg_tsvector(title: &str, heading: &str, text: &str) -> Sql {
    let mut sql = Sql::new(Dialect::Postgres);
    let part = |sql: &mut Sql, value: &str, weight: Option<&str>| {
        if weight.is_some() {
            sql.push("setweight(");
        }
        sql.push("to_tsvector('")
            .push(PG_CONFIG)
            .push("', ")
            .bind(Value::Text(value.to_string()))
            .push(")");
        if let Some(w) = weight {
            sql.push(", '").push(w).push("')");
        }
    };
    part(&mut sql, title, Some("A"));
    sql.push(" || ");
    part(&mut sql, heading, Some("B"));
    sql.push(" || ");
    part(&mut sql, text, None);
    sql
}

fn index_value(index: &str) -> Value {
    Value::Text(index.to_string())
}

/// Indexes the chunks of `doc` that were just inserted as `added` (`(id, hash)` in the order
/// of `doc.chunks`).
pub(super) async fn add(
    tx: &mut dyn Conn,
    index: &str,
    doc: &DocumentInput,
    added: &[(u64, String)],
) -> Result<(), StoreError> {
    match tx.dialect() {
        Dialect::Sqlite => {
            let table = fts_table(index)?;
            for (chunk, (id, _)) in doc.chunks.iter().zip(added) {
                let mut sql = Sql::new(Dialect::Sqlite);
                sql.push("INSERT INTO ")
                    .ident(&table)
                    .push(" (rowid, title, heading, text) VALUES (")
                    .bind(Value::Int(i64::try_from(*id).unwrap_or(i64::MAX)))
                    .push(", ")
                    .bind(Value::Text(doc.title.clone()))
                    .push(", ")
                    .bind(Value::Text(chunk.heading.clone()))
                    .push(", ")
                    .bind(Value::Text(chunk.text.clone()))
                    .push(")");
                tx.execute(&sql).await?;
            }
        }
        Dialect::Postgres => {
            let (t, h, x) = WEIGHTS;
            let mut sql = Sql::new(Dialect::Postgres);
            sql.push("INSERT INTO _search_postings (index_name, lexeme, seq, tf, len) SELECT ")
                .bind(index_value(index))
                .push(&format!(
                    ", u.lexeme, c.seq, (SELECT SUM(CASE wt WHEN 'A' THEN {t:.1} WHEN 'B' THEN \
                     {h:.1} ELSE {x:.1} END) FROM unnest(u.weights) wt), c.tokens FROM \
                     _search_chunks c, unnest(c.tsv) u WHERE c.index_name = "
                ))
                .bind(index_value(index))
                .push(" AND c.document_id = ")
                .bind(Value::Text(doc.id.clone()));
            tx.execute(&sql).await?;
            let mut sql = Sql::new(Dialect::Postgres);
            sql.push("INSERT INTO _search_df (index_name, lexeme, df) SELECT ")
                .bind(index_value(index))
                .push(
                    ", u.lexeme, COUNT(*) FROM _search_chunks c, unnest(c.tsv) u WHERE \
                     c.index_name = ",
                )
                .bind(index_value(index))
                .push(" AND c.document_id = ")
                .bind(Value::Text(doc.id.clone()))
                .push(
                    " GROUP BY u.lexeme ON CONFLICT (index_name, lexeme) DO UPDATE SET df = \
                     _search_df.df + excluded.df",
                );
            tx.execute(&sql).await?;
        }
    }
    Ok(())
}

/// Removes the keyword entries of a document's chunks `ids` (before the chunks go).
pub(super) async fn remove(
    tx: &mut dyn Conn,
    index: &str,
    document: &str,
    ids: &[u64],
) -> Result<(), StoreError> {
    match tx.dialect() {
        Dialect::Sqlite => {
            let table = fts_table(index)?;
            for part in ids.chunks(500) {
                let mut sql = Sql::new(Dialect::Sqlite);
                sql.push("DELETE FROM ")
                    .ident(&table)
                    .push(" WHERE rowid IN ");
                bind_ids(&mut sql, part);
                tx.execute(&sql).await?;
            }
        }
        Dialect::Postgres => {
            let mut sql = Sql::new(Dialect::Postgres);
            sql.push("UPDATE _search_df d SET df = d.df - x.n FROM (SELECT u.lexeme, COUNT(*) AS n FROM _search_chunks c, unnest(c.tsv) u WHERE c.index_name = ")
                .bind(index_value(index))
                .push(" AND c.document_id = ")
                .bind(Value::Text(document.to_string()))
                .push(" GROUP BY u.lexeme) x WHERE d.index_name = ")
                .bind(index_value(index))
                .push(" AND d.lexeme = x.lexeme");
            tx.execute(&sql).await?;
            for part in ids.chunks(500) {
                let mut sql = Sql::new(Dialect::Postgres);
                sql.push("DELETE FROM _search_postings WHERE seq IN ");
                bind_ids(&mut sql, part);
                tx.execute(&sql).await?;
            }
        }
    }
    Ok(())
}

/// Empties the keyword index of `index`.
pub(super) async fn clear(tx: &mut dyn Conn, index: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new(tx.dialect());
    match tx.dialect() {
        Dialect::Sqlite => {
            sql.push("DELETE FROM ").ident(&fts_table(index)?);
        }
        Dialect::Postgres => {
            sql.push("DELETE FROM _search_df WHERE index_name = ")
                .bind(index_value(index));
            let mut postings = Sql::new(Dialect::Postgres);
            postings
                .push("DELETE FROM _search_postings WHERE index_name = ")
                .bind(index_value(index));
            tx.execute(&postings).await?;
        }
    }
    tx.execute(&sql).await?;
    Ok(())
}

/// Appends ` AND {column} IN (chunks of `index` that `restriction` allows)`.
fn restrict(sql: &mut Sql, column: &str, index: &str, restriction: &Restriction) {
    let ids = Restriction::chunk_ids(Some(restriction), index, sql.dialect);
    sql.push(" AND ")
        .push(column)
        .push(" IN (")
        .append(ids)
        .push(")");
}

/// `(chunk id, score)`, best first.
pub(super) async fn search(
    conn: &mut dyn Conn,
    index: &str,
    terms: &[String],
    k: usize,
    restriction: Option<&Restriction>,
) -> Result<Vec<(u64, f64)>, StoreError> {
    let dialect = conn.dialect();
    let limit = Value::Int(i64::try_from(k).unwrap_or(i64::MAX));
    let mut sql = Sql::new(dialect);
    match dialect {
        Dialect::Sqlite => {
            let table = fts_table(index)?;
            let query = terms
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(" OR ");
            let (t, h, x) = WEIGHTS;
            let rank = format!("bm25({table}, {t:.1}, {h:.1}, {x:.1})");
            sql.push("SELECT rowid, -")
                .push(&rank)
                .push(" FROM ")
                .ident(&table)
                .push(" WHERE ")
                .ident(&table)
                .push(" MATCH ")
                .bind(Value::Text(query));
            if let Some(r) = restriction {
                restrict(&mut sql, "rowid", index, r);
            }
            sql.push(" ORDER BY ")
                .push(&rank)
                .push(" LIMIT ")
                .bind(limit);
        }
        Dialect::Postgres => {
            let words = terms.join(" ");
            sql.push("WITH terms AS (SELECT DISTINCT lexeme FROM unnest(to_tsvector('")
                .push(PG_CONFIG)
                .push("', ")
                .bind(Value::Text(words))
                .push("))), stats AS (SELECT GREATEST(chunks, 1)::float8 AS n, GREATEST(tokens, 1)::float8 / GREATEST(chunks, 1) AS avgdl FROM _search_indexes WHERE name = ")
                .bind(index_value(index))
                // All arithmetic in float8: `bigint + 0.5` is numeric, which made the
                // per-posting sum 2x slower at 100k chunks.
                .push(&format!(
                    "), idf AS (SELECT d.lexeme, ln(1 + (s.n - d.df::float8 + 0.5::float8) / \
                     (d.df::float8 + 0.5::float8)) AS w, {norm:.4}::float8 / s.avgdl AS per_len \
                     FROM _search_df d, stats s WHERE d.index_name = ",
                    norm = K1 * B
                ))
                .bind(index_value(index))
                .push(" AND d.df > 0 AND d.lexeme IN (SELECT lexeme FROM terms)) SELECT p.seq, SUM(idf.w * p.tf * ")
                .push(&format!(
                    "{k1:.2}::float8 / (p.tf + {base:.4}::float8 + idf.per_len * p.len::float8)) AS \
                     score FROM _search_postings p JOIN idf ON idf.lexeme = p.lexeme WHERE \
                     p.index_name = ",
                    k1 = K1 + 1.0,
                    base = K1 * (1.0 - B)
                ))
                .bind(index_value(index));
            if let Some(r) = restriction {
                restrict(&mut sql, "p.seq", index, r);
            }
            sql.push(" GROUP BY p.seq ORDER BY score DESC, p.seq LIMIT ")
                .bind(limit);
        }
    }
    let rows = conn.query(&sql, &[ColType::Int, ColType::Float]).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let id = match r[0] {
                Value::Int(i) => u64::try_from(i).unwrap_or(0),
                _ => 0,
            };
            let score = match r[1] {
                Value::Float(f) => f,
                Value::Int(i) => i as f64,
                _ => 0.0,
            };
            (id, score)
        })
        .collect())
}
