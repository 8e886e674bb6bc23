//! Lineage of a pipeline: which nodes feed each node (from `ref`s), and which columns feed
//! each model column — directly (the tables named in its SELECT) and at the source (bronze
//! columns, followed through every model in between). Column lineage comes from parsing each
//! model's rendered SQL (sqlparser): SELECT lists, aliases, joins, CTEs, subqueries, `*`.
//! Columns a parser cannot place (an ambiguous unqualified name) are left out, never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use brigade_store::Store;
use serde::Serialize;
use sqlparser::ast::{
    Expr, ObjectName, ObjectNamePart, Query, Select, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, Statement, TableFactor, visit_expressions,
};
use sqlparser::dialect::{GenericDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::spec::Node;
use crate::{Env, Pipeline, template};

/// Table- and column-level lineage of a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct Lineage {
    pub pipeline: String,
    pub nodes: Vec<NodeLineage>,
}

/// One node: its inputs and, for models, where each column comes from.
#[derive(Debug, Clone, Serialize)]
pub struct NodeLineage {
    pub name: String,
    pub kind: &'static str,
    pub layer: &'static str,
    pub depends_on: Vec<String>,
    pub columns: Vec<ColumnLineage>,
    /// Why column lineage is missing or partial (SQL the parser does not understand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One column of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnLineage {
    pub name: String,
    /// `table.column`s the model reads to compute it.
    pub from: Vec<String>,
    /// The extract (bronze) or external columns it derives from, through all models.
    pub sources: Vec<String>,
}

type Sources = BTreeSet<(String, String)>;

