//! Reading files: formats, globs, gzip, bad rows and their line numbers.

use std::io::Write;

use serde_json::json;

use crate::extract::test_support::{collect_started as collect, context};

fn write(dir: &std::path::Path, name: &str, content: &[u8]) {
    std::fs::write(dir.join(name), content).expect("write fixture");
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).expect("gzip");
    enc.finish().expect("gzip")
}

#[tokio::test]
async fn csv_options_globs_gzip_and_types() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.csv",
        b"Zip;City Name;Pop;When\n01234;\"Semi;colon\";12;2013-01-01\n99999;-;NA;2013-01-02\n",
    );
    write(
        dir.path(),
        "b.csv.gz",
        &gzip("Zip;City Name;Pop;When\n10001;\"New \"\"York\"\"\";8000000;2013-01-03\n"),
    );
    let cx = context(
        "name = \"cities\"\nfrom = \"file\"\npath = \"*.csv*\"\nformat = \"csv\"\ndelimiter = \";\"\nnull_values = [\"NA\", \"-\"]",
        dir.path(),
        None,
        &[],
    );
    let got = collect(cx).await.unwrap();
    let names: Vec<(&str, &str)> = got
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty.name()))
        .collect();
    assert_eq!(
        names,
        [
            ("zip", "text"),
            ("city_name", "text"),
            ("pop", "integer"),
            ("when", "timestamp")
        ]
    );
    assert_eq!(
        got.column("zip"),
        [json!("01234"), json!("99999"), json!("10001")],
        "leading zeros kept"
    );
    assert_eq!(
        got.column("city_name"),
        [json!("Semi;colon"), json!(null), json!("New \"York\"")]
    );
    assert_eq!(got.column("pop"), [json!(12), json!(null), json!(8000000)]);
    assert_eq!(got.sources, ["a.csv", "a.csv", "b.csv.gz"]);
}

#[tokio::test]
async fn bad_rows_fail_with_file_and_line_or_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", b"id,n\n1,10\n2,x\n3\n4,40\n");
    let toml = |policy: &str| {
        format!(
            "name = \"d\"\nfrom = \"file\"\npath = \"d.csv\"\nsample_rows = 1\non_bad_row = \"{policy}\""
        )
    };
    let e = collect(context(&toml("fail"), dir.path(), None, &[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("d.csv line 3") && e.contains("`x` is not an integer"),
        "{e}"
    );
    let got = collect(context(&toml("quarantine"), dir.path(), None, &[]))
        .await
        .unwrap();
    assert_eq!(got.column("id"), [json!(1), json!(4)]);
    let lines: Vec<(u64, &str)> = got
        .rejected
        .iter()
        .map(|r| (r.line, r.raw.as_str()))
        .collect();
    assert_eq!(
        lines,
        [(3, "2,x"), (4, "3")],
        "the rows as written: {:?}",
        got.rejected
    );
    assert!(
        got.rejected[1]
            .error
            .contains("has 1 fields, the header has 2")
    );
    let got = collect(context(&toml("skip"), dir.path(), None, &[]))
        .await
        .unwrap();
    assert_eq!(got.rows.len(), 2);
    assert_eq!(got.summary.skipped.bad_row, 2, "skipped rows are counted");
}

#[tokio::test]
async fn an_unterminated_quote_is_named_with_its_line_and_raw_rows_keep_their_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name,n\n1,a,1\n2,\"open,2\n");
    for i in 3..2000 {
        text.push_str(&format!("{i},x{i},{i}\n"));
    }
    write(dir.path(), "q.csv", text.as_bytes());
    let e = collect(context(
        "name = \"q\"\nfrom = \"file\"\npath = \"q.csv\"",
        dir.path(),
        None,
        &[],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("q.csv line 3: unterminated quote starting at line 3"),
        "{e}"
    );
    assert!(e.contains("to line 2000"), "{e}");
    // A quoted field with the delimiter in it, rejected: kept exactly as written.
    write(
        dir.path(),
        "r.csv",
        b"id,name\n1,a\nx,\"Semi, \"\"colon\"\"\"\r\n2,b\n",
    );
    let got = collect(context(
        "name = \"r\"\nfrom = \"file\"\npath = \"r.csv\"\nsample_rows = 1\non_bad_row = \"quarantine\"",
        dir.path(),
        None,
        &[],
    ))
    .await
    .unwrap();
    assert_eq!(got.rows.len(), 2);
    assert_eq!(got.rejected.len(), 1);
    assert_eq!(got.rejected[0].raw, "x,\"Semi, \"\"colon\"\"\"");
}

