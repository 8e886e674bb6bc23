//! Checks `[[model.expect]]` and `[[extract.expect]]` entries: row checks (`check`) and the
//! built-in tests (`test = "unique"` ...), each with exactly the keys its kind uses, and
//! gives built-in tests their default names (`unique_id`).

use brigade_store::Ident;

use super::{BuiltinTest, Expect, OnFail};
use crate::error::ConfigError;

/// Where the expectations sit, for keys and rules.
pub(super) struct Owner<'a> {
    /// `model[2]` or `extract[0]`.
    pub prefix: String,
    /// The node's name.
    pub name: &'a str,
    /// Whether failing rows may be dropped (tables and incremental models).
    pub can_drop: bool,
    /// The pipeline's node names, for `relationships`.
    pub nodes: &'a [String],
}

/// Validates `list` and fills in default names.
pub(super) fn check_all(
    err: &dyn Fn(&str, String) -> ConfigError,
    owner: &Owner<'_>,
    list: &mut [Expect],
) -> Result<(), ConfigError> {
    let mut seen: Vec<String> = Vec::new();
    for (j, x) in list.iter_mut().enumerate() {
        let key = |s: &str| format!("{}.expect[{j}].{s}", owner.prefix);
        let fail = |k: &str, m: String| Err(err(&key(k), m));
        match (&x.check, x.test) {
            (Some(_), Some(_)) => {
                return fail(
                    "test",
                    "set either `check` (a SQL boolean over each row) or `test`, not both".into(),
                );
            }
            (None, None) => {
                return fail(
                    "check",
                    "set `check` (a SQL boolean over each row, e.g. \"amount > 0\") or `test` \
                     (unique | not_null | accepted_values | relationships | row_count | expression)"
                        .into(),
                );
            }
            (Some(check), None) => {
                if x.name.is_empty() {
                    return fail("name", "an expectation with `check` needs a `name`".into());
                }
                if check.trim().is_empty() {
                    return fail(
                        "check",
                        "a check is a SQL boolean over each row, e.g. \"dep_time IS NOT NULL\""
                            .into(),
                    );
                }
                if check.contains(';') {
                    return fail(
                        "check",
                        "a check is one SQL expression; `;` is not allowed".into(),
                    );
                }
                for (k, set) in extra_keys(x) {
                    if set {
                        return fail(k, format!("`{k}` applies to built-in tests (`test = ..`)"));
                    }
                }
            }
            (None, Some(test)) => builtin(&|k, m| err(&key(k), m), owner, x, test)?,
        }
        let row_level = x.test.is_none_or(BuiltinTest::is_row_level);
        if x.action() == OnFail::Drop {
            if !row_level {
                return fail(
                    "on_fail",
                    "a table-level test cannot drop rows; use warn or fail".into(),
                );
            }
            if !owner.can_drop {
                let why = if owner.prefix.starts_with("extract") {
                    "an extract's tests run on its loaded table and cannot drop rows; use warn or fail"
                } else {
                    "a view cannot drop rows; use warn or fail, or materialize the model as a table"
                };
                return fail("on_fail", why.into());
            }
        }
        if x.name.is_empty() {
            x.name = default_name(x);
        }
        if seen.contains(&x.name) {
            return fail(
                "name",
                format!(
                    "`{}` is used twice in `{}`; expectation and test names must be unique (set `name`)",
                    x.name, owner.name
                ),
            );
        }
        seen.push(x.name.clone());
    }
    Ok(())
}

