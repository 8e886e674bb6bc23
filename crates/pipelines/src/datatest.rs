//! Data tests: turns the `expect` entries of extracts and models into the store's checks
//! (row checks keep working as expectations that warn, drop or fail; `unique`,
//! `relationships`, `row_count` and `expression` run over the whole table), and runs them
//! alone against the current tables for `brigade pipeline test` and
//! `POST /api/pipelines/{name}/test`.

use brigade_store::Store;
use brigade_store::StoreError;
use brigade_store::warehouse::{
    DataTest, ExpectationAction, TestKind, TestOutcome, accepted_values_check, not_null_check,
};
use serde::Serialize;

use crate::select::{self, SelectError};
use crate::spec::{BuiltinTest, Expect, Node, OnFail, Pipeline};

/// What a failure does, in the store's terms.
pub fn action(x: &Expect) -> ExpectationAction {
    match x.action() {
        OnFail::Warn => ExpectationAction::Warn,
        OnFail::Drop => ExpectationAction::Drop,
        OnFail::Fail => ExpectationAction::Fail,
    }
}

/// The SQL boolean of a row-level entry (`check`, `not_null`, `accepted_values`); `None` for
/// table-level tests.
///
/// # Errors
/// A column name or value the store refuses (validated on load, so only a guard).
pub fn row_check(x: &Expect) -> Result<Option<String>, StoreError> {
    let column = x
        .column
        .as_ref()
        .and_then(|c| c.columns().into_iter().next())
        .unwrap_or_default();
    Ok(match (&x.check, x.test) {
        (Some(check), _) => Some(check.clone()),
        (None, Some(BuiltinTest::NotNull)) => Some(not_null_check(&column)?),
        (None, Some(BuiltinTest::AcceptedValues)) => Some(accepted_values_check(
            &column,
            x.values.as_deref().unwrap_or_default(),
        )?),
        _ => None,
    })
}

/// Any entry as a store test.
///
/// # Errors
/// As [`row_check`].
pub fn data_test(x: &Expect) -> Result<DataTest, StoreError> {
    let columns = x.column.as_ref().map(|c| c.columns()).unwrap_or_default();
    let kind = match (row_check(x)?, x.test) {
        (Some(check), _) => TestKind::Row(check),
        (None, Some(BuiltinTest::Unique)) => TestKind::Unique(columns.clone()),
        (None, Some(BuiltinTest::Relationships)) => {
            let (to_table, to_column) = x.to_parts().unwrap_or_default();
            TestKind::Relationships {
                column: columns.first().cloned().unwrap_or_default(),
                to_table: to_table.to_string(),
                to_column: to_column.to_string(),
            }
        }
        (None, Some(BuiltinTest::RowCount)) => TestKind::RowCount {
            min: x.min,
            max: x.max,
        },
        (None, _) => TestKind::Expression(x.expression.clone().unwrap_or_default()),
    };
    Ok(DataTest {
        name: x.name.clone(),
        column: (!columns.is_empty()).then(|| columns.join(", ")),
        kind,
        action: action(x),
    })
}

/// The table-level entries of `expect` as store tests (row-level ones run as expectations).
///
/// # Errors
/// As [`row_check`].
pub fn table_tests(expect: &[Expect]) -> Result<Vec<DataTest>, StoreError> {
    expect
        .iter()
        .filter(|x| x.test.is_some_and(|t| !t.is_row_level()))
        .map(data_test)
        .collect()
}

/// The tests of one node, as `brigade pipeline test` reports them.
#[derive(Debug, Clone, Serialize)]
pub struct NodeTests {
    pub node: String,
    /// `extract` or `model`.
    pub kind: &'static str,
    pub tests: Vec<TestOutcome>,
}

/// The outcome of testing a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct TestRun {
    pub pipeline: String,
    /// `passed`, `warned` or `failed` (a test that could not run counts as failed).
    pub status: &'static str,
    pub nodes: Vec<NodeTests>,
}

/// Why a test run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs the tests of the selected nodes of `pipeline` against their current tables,
/// loading and building nothing.
///
/// # Errors
/// A selector matching nothing, or an unreachable database.
pub async fn run(
    store: &Store,
    pipeline: &Pipeline,
    select: &[String],
    exclude: &[String],
) -> Result<TestRun, TestError> {
    let chosen = select::resolve(&pipeline.graph, select, exclude)?;
    let mut nodes = Vec::new();
    for n in pipeline
        .graph
        .nodes
        .iter()
        .filter(|n| chosen.contains(&n.name))
    {
        let expect = match pipeline.node(&n.name) {
            Some(Node::Extract(e)) => &e.expect,
            Some(Node::Model(m)) => &m.expect,
            None => continue,
        };
        if expect.is_empty() {
            continue;
        }
        let tests = expect
            .iter()
            .map(data_test)
            .collect::<Result<Vec<_>, _>>()?;
        nodes.push(NodeTests {
            node: n.name.clone(),
            kind: n.kind,
            tests: store.warehouse().run_data_tests(&n.name, &tests).await?,
        });
    }
    let all = || nodes.iter().flat_map(|n| n.tests.iter());
    let status = if all().any(|t| matches!(t.status, "failed" | "error")) {
        "failed"
    } else if all().any(|t| t.status == "warned") {
        "warned"
    } else {
        "passed"
    };
    Ok(TestRun {
        pipeline: pipeline.name.clone(),
        status,
        nodes,
    })
}