/// The lineage of `pipeline`. Column lists of tables come from the store where they exist
/// (after a first run); models are analysed from their SQL either way.
pub async fn of(pipeline: &Pipeline, store: &Store, env: &Env) -> Lineage {
    let postgres = store.dialect() == brigade_store::Dialect::Postgres;
    let mut known: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let names: Vec<String> = pipeline
        .graph
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    for name in &names {
        if let Ok(Some(cols)) = store.warehouse().table_columns(name).await {
            known.insert(name.clone(), cols.into_iter().map(|c| c.name).collect());
        }
    }
    let mut outputs: BTreeMap<String, Vec<(String, Sources)>> = BTreeMap::new();
    let mut nodes = Vec::new();
    for n in &pipeline.graph.nodes {
        let mut node = NodeLineage {
            name: n.name.clone(),
            kind: n.kind,
            layer: n.layer,
            depends_on: n.depends_on.clone(),
            columns: Vec::new(),
            note: None,
        };
        match pipeline.node(&n.name) {
            Some(Node::Model(m)) => {
                let lookup = |name: &str| env(name);
                let rendered = template::render(
                    &m.text,
                    &template::Context {
                        nodes: &names,
                        this: &m.name,
                        incremental: false,
                        env: &lookup,
                        vars: &pipeline.var_defaults(),
                        macros: &pipeline.macros,
                    },
                );
                match rendered
                    .map_err(|e| e.message)
                    .and_then(|r| analyse(&r.sql, postgres, &known))
                {
                    Ok(cols) => {
                        known.insert(
                            m.name.clone(),
                            cols.iter().map(|(c, _)| c.clone()).collect(),
                        );
                        outputs.insert(m.name.clone(), cols);
                    }
                    Err(e) => node.note = Some(format!("column lineage unavailable: {e}")),
                }
                if let Some(cols) = outputs.get(&m.name) {
                    node.columns = cols
                        .iter()
                        .map(|(name, from)| ColumnLineage {
                            name: name.clone(),
                            from: from.iter().map(|(t, c)| format!("{t}.{c}")).collect(),
                            sources: sources(from, &outputs)
                                .iter()
                                .map(|(t, c)| format!("{t}.{c}"))
                                .collect(),
                        })
                        .collect();
                }
            }
            _ => {
                node.columns = known
                    .get(&n.name)
                    .map(|cols| {
                        cols.iter()
                            .map(|c| ColumnLineage {
                                name: c.clone(),
                                from: Vec::new(),
                                sources: vec![format!("{}.{c}", n.name)],
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        nodes.push(node);
    }
    Lineage {
        pipeline: pipeline.name.clone(),
        nodes,
    }
}

/// Follows `from` through models down to columns no model produces.
fn sources(from: &Sources, outputs: &BTreeMap<String, Vec<(String, Sources)>>) -> Sources {
    let mut out = Sources::new();
    let mut stack: Vec<(String, String)> = from.iter().cloned().collect();
    let mut seen = Sources::new();
    while let Some((table, column)) = stack.pop() {
        if !seen.insert((table.clone(), column.clone())) {
            continue;
        }
        match outputs
            .get(&table)
            .and_then(|cols| cols.iter().find(|(c, _)| *c == column))
        {
            Some((_, inner)) => stack.extend(inner.iter().cloned()),
            None => {
                out.insert((table, column));
            }
        }
    }
    out
}

/// The output columns of `sql` and the `(table, column)`s each reads.
///
/// # Errors
/// The parser's message.
pub fn analyse(
    sql: &str,
    postgres: bool,
    known: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<(String, Sources)>, String> {
    let parsed = if postgres {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
    } else {
        Parser::parse_sql(&SQLiteDialect {}, sql)
    }
    .or_else(|_| Parser::parse_sql(&GenericDialect {}, sql))
    .map_err(|e| e.to_string())?;
    let Some(Statement::Query(query)) = parsed.into_iter().next() else {
        return Err("the model is not a SELECT".into());
    };
    let scope = Scope {
        known,
        ctes: BTreeMap::new(),
    };
    Ok(scope.query(&query))
}

/// A relation visible in a SELECT: a table (by name) or a derived one (CTE, subquery).
enum Relation {
    Table(String),
    Derived(Vec<(String, Sources)>),
}

#[derive(Clone)]
struct Scope<'a> {
    known: &'a BTreeMap<String, Vec<String>>,
    ctes: BTreeMap<String, Vec<(String, Sources)>>,
}

fn last_part(name: &ObjectName) -> String {
    name.0
        .last()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

impl Scope<'_> {
    fn query(&self, q: &Query) -> Vec<(String, Sources)> {
        let mut inner = self.clone();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let cols = inner.query(&cte.query);
                inner.ctes.insert(cte.alias.name.value.clone(), cols);
            }
        }
        inner.set_expr(&q.body)
    }

    fn set_expr(&self, body: &SetExpr) -> Vec<(String, Sources)> {
        match body {
            SetExpr::Select(select) => self.select(select),
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation { left, right, .. } => {
                let mut out = self.set_expr(left);
                for (i, (_, more)) in self.set_expr(right).into_iter().enumerate() {
                    if let Some((_, sources)) = out.get_mut(i) {
                        sources.extend(more);
                    }
                }
                out
            }
            _ => Vec::new(),
        }
    }

    fn relation(&self, factor: &TableFactor) -> Option<(String, Relation)> {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let table = last_part(name);
                let alias = alias
                    .as_ref()
                    .map_or_else(|| table.clone(), |a| a.name.value.clone());
                let relation = match self.ctes.get(&table) {
                    Some(cols) => Relation::Derived(cols.clone()),
                    None => Relation::Table(table),
                };
                Some((alias, relation))
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let cols = self.query(subquery);
                let alias = alias
                    .as_ref()
                    .map_or_else(String::new, |a| a.name.value.clone());
                Some((alias, Relation::Derived(cols)))
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.relation(&table_with_joins.relation),
            _ => None,
        }
    }

    fn columns_of(&self, relation: &Relation) -> Vec<(String, Sources)> {
        match relation {
            Relation::Table(t) => self
                .known
                .get(t)
                .map(|cols| {
                    cols.iter()
                        .map(|c| (c.clone(), Sources::from([(t.clone(), c.clone())])))
                        .collect()
                })
                .unwrap_or_default(),
            Relation::Derived(cols) => cols.clone(),
        }
    }

    fn resolve(
        &self,
        relations: &[(String, Relation)],
        qualifier: Option<&str>,
        column: &str,
    ) -> Sources {
        let lookup = |relation: &Relation| -> Option<Sources> {
            match relation {
                Relation::Table(t) => {
                    let known = self.known.get(t);
                    (known.is_none_or(|cols| cols.iter().any(|c| c == column)))
                        .then(|| Sources::from([(t.clone(), column.to_string())]))
                }
                Relation::Derived(cols) => cols
                    .iter()
                    .find(|(c, _)| c == column)
                    .map(|(_, s)| s.clone()),
            }
        };
        match qualifier {
            Some(q) => relations
                .iter()
                .find(|(alias, _)| alias == q)
                .and_then(|(_, r)| lookup(r))
                .unwrap_or_default(),
            None => {
                let hits: Vec<Sources> = relations
                    .iter()
                    .filter(|(_, r)| match r {
                        Relation::Table(t) => self
                            .known
                            .get(t)
                            .is_some_and(|cols| cols.iter().any(|c| c == column)),
                        Relation::Derived(cols) => cols.iter().any(|(c, _)| c == column),
                    })
                    .filter_map(|(_, r)| lookup(r))
                    .collect();
                match hits.len() {
                    1 => hits.into_iter().next().unwrap_or_default(),
                    0 if relations.len() == 1 => lookup(&relations[0].1).unwrap_or_default(),
                    _ => Sources::new(),
                }
            }
        }
    }

    fn select(&self, select: &Select) -> Vec<(String, Sources)> {
        let mut relations: Vec<(String, Relation)> = Vec::new();
        for table in &select.from {
            relations.extend(self.relation(&table.relation));
            for join in &table.joins {
                relations.extend(self.relation(&join.relation));
            }
        }
        let mut out = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) => {
                    for (_, r) in &relations {
                        out.extend(self.columns_of(r));
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) => {
                    let alias = last_part(name);
                    if let Some((_, r)) = relations.iter().find(|(a, _)| *a == alias) {
                        out.extend(self.columns_of(r));
                    }
                }
                SelectItem::QualifiedWildcard(..) => {}
                SelectItem::UnnamedExpr(expr) => {
                    let name = match expr {
                        Expr::Identifier(i) => i.value.clone(),
                        Expr::CompoundIdentifier(parts) => {
                            parts.last().map(|p| p.value.clone()).unwrap_or_default()
                        }
                        other => other.to_string(),
                    };
                    out.push((name, self.refs(&relations, expr)));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    out.push((alias.value.clone(), self.refs(&relations, expr)));
                }
                SelectItem::ExprWithAliases { expr, aliases } => {
                    let refs = self.refs(&relations, expr);
                    out.extend(aliases.iter().map(|a| (a.value.clone(), refs.clone())));
                }
            }
        }
        out
    }

    /// The columns an expression reads.
    fn refs(&self, relations: &[(String, Relation)], expr: &Expr) -> Sources {
        let mut out = Sources::new();
        let _ = visit_expressions(expr, |e| {
            match e {
                Expr::Identifier(i) => out.extend(self.resolve(relations, None, &i.value)),
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    let q = &parts[parts.len() - 2].value;
                    let c = &parts[parts.len() - 1].value;
                    out.extend(self.resolve(relations, Some(q), c));
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(t, cs)| (t.to_string(), cs.iter().map(|c| c.to_string()).collect()))
            .collect()
    }

    fn show(out: &[(String, Sources)]) -> Vec<String> {
        out.iter()
            .map(|(c, s)| {
                let s: Vec<String> = s.iter().map(|(t, c)| format!("{t}.{c}")).collect();
                format!("{c} <- {}", s.join(","))
            })
            .collect()
    }

    #[test]
    fn follows_aliases_joins_ctes_and_stars() {
        let known = cols(&[
            ("raw_flights", &["carrier", "dep_delay", "origin"]),
            ("raw_airlines", &["carrier", "name"]),
        ]);
        let sql = r#"WITH f AS (SELECT carrier, dep_delay AS delay FROM "raw_flights")
            SELECT f.carrier, a.name AS airline, AVG(f.delay) + 1 AS avg_delay, COUNT(*) AS n
            FROM f LEFT JOIN "raw_airlines" a ON a.carrier = f.carrier"#;
        let out = analyse(sql, false, &known).unwrap();
        assert_eq!(
            show(&out),
            [
                "carrier <- raw_flights.carrier",
                "airline <- raw_airlines.name",
                "avg_delay <- raw_flights.dep_delay",
                "n <- ",
            ]
        );
        let star = analyse("SELECT * FROM raw_airlines", false, &known).unwrap();
        assert_eq!(
            show(&star),
            [
                "carrier <- raw_airlines.carrier",
                "name <- raw_airlines.name"
            ]
        );
        // `carrier` is in both tables: ambiguous, so not guessed.
        let amb = analyse(
            "SELECT carrier FROM raw_flights, raw_airlines",
            false,
            &known,
        )
        .unwrap();
        assert_eq!(show(&amb), ["carrier <- "]);
        assert!(analyse("DELETE FROM x", false, &known).is_err());
    }

    #[test]
    fn sources_follow_models_down_to_bronze() {
        let mut outputs = BTreeMap::new();
        outputs.insert(
            "silver".to_string(),
            vec![(
                "delay".to_string(),
                Sources::from([("raw".to_string(), "dep_delay".to_string())]),
            )],
        );
        let from = Sources::from([("silver".to_string(), "delay".to_string())]);
        assert_eq!(
            sources(&from, &outputs),
            Sources::from([("raw".to_string(), "dep_delay".to_string())])
        );
    }
}
