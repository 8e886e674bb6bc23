//! DDL for collections in both dialects: tables, columns, unique and composite indexes, and
//! the statements that bring a table from one definition to the next.
//!
//! Index names derive from the collection's and fields' stable ids, so renaming a field
//! keeps its indexes and names stay under PostgreSQL's 63-byte limit.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use brigade_core::schema::{Collection, Field, FieldType};

use crate::error::StoreError;
use crate::sql::{Dialect, Ident};

/// The quoted table identifier of a collection.
pub(crate) fn table(c: &Collection) -> Result<Ident, StoreError> {
    ident(&c.name)
}

/// A quoted identifier for a name the schema layer validated.
pub(crate) fn ident(name: &str) -> Result<Ident, StoreError> {
    Ident::parse(name).map_err(|n| StoreError::internal(format!("invalid identifier `{n}`")))
}

pub(crate) fn column_type(dialect: Dialect, kind: FieldType) -> &'static str {
    match (dialect, kind) {
        (Dialect::Sqlite, FieldType::Integer | FieldType::Bool) => "INTEGER",
        (Dialect::Sqlite, FieldType::Number) => "REAL",
        (Dialect::Postgres, FieldType::Integer) => "BIGINT",
        (Dialect::Postgres, FieldType::Number) => "DOUBLE PRECISION",
        (Dialect::Postgres, FieldType::Bool) => "BOOLEAN",
        (Dialect::Postgres, FieldType::Json) => "JSONB",
        _ => "TEXT",
    }
}