#[tokio::test]
async fn empty_and_header_only_files_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "e.csv", b"");
    write(dir.path(), "h.csv", b"a,b\n");
    write(dir.path(), "e.ndjson", b"");
    for (path, note) in [
        ("e.csv", "0 rows: file e.csv is empty"),
        ("h.csv", "0 rows: file h.csv has a header but no rows"),
        ("e.ndjson", "0 rows: file e.ndjson is empty"),
    ] {
        let got = collect(context(
            &format!("name = \"e\"\nfrom = \"file\"\npath = \"{path}\"\nincremental = {{ cursor = \"a\" }}"),
            dir.path(),
            None,
            &[],
        ))
        .await
        .unwrap();
        assert!(got.rows.is_empty());
        assert_eq!(got.summary.notes, [note], "{path}");
    }
    // Header only: a column the table already has keeps its type.
    let mut cx = context(
        "name = \"e\"\nfrom = \"file\"\npath = \"h.csv\"",
        dir.path(),
        None,
        &[],
    );
    cx.existing = Some(vec![brigade_store::warehouse::Column {
        name: "a".into(),
        ty: brigade_store::warehouse::ColumnType::Integer,
    }]);
    let got = collect(cx).await.unwrap();
    let types: Vec<&str> = got.columns.iter().map(|c| c.ty.name()).collect();
    assert_eq!(types, ["integer", "text"]);
}

#[tokio::test]
async fn a_missing_file_and_a_header_change_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let e = collect(context(
        "name = \"x\"\nfrom = \"file\"\npath = \"nope/*.csv\"",
        dir.path(),
        None,
        &[],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("no file matches `nope/*.csv`"), "{e}");
    write(dir.path(), "1.csv", b"a,b\n1,2\n");
    write(dir.path(), "2.csv", b"a,c\n1,2\n");
    let e = collect(context(
        "name = \"x\"\nfrom = \"file\"\npath = \"*.csv\"",
        dir.path(),
        None,
        &[],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("2.csv has columns (a, c) but 1.csv has (a, b)"),
        "{e}"
    );
}

#[tokio::test]
async fn json_arrays_stream_and_incremental_filters() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "e.json", br#"[{"id": 1, "at": "2013-01-01T00:00:00Z"}, {"id": 2, "at": "2013-01-02T00:00:00Z", "extra": {"k": true}}]"#);
    let cx = context(
        "name = \"e\"\nfrom = \"file\"\npath = \"e.json\"\nincremental = { cursor = \"at\" }",
        dir.path(),
        Some(json!("2013-01-01T00:00:00Z")),
        &[],
    );
    let got = collect(cx).await.unwrap();
    assert_eq!(got.column("id"), [json!(2)]);
    assert_eq!(got.column("extra_k"), [json!(true)]);
    assert_eq!(got.done, Some(Some(json!("2013-01-02T00:00:00Z"))));
    write(dir.path(), "bad.json", b"{\"not\": \"an array\"}");
    let e = collect(context(
        "name = \"b\"\nfrom = \"file\"\npath = \"bad.json\"",
        dir.path(),
        None,
        &[],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a JSON array of objects"), "{e}");
}

/// Fixtures: `testdata/flights_sample*.parquet`, written by pyarrow (snappy with two row
/// groups; zstd) with int64, string, double, bool, timestamp[ms, UTC] and date32 columns.
#[tokio::test]
async fn parquet_files_with_snappy_and_zstd() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    for file in ["flights_sample.parquet", "flights_sample_zstd.parquet"] {
        let cx = context(
            &format!("name = \"p\"\nfrom = \"file\"\npath = \"{file}\""),
            &dir,
            None,
            &[],
        );
        let got = collect(cx).await.unwrap();
        let names: Vec<(&str, &str)> = got
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty.name()))
            .collect();
        assert_eq!(
            names,
            [
                ("id", "integer"),
                ("carrier", "text"),
                ("delay", "number"),
                ("cancelled", "bool"),
                ("time_hour", "timestamp"),
                ("day", "timestamp")
            ],
            "{file}"
        );
        assert_eq!(
            got.column("carrier"),
            [json!("UA"), json!(null), json!("B6")]
        );
        assert_eq!(got.column("delay"), [json!(2.5), json!(null), json!(-1.0)]);
        assert_eq!(
            got.column("time_hour")[2],
            json!("2013-01-02T05:30:00.000Z")
        );
        assert_eq!(got.column("day")[2], json!("2013-01-02"));
    }
}
