//! A SQLite model's sort spills to temp files instead of growing the process: a window
//! function over 700k wide rows stays far below what holding its sort in memory takes
//! (about 190 MB with in-memory temp storage, 90 MB with temp files; the budget is 150 MB).

use std::io::Write;
use std::process::{Command, Stdio};

use super::support::*;
use crate::helpers::BIN;

const ROWS: u64 = 700_000;
const BUDGET_KB: i64 = 150 * 1024;

const LOAD: &str = "[[extract]]\nname = \"wide\"\nfrom = \"file\"\npath = \"data/wide.csv\"\n";
const WINDOW: &str = "[[model]]\nname = \"ranked\"\nquery = \"\"\"\nSELECT w.*, row_number() OVER (PARTITION BY grp ORDER BY score DESC, id) AS score_rank,\n       avg(score) OVER (PARTITION BY label) AS label_avg\nFROM wide w\n\"\"\"\n";

/// Runs `brigade pipeline run NAME` and returns its peak RSS in KiB: the child's own
/// `VmHWM` (a high-water mark, so the last reading before it exits holds the peak of its
/// model step), polled every 10 ms; other tests' processes do not count.
fn peak_rss_of_run(dir: &std::path::Path, db_url: &str, name: &str) -> i64 {
    let mut child = Command::new(BIN)
        .args(["pipeline", "run", name, "--dir"])
        .arg(dir)
        .env("BRIGADE_DATABASE_URL", db_url)
        .env("TMPDIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn brigade");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        {
            peak = peak.max(kb);
        }
        if let Some(exit) = child.try_wait().expect("wait for brigade") {
            assert!(exit.success(), "`pipeline run {name}` failed: {exit}");
            return peak;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_function_over_many_rows_runs_in_bounded_memory() {
    let dir = app_dir(&[
        text("pipelines/load.toml", LOAD),
        text("pipelines/window.toml", WINDOW),
    ]);
    let csv = dir.path().join("data/wide.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(out, "id,grp,score,label,a,b,c,d,e,f").unwrap();
    for i in 0..ROWS {
        let score = (i * 7919) % 100_003;
        writeln!(
            out,
            "{i},{},{score},label-{},alpha-{i:08},bravo-{score:08},charlie-{i:08},delta-{score:08},echo-{i:08},foxtrot-{i:08}",
            i % 17,
            i % 101
        )
        .unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let db_url = format!("sqlite://{}/data/brigade.db", dir.path().display());
    peak_rss_of_run(dir.path(), &db_url, "load");
    let peak = peak_rss_of_run(dir.path(), &db_url, "window");
    assert!(
        peak < BUDGET_KB,
        "the model peaked at {} MiB (budget {} MiB): its sort is held in memory",
        peak / 1024,
        BUDGET_KB / 1024
    );
    let rows = query_at(
        crate::helpers::Backend::Sqlite,
        &db_url,
        "SELECT count(*) AS n, max(score_rank) AS top FROM ranked",
    )
    .await;
    assert_eq!(rows[0]["n"], i64::try_from(ROWS).unwrap(), "{rows:?}");
}