fn column_def(dialect: Dialect, f: &Field) -> Result<String, StoreError> {
    let mut def = format!("{} {}", ident(&f.name)?, column_type(dialect, f.kind));
    if f.kind == FieldType::Relation {
        let target = f.options.collection.as_deref().unwrap_or_default();
        let action = if f.options.cascade_delete {
            "CASCADE"
        } else {
            "RESTRICT"
        };
        // A relation to accounts references `_users`; a collection cannot be named `users`.
        let table = if target == brigade_core::schema::ACCOUNTS_COLLECTION {
            "\"_users\"".to_string()
        } else {
            ident(target)?.to_string()
        };
        def.push_str(&format!(" REFERENCES {table}(\"id\") ON DELETE {action}"));
    }
    Ok(def)
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

fn unique_index_name(c: &Collection, f: &Field) -> String {
    format!("uq_{}_{}", c.id, f.id)
}

fn composite_index_name(c: &Collection, columns: &[String]) -> String {
    // Name by field ids (system fields by name) so renames keep the index.
    let ids: Vec<&str> = columns
        .iter()
        .map(|n| c.field(n).map_or(n.as_str(), |f| f.id.as_str()))
        .collect();
    format!("ix_{}_{}", c.id, short_hash(&ids))
}

/// Every index of a collection as `(name, CREATE statement)`.
fn index_set(c: &Collection) -> Result<Vec<(String, String)>, StoreError> {
    let t = table(c)?;
    let mut out = Vec::new();
    for f in c.fields.iter().filter(|f| f.unique) {
        let name = unique_index_name(c, f);
        out.push((
            name.clone(),
            format!(
                "CREATE UNIQUE INDEX {} ON {t} ({})",
                ident(&name)?,
                ident(&f.name)?
            ),
        ));
    }
    for f in c
        .fields
        .iter()
        .filter(|f| f.kind == FieldType::Relation && !f.unique)
    {
        // Foreign keys want an index on the referencing side (cascades, expand, filters).
        let name = format!("fk_{}_{}", c.id, f.id);
        out.push((
            name.clone(),
            format!(
                "CREATE INDEX {} ON {t} ({})",
                ident(&name)?,
                ident(&f.name)?
            ),
        ));
    }
    for ix in &c.indexes {
        // `id` closes every index, so `ORDER BY a, id` (the list tie-breaker) is an index scan.
        let mut cols = ix
            .iter()
            .map(|n| ident(n).map(|i| i.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if !ix.iter().any(|n| n == "id") {
            cols.push("\"id\"".into());
        }
        let name = composite_index_name(c, ix);
        out.push((
            name.clone(),
            format!(
                "CREATE INDEX {} ON {t} ({})",
                ident(&name)?,
                cols.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// Statements creating a collection's table and indexes.
pub(crate) fn create_collection(
    dialect: Dialect,
    c: &Collection,
) -> Result<Vec<String>, StoreError> {
    let t = table(c)?;
    let mut cols = vec![
        "\"id\" TEXT PRIMARY KEY NOT NULL".to_string(),
        "\"created\" TEXT NOT NULL".to_string(),
        "\"updated\" TEXT NOT NULL".to_string(),
    ];
    for f in &c.fields {
        cols.push(column_def(dialect, f)?);
    }
    let strict = if dialect == Dialect::Sqlite {
        " STRICT"
    } else {
        ""
    };
    let mut out = vec![format!("CREATE TABLE {t} ({}){strict}", cols.join(", "))];
    out.push(format!(
        "CREATE INDEX {} ON {t} (\"created\", \"id\")",
        ident(&format!("ix_{}_created", c.id))?
    ));
    out.extend(index_set(c)?.into_iter().map(|(_, create)| create));
    Ok(out)
}

/// Statements dropping a collection.
pub(crate) fn drop_collection(c: &Collection) -> Result<Vec<String>, StoreError> {
    Ok(vec![format!("DROP TABLE {}", table(c)?)])
}

/// Statements bringing `old` to `new` (fields matched by id), and the columns added, whose
/// defaults the caller back-fills.
pub(crate) fn alter_collection(
    dialect: Dialect,
    old: &Collection,
    new: &Collection,
) -> Result<(Vec<String>, Vec<Field>), StoreError> {
    let t = table(old)?;
    let mut out = Vec::new();
    let (old_ix, new_ix) = (index_set(old)?, index_set(new)?);
    for (name, _) in old_ix
        .iter()
        .filter(|(n, _)| !new_ix.iter().any(|(m, _)| m == n))
    {
        out.push(format!("DROP INDEX IF EXISTS {}", ident(name)?));
    }
    for f in &old.fields {
        match new.field_by_id(&f.id) {
            None => out.push(format!("ALTER TABLE {t} DROP COLUMN {}", ident(&f.name)?)),
            Some(n) => {
                if n.kind != f.kind {
                    return Err(StoreError::Unprocessable(format!(
                        "field `{}` cannot change type",
                        f.name
                    )));
                }
                if f.kind == FieldType::Relation
                    && (n.options.collection != f.options.collection
                        || n.options.cascade_delete != f.options.cascade_delete)
                {
                    return Err(StoreError::Unprocessable(format!(
                        "the target and cascade_delete of relation `{}` cannot change; add a new relation field",
                        f.name
                    )));
                }
                if n.name != f.name {
                    out.push(format!(
                        "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                        ident(&f.name)?,
                        ident(&n.name)?
                    ));
                }
            }
        }
    }
    let mut added = Vec::new();
    for f in new
        .fields
        .iter()
        .filter(|f| old.field_by_id(&f.id).is_none())
    {
        out.push(format!(
            "ALTER TABLE {t} ADD COLUMN {}",
            column_def(dialect, f)?
        ));
        added.push(f.clone());
    }
    for (_, create) in new_ix
        .iter()
        .filter(|(n, _)| !old_ix.iter().any(|(m, _)| m == n))
    {
        out.push(create.clone());
    }
    Ok((out, added))
}

#[cfg(test)]
mod tests {
    //! The diff between two definitions, checked as statements and by running them on a real
    //! (in-memory) SQLite database with rows in it.

    use brigade_core::schema::{Collection, Field, FieldType, Rules};

    use super::{alter_collection, create_collection, drop_collection};
    use crate::sql::Dialect;

    fn field(id: &str, name: &str, kind: FieldType) -> Field {
        let mut f = Field::new(name, kind);
        f.id = id.into();
        f
    }

    fn posts(fields: Vec<Field>, indexes: Vec<Vec<String>>) -> Collection {
        Collection {
            id: "c000000000001".into(),
            name: "posts".into(),
            fields,
            indexes,
            rules: Rules::default(),
            created: String::new(),
            updated: String::new(),
            pipeline: None,
            system_columns: true,
        }
    }

    fn run(db: &rusqlite::Connection, statements: &[String]) {
        for s in statements {
            db.execute_batch(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    fn columns(db: &rusqlite::Connection) -> Vec<String> {
        let mut stmt = db
            .prepare("SELECT name FROM pragma_table_info('posts') ORDER BY cid")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn indexes(db: &rusqlite::Connection) -> Vec<String> {
        let mut stmt = db
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'posts' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn renames_drops_and_additions_keep_the_data_and_the_indexes() {
        let mut unique_title = field("f00000001", "title", FieldType::Text);
        unique_title.unique = true;
        let old = posts(
            vec![
                unique_title.clone(),
                field("f00000002", "views", FieldType::Integer),
                field("f00000003", "draft", FieldType::Bool),
            ],
            vec![vec!["views".into()]],
        );
        let db = rusqlite::Connection::open_in_memory().unwrap();
        run(&db, &create_collection(Dialect::Sqlite, &old).unwrap());
        db.execute_batch(
            "INSERT INTO posts (id, created, updated, title, views, draft) \
             VALUES ('p1', 'x', 'x', 'Hello', 7, 0)",
        )
        .unwrap();
        let before = indexes(&db);

        // `title` renamed to `headline` (same id), `draft` dropped, `score` added; the
        // composite index follows the renamed field by id.
        let mut headline = unique_title;
        headline.name = "headline".into();
        let new = posts(
            vec![
                headline,
                field("f00000002", "views", FieldType::Integer),
                field("f00000004", "score", FieldType::Number),
            ],
            vec![vec!["views".into()]],
        );
        let (statements, added) = alter_collection(Dialect::Sqlite, &old, &new).unwrap();
        assert_eq!(
            statements,
            [
                "ALTER TABLE \"posts\" RENAME COLUMN \"title\" TO \"headline\"",
                "ALTER TABLE \"posts\" DROP COLUMN \"draft\"",
                "ALTER TABLE \"posts\" ADD COLUMN \"score\" REAL",
            ]
        );
        assert_eq!(
            added.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["score"]
        );
        run(&db, &statements);
        assert_eq!(
            columns(&db),
            ["id", "created", "updated", "headline", "views", "score"]
        );
        assert_eq!(indexes(&db), before, "index names follow ids, not names");
        let (headline, views): (String, i64) = db
            .query_row("SELECT headline, views FROM posts", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((headline.as_str(), views), ("Hello", 7));
        // The unique index still holds on the renamed column.
        assert!(
            db.execute_batch(
                "INSERT INTO posts (id, created, updated, headline, views) \
                 VALUES ('p2', 'x', 'x', 'Hello', 1)"
            )
            .is_err()
        );
    }

    #[test]
    fn index_changes_drop_and_create_only_what_changed() {
        let views = field("f00000002", "views", FieldType::Integer);
        let title = field("f00000001", "title", FieldType::Text);
        let old = posts(
            vec![title.clone(), views.clone()],
            vec![vec!["views".into()]],
        );
        let mut unique_title = title;
        unique_title.unique = true;
        let new = posts(vec![unique_title, views], vec![vec!["title".into()]]);
        let (statements, added) = alter_collection(Dialect::Postgres, &old, &new).unwrap();
        assert!(added.is_empty());
        assert_eq!(statements.len(), 3, "{statements:#?}");
        assert!(statements[0].starts_with("DROP INDEX IF EXISTS \"ix_c000000000001_"));
        assert_eq!(
            statements[1],
            "CREATE UNIQUE INDEX \"uq_c000000000001_f00000001\" ON \"posts\" (\"title\")"
        );
        assert!(
            statements[2].ends_with("ON \"posts\" (\"title\", \"id\")"),
            "{statements:#?}"
        );
        // Nothing changed: nothing to run.
        let (none, _) = alter_collection(Dialect::Postgres, &new, &new).unwrap();
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn type_and_relation_target_changes_are_refused() {
        let old = posts(
            vec![field("f00000002", "views", FieldType::Integer)],
            vec![],
        );
        let new = posts(vec![field("f00000002", "views", FieldType::Text)], vec![]);
        let err = alter_collection(Dialect::Sqlite, &old, &new).unwrap_err();
        assert_eq!(err.to_string(), "field `views` cannot change type");

        let mut author = field("f00000005", "author", FieldType::Relation);
        author.options.collection = Some("people".into());
        let mut moved = author.clone();
        moved.options.collection = Some("teams".into());
        let err = alter_collection(
            Dialect::Postgres,
            &posts(vec![author], vec![]),
            &posts(vec![moved], vec![]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot change; add a new relation field"),
            "{err}"
        );
    }

    #[test]
    fn relations_to_accounts_reference_the_users_table_and_get_an_index() {
        let mut owner = field("f00000006", "owner", FieldType::Relation);
        owner.options.collection = Some("users".into());
        let statements = create_collection(Dialect::Postgres, &posts(vec![owner], vec![])).unwrap();
        assert!(
            statements[0]
                .contains("\"owner\" TEXT REFERENCES \"_users\"(\"id\") ON DELETE RESTRICT"),
            "{statements:#?}"
        );
        assert!(
            statements.iter().any(
                |s| s == "CREATE INDEX \"fk_c000000000001_f00000006\" ON \"posts\" (\"owner\")"
            ),
            "{statements:#?}"
        );
        assert_eq!(
            drop_collection(&posts(vec![], vec![])).unwrap(),
            ["DROP TABLE \"posts\""]
        );
    }
}
