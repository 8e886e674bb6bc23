//! Pipeline files on the command line: mistakes are refused before anything runs (exit 2,
//! naming file, line and key) by `brigade pipeline`, and logged by `brigade serve`, which
//! disables only that pipeline; `graph`, `list` and `run` print what a user reads. SQLite only: nothing here depends on the backend.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::*;

/// The app's SQLite URL inside `dir`.
fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/data/brigade.db", dir.display())
}

/// A valid pipeline: two extracts, a silver model over both, a gold model over silver.
const VALID: &str = r#"name = "shop"
schedule = "0 3 * * *"

[[extract]]
name = "raw_orders"
from = "file"
path = "data/orders.csv"

[[extract]]
name = "raw_customers"
from = "file"
path = "data/customers.csv"
primary_key = ["id"]

[[model]]
name = "orders_enriched"
sql = "models/orders_enriched.sql"

[[model]]
name = "revenue"
layer = "gold"
query = "SELECT city, SUM(amount) AS total FROM {{ ref('orders_enriched') }} GROUP BY city"
[[model.expect]]
name = "positive"
check = "total > 0"
on_fail = "fail"
"#;

const ENRICHED_SQL: &str = "SELECT o.id, o.amount, c.city
FROM {{ ref('raw_orders') }} o
JOIN {{ ref('raw_customers') }} c ON c.id = o.customer";

fn valid_app(orders: &str) -> tempfile::TempDir {
    app_dir(&[
        text("pipelines/shop.toml", VALID),
        text("models/orders_enriched.sql", ENRICHED_SQL),
        text("data/orders.csv", orders),
        text(
            "data/customers.csv",
            "id,name,city\n1,Ann,Paris\n2,Bob,Rome\n",
        ),
    ])
}

const ORDERS: &str = "id,customer,amount\n1,1,10.5\n2,2,20\n3,1,5\n";

/// `brigade serve` on `dir`: it starts (the other pipelines keep running) and logs the
/// invalid file; returns its stderr once it has.
fn serve_log(dir: &Path) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_brigade"))
        .args(["serve", "--addr", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .env("BRIGADE_DATABASE_URL", sqlite_url(dir))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn brigade serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        log.push_str(&line);
        log.push('\n');
        if log.contains("A pipeline file is invalid") && log.contains("Listening") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.contains("A pipeline file is invalid") && log.contains("Listening"),
        "brigade serve should start and log the invalid file:\n{log}"
    );
    log
}

/// Writes `files`, then checks that `pipeline graph` and `pipeline run` exit with 2 before
/// opening the database, each saying every one of `expected`. Returns the app directory.
async fn cli_refused(files: &[(&str, Vec<u8>)], expected: &[&str]) -> tempfile::TempDir {
    let dir = app_dir(files);
    let url = sqlite_url(dir.path());
    for what in ["graph", "run"] {
        let out = pipeline_cli(dir.path(), &url, &[what, "p"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what} should refuse the file:\n{}",
            output_text(&out)
        );
        for part in expected {
            assert!(
                stderr.contains(part),
                "{what}: stderr does not contain {part:?}:\n{}",
                output_text(&out)
            );
        }
    }
    assert!(
        !dir.path().join("data/brigade.db").exists(),
        "the database was opened despite the bad file"
    );
    dir
}

/// As [`cli_refused`], and `serve` starts and logs the file as invalid, saying every one of
/// `expected`.
async fn refused(files: &[(&str, Vec<u8>)], expected: &[&str]) {
    let dir = cli_refused(files, expected).await;
    let log = tokio::task::spawn_blocking({
        let path = dir.path().to_path_buf();
        move || serve_log(&path)
    })
    .await
    .expect("serve");
    for part in expected {
        assert!(
            log.contains(part),
            "serve: the log does not contain {part:?}:\n{log}"
        );
    }
}

#[tokio::test]
async fn an_unknown_key_names_file_line_and_key() {
    let p = r#"name = "p"

[[extract]]
name = "raw"
from = "file"
path = "data/x.csv"
pth = "data/y.csv"
"#;
    refused(
        &[text("pipelines/p.toml", p), text("data/x.csv", "a\n1\n")],
        &["pipelines/p.toml:7: key `extract[0].pth`", "pth"],
    )
    .await;
}

#[tokio::test]
async fn an_unknown_ref_names_the_model_file_and_line() {
    let p = r#"[[extract]]
name = "raw"
from = "file"
path = "data/x.csv"

[[model]]
name = "m"
sql = "models/m.sql"
"#;
    refused(
        &[
            text("pipelines/p.toml", p),
            text("data/x.csv", "a\n1\n"),
            text("models/m.sql", "SELECT a\nFROM {{ ref('nope') }}\n"),
        ],
        &["models/m.sql:2:", "unknown ref `nope`", "raw"],
    )
    .await;
}

