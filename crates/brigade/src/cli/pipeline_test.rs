//! `brigade pipeline test NAME`: the pipeline's data tests against its current tables, as a
//! PASS / WARN / FAIL table, with the failing values of each test that did not pass.

use brigade_pipelines::Pipeline;
use brigade_pipelines::datatest::{self, TestError};
use brigade_store::Store;

use super::Failure;

pub(crate) async fn run(
    store: &Store,
    pipeline: &Pipeline,
    select: &[String],
    exclude: &[String],
) -> Result<(), Failure> {
    let report = match datatest::run(store, pipeline, select, exclude).await {
        Ok(r) => r,
        Err(TestError::Select(e)) => return Err(Failure::Usage(format!("--{}: {e}", e.field))),
        Err(TestError::Store(e)) => {
            return Err(Failure::Runtime(
                anyhow::Error::new(e).context("running the tests"),
            ));
        }
    };
    if report.nodes.is_empty() {
        println!(
            "No tests in `{}`: add [[model.expect]] or [[extract.expect]] entries, e.g. test = \"unique\", column = \"id\".",
            pipeline.name
        );
        return Ok(());
    }
    println!(
        "{:<24} {:<32} {:<16} {:<6} {:>8}",
        "NODE", "TEST", "COLUMN", "STATUS", "FAILING"
    );
    let (mut passed, mut warned, mut failed) = (0, 0, 0);
    for n in &report.nodes {
        for t in &n.tests {
            let status = match t.status {
                "passed" => {
                    passed += 1;
                    "PASS"
                }
                "warned" => {
                    warned += 1;
                    "WARN"
                }
                "error" => {
                    failed += 1;
                    "ERROR"
                }
                _ => {
                    failed += 1;
                    "FAIL"
                }
            };
            println!(
                "{:<24} {:<32} {:<16} {:<6} {:>8}",
                n.node,
                t.name,
                t.column.as_deref().unwrap_or("-"),
                status,
                t.failing_rows
            );
            if !t.message.is_empty() {
                println!("    {}", t.message);
            }
        }
    }
    println!();
    println!("{passed} passed, {warned} warned, {failed} failed.");
    if failed > 0 {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "{failed} test(s) of `{}` failed",
            pipeline.name
        )));
    }
    Ok(())
}