/// The keys only built-in tests use, and whether `x` sets them.
fn extra_keys(x: &Expect) -> [(&'static str, bool); 6] {
    [
        ("column", x.column.is_some()),
        ("values", x.values.is_some()),
        ("to", x.to.is_some()),
        ("min", x.min.is_some()),
        ("max", x.max.is_some()),
        ("expression", x.expression.is_some()),
    ]
}

fn builtin(
    err: &dyn Fn(&str, String) -> ConfigError,
    owner: &Owner<'_>,
    x: &Expect,
    test: BuiltinTest,
) -> Result<(), ConfigError> {
    let fail = |k: &str, m: String| Err(err(k, m));
    let t = test.name();
    let wanted: &[&str] = match test {
        BuiltinTest::Unique | BuiltinTest::NotNull => &["column"],
        BuiltinTest::AcceptedValues => &["column", "values"],
        BuiltinTest::Relationships => &["column", "to"],
        BuiltinTest::RowCount => &["min", "max"],
        BuiltinTest::Expression => &["expression"],
    };
    for (k, set) in extra_keys(x) {
        if set && !wanted.contains(&k) {
            return fail(
                k,
                format!(
                    "`{k}` does not apply to `{t}` (it uses {})",
                    wanted.join(", ")
                ),
            );
        }
    }
    if wanted.contains(&"column") {
        let Some(column) = &x.column else {
            return fail(
                "column",
                format!("`{t}` needs `column`, the column it tests"),
            );
        };
        let columns = column.columns();
        if columns.len() != 1 && test != BuiltinTest::Unique {
            return fail(
                "column",
                format!("`{t}` tests one column; only `unique` takes a list"),
            );
        }
        for c in &columns {
            if Ident::parse(c).is_err() {
                return fail("column", format!("`{c}` is not a column name"));
            }
        }
    }
    match test {
        BuiltinTest::AcceptedValues => match &x.values {
            Some(values) if !values.is_empty() => {
                for v in values {
                    brigade_store::warehouse::literal(v).map_err(|m| err("values", m))?;
                }
            }
            _ => {
                return fail(
                    "values",
                    "`accepted_values` needs `values`, e.g. [\"placed\", \"shipped\"]".into(),
                );
            }
        },
        BuiltinTest::Relationships => {
            let Some((node, column)) = x.to_parts() else {
                return fail(
                    "to",
                    "`relationships` needs `to = \"node.column\"`, e.g. \"customers.id\"".into(),
                );
            };
            if !owner.nodes.iter().any(|n| n == node) || node == owner.name {
                return fail(
                    "to",
                    format!(
                        "`{node}` is not another extract or model of this pipeline (it has: {})",
                        owner.nodes.join(", ")
                    ),
                );
            }
            if Ident::parse(column).is_err() {
                return fail("to", format!("`{column}` is not a column name"));
            }
        }
        BuiltinTest::RowCount => match (x.min, x.max) {
            (None, None) => {
                return fail("min", "`row_count` needs `min`, `max` or both".into());
            }
            (Some(min), Some(max)) if min > max => {
                return fail("min", "must not be larger than max".into());
            }
            _ => {}
        },
        BuiltinTest::Expression => match &x.expression {
            Some(e) if !e.trim().is_empty() && !e.contains(';') => {}
            _ => {
                return fail(
                    "expression",
                    "`expression` needs one SQL boolean over the table, e.g. \"sum(amount) > 0\""
                        .into(),
                );
            }
        },
        BuiltinTest::Unique | BuiltinTest::NotNull => {}
    }
    Ok(())
}

fn default_name(x: &Expect) -> String {
    let test = x.test.map_or("check", BuiltinTest::name);
    match &x.column {
        Some(c) => format!("{test}_{}", c.columns().join("_")),
        None => test.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::Pipeline;

    fn parse(expect: &str) -> Result<Pipeline, crate::ConfigError> {
        let text = format!(
            "[[extract]]\nname = \"raw\"\nfrom = \"file\"\npath = \"x.csv\"\n\n\
             [[model]]\nname = \"m\"\nquery = \"SELECT * FROM {{{{ ref('raw') }}}}\"\n{expect}"
        );
        Pipeline::parse(std::path::Path::new("."), "pipelines/p.toml", &text)
    }

    #[test]
    fn built_in_tests_get_names_defaults_and_edges() {
        let p = parse(
            "[[model.expect]]\ntest = \"unique\"\ncolumn = [\"a\", \"b\"]\n\
             [[model.expect]]\ntest = \"not_null\"\ncolumn = \"a\"\non_fail = \"drop\"\n",
        )
        .unwrap();
        let names: Vec<&str> = p.model[0].expect.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["unique_a_b", "not_null_a"]);
        assert_eq!(p.model[0].expect[0].action(), super::OnFail::Fail);
    }

    #[test]
    fn wrong_keys_are_named() {
        let e = parse("[[model.expect]]\ntest = \"unique\"\ncolumn = \"a\"\nvalues = [1]\n")
            .unwrap_err();
        assert_eq!(e.key, "model[0].expect[0].values");
        assert!(e.message.contains("does not apply to `unique`"), "{e}");
        let e = parse("[[model.expect]]\ntest = \"row_count\"\n").unwrap_err();
        assert!(e.message.contains("needs `min`, `max`"), "{e}");
        let e = parse("[[model.expect]]\ntest = \"unique\"\ncolumn = \"a\"\non_fail = \"drop\"\n")
            .unwrap_err();
        assert!(e.message.contains("cannot drop rows"), "{e}");
        let e = parse(
            "[[model.expect]]\ntest = \"not_null\"\ncolumn = \"a\"\n\
             [[model.expect]]\ntest = \"not_null\"\ncolumn = \"a\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("`not_null_a` is used twice"), "{e}");
        let e = parse("[[model.expect]]\nname = \"x\"\n").unwrap_err();
        assert!(e.message.contains("set `check`"), "{e}");
    }
}