#[tokio::test]
async fn an_unknown_ref_in_the_incremental_branch_is_refused_at_load() {
    let p = r#"[[extract]]
name = "raw"
from = "file"
path = "data/x.csv"

[[model]]
name = "m"
sql = "models/m.sql"
materialized = "incremental"
"#;
    // The branch only renders once the table exists: the first run would have passed.
    cli_refused(
        &[
            text("pipelines/p.toml", p),
            text("data/x.csv", "a\n1\n"),
            text(
                "models/m.sql",
                "SELECT a\nFROM {{ ref('raw') }}\n{% if is_incremental() %}\nWHERE a > (SELECT max(a) FROM {{ ref('raww') }})\n{% endif %}\n",
            ),
        ],
        &[
            "models/m.sql:4:",
            "unknown ref `raww`",
            "is_incremental()` branch",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_block_header_with_a_comment_does_not_move_the_error_line() {
    let p = r#"name = "p"

[[extract]] # the raw orders
name = "raw"
from = "file"
path = "data/x.csv"

[[ extract ]]   # the second one
name = "raw2"
from = "file"
path = "data/x.csv"
incremental = { cursor = "" }
"#;
    cli_refused(
        &[text("pipelines/p.toml", p), text("data/x.csv", "a\n1\n")],
        &[
            "pipelines/p.toml:12: key `extract[1].incremental.cursor`",
            "name the cursor column",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_cycle_between_models_is_shown() {
    let p = r#"[[model]]
name = "a"
query = "SELECT * FROM {{ ref('b') }}"

[[model]]
name = "b"
query = "SELECT * FROM {{ ref('a') }}"
"#;
    refused(
        &[text("pipelines/p.toml", p)],
        &[
            "pipelines/p.toml:2: key `model[0].name`",
            "the models form a cycle: a -> b -> a",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_bad_cron_names_the_schedule_line() {
    let p = r#"name = "p"
schedule = "61 * * * *"

[[model]]
name = "m"
query = "SELECT 1 AS x"
"#;
    refused(
        &[text("pipelines/p.toml", p)],
        &[
            "pipelines/p.toml:2: key `schedule`",
            "`61 * * * *` is not a valid cron expression",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_missing_model_file_names_the_sql_key() {
    let p = r#"name = "p"

[[model]]
name = "m"
sql = "models/missing.sql"
"#;
    refused(
        &[text("pipelines/p.toml", p)],
        &[
            "pipelines/p.toml:5: key `model[0].sql`",
            "cannot read `models/missing.sql`",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_unknown_column_type_lists_the_known_ones() {
    let p = r#"[[extract]]
name = "raw"
from = "file"
path = "data/x.csv"
columns = { zip = "txt" }
"#;
    refused(
        &[text("pipelines/p.toml", p), text("data/x.csv", "zip\n1\n")],
        &[
            "pipelines/p.toml:5: key `extract[0].columns.zip`",
            "unknown type `txt`",
            "integer, number, bool, text, timestamp, json",
        ],
    )
    .await;
}

#[tokio::test]
async fn duplicate_node_names_are_refused() {
    let p = r#"[[extract]]
name = "raw"
from = "file"
path = "data/x.csv"

[[model]]
name = "raw"
query = "SELECT 1 AS x"
"#;
    refused(
        &[text("pipelines/p.toml", p), text("data/x.csv", "a\n1\n")],
        &[
            "pipelines/p.toml:7: key `model[0].name`",
            "`raw` is defined twice",
        ],
    )
    .await;
}

#[tokio::test]
async fn dropping_rows_of_a_view_is_refused() {
    let p = r#"[[model]]
name = "v"
query = "SELECT 1 AS x"
materialized = "view"
[[model.expect]]
name = "positive"
check = "x > 0"
on_fail = "drop"
"#;
    refused(
        &[text("pipelines/p.toml", p)],
        &[
            "pipelines/p.toml:8: key `model[0].expect[0].on_fail`",
            "a view cannot drop rows",
        ],
    )
    .await;
}

#[tokio::test]
async fn graph_draws_dot_and_mermaid_edges() {
    let dir = valid_app(ORDERS);
    let url = sqlite_url(dir.path());
    let dot = pipeline_cli(dir.path(), &url, &["graph", "shop"]).await;
    assert_eq!(dot.status.code(), Some(0), "{}", output_text(&dot));
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(text.starts_with("digraph \"shop\""), "{text}");
    for edge in [
        "\"raw_orders\" -> \"orders_enriched\";",
        "\"raw_customers\" -> \"orders_enriched\";",
        "\"orders_enriched\" -> \"revenue\";",
    ] {
        assert!(text.contains(edge), "no {edge} in:\n{text}");
    }
    assert!(!text.contains("\"raw_orders\" -> \"revenue\""), "{text}");

    let mermaid = pipeline_cli(dir.path(), &url, &["graph", "shop", "--format", "mermaid"]).await;
    assert_eq!(mermaid.status.code(), Some(0), "{}", output_text(&mermaid));
    let text = String::from_utf8_lossy(&mermaid.stdout);
    assert!(text.starts_with("flowchart LR"), "{text}");
    for edge in [
        "raw_orders --> orders_enriched",
        "raw_customers --> orders_enriched",
        "orders_enriched --> revenue",
    ] {
        assert!(text.contains(edge), "no {edge} in:\n{text}");
    }

    let unknown = pipeline_cli(dir.path(), &url, &["graph", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", output_text(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no pipeline `nope`"),
        "{}",
        output_text(&unknown)
    );
}

#[tokio::test]
async fn list_and_run_print_a_summary() {
    let dir = valid_app(ORDERS);
    let url = sqlite_url(dir.path());
    let list = pipeline_cli(dir.path(), &url, &["list"]).await;
    assert_eq!(list.status.code(), Some(0), "{}", output_text(&list));
    let text = String::from_utf8_lossy(&list.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("shop "))
        .unwrap_or_else(|| panic!("no row for shop:\n{text}"));
    assert!(row.contains("0 3 * * *"), "{row}");
    assert!(row.split_whitespace().any(|w| w == "4"), "4 steps: {row}");

    let run = pipeline_cli(dir.path(), &url, &["run", "shop"]).await;
    assert_eq!(run.status.code(), Some(0), "{}", output_text(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    for step in ["raw_orders", "raw_customers", "orders_enriched", "revenue"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{step} ")))
            .unwrap_or_else(|| panic!("no summary line for {step}:\n{text}"));
        assert!(line.contains("succeeded"), "{line}\n{text}");
    }
    let orders = text.lines().find(|l| l.starts_with("raw_orders ")).unwrap();
    assert!(
        orders.split_whitespace().filter(|w| *w == "3").count() == 2,
        "3 rows in and out: {orders}"
    );
    assert!(text.contains("succeeded."), "{text}");

    let list = pipeline_cli(dir.path(), &url, &["list"]).await;
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("shop ") && l.contains("succeeded")),
        "last run shown:\n{text}"
    );
}

#[tokio::test]
async fn a_failing_run_exits_1_naming_the_step_and_the_reason() {
    let dir = valid_app("id,customer,amount\n1,1,10\n2,2,-30\n");
    let url = sqlite_url(dir.path());
    let run = pipeline_cli(dir.path(), &url, &["run", "shop"]).await;
    assert_eq!(run.status.code(), Some(1), "{}", output_text(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let revenue = stdout
        .lines()
        .find(|l| l.starts_with("revenue "))
        .unwrap_or_else(|| panic!("no line for revenue:\n{stdout}"));
    assert!(revenue.contains("failed"), "{revenue}");
    assert!(
        stdout.contains("expectation positive") && stdout.contains("failed"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    for part in [
        "step `revenue` failed",
        "expectation `positive` (total > 0) failed on 1 row(s)",
        "Rome",
    ] {
        assert!(stderr.contains(part), "no {part:?}:\n{}", output_text(&run));
    }
}

/// The shipped examples stay valid: `examples/flights` (and the demo app that links it).
#[tokio::test]
async fn the_example_pipelines_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for app in ["flights", "demo"] {
        let dir = root.join(app);
        let url = format!(
            "sqlite://{}/brigade.db",
            std::env::temp_dir().join("brigade-example-check").display()
        );
        let out = pipeline_cli(&dir, &url, &["graph", "flights", "--format", "mermaid"]).await;
        assert_eq!(out.status.code(), Some(0), "{app}: {}", output_text(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        for edge in [
            "raw_flights --> silver_flights",
            "silver_flights --> gold_carrier_month",
            "silver_weather --> gold_weather_impact",
        ] {
            assert!(text.contains(edge), "{app}: no {edge} in:\n{text}");
        }
    }
}

/// `brigade bench pipeline` rebuilds the pipeline and reports each step.
#[tokio::test]
async fn bench_pipeline_times_full_rebuilds() {
    let dir = valid_app(ORDERS);
    let url = sqlite_url(dir.path());
    let args = ["bench", "pipeline", "shop", "--runs", "2", "--dir"];
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.push(dir.path().as_os_str());
    let out = crate::helpers::run_cli(all, &[("BRIGADE_DATABASE_URL", &url)], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run 2/2:"), "{text}");
    assert!(
        text.contains("orders_enriched") && text.contains("revenue"),
        "{text}"
    );
    assert!(
        text.contains("2 full rebuilds") && text.contains("peak RSS"),
        "{text}"
    );
    let missing = crate::helpers::run_cli(
        ["bench", "pipeline", "nope", "--dir"]
            .iter()
            .map(std::ffi::OsStr::new)
            .chain([dir.path().as_os_str()]),
        &[("BRIGADE_DATABASE_URL", &url)],
        None,
    )
    .await;
    assert_eq!(missing.status.code(), Some(2), "{}", output_text(&missing));
}
