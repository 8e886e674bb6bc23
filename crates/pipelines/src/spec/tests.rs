//! Validation of pipeline files: each mistake names its key and line.

use std::path::Path;

use super::Pipeline;

fn parse(text: &str) -> Result<Pipeline, crate::ConfigError> {
    Pipeline::parse(Path::new("/nonexistent"), "pipelines/p.toml", text)
}

const EXTRACT: &str = "\n[[extract]]\nname = \"raw\"\nfrom = \"file\"\npath = \"in/*.csv\"\n";

#[test]
fn triggers_are_checked_with_key_and_line() {
    let ok = parse(&format!(
        "name = \"p\"\n[trigger]\nafter = [\"ingest\"]\nfiles = true\npoll = \"2s\"\n{EXTRACT}"
    ))
    .unwrap();
    let t = ok.trigger.unwrap();
    assert_eq!(t.after, ["ingest"]);
    assert_eq!(t.poll(), std::time::Duration::from_secs(2));

    let e = parse(&format!(
        "name = \"p\"\n[trigger]\nafter = [\"p\"]\n{EXTRACT}"
    ))
    .unwrap_err();
    assert_eq!(e.key, "trigger.after[0]");
    assert!(e.message.contains("cannot trigger itself"), "{e}");

    let e = parse(&format!(
        "name = \"p\"\n[trigger]\nfiles = true\npoll = \"soon\"\n{EXTRACT}"
    ))
    .unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("trigger.poll", 4), "{e}");

    let e = parse("name = \"p\"\n[trigger]\nfiles = true\n\n[[model]]\nname = \"m\"\nquery = \"SELECT 1 AS n\"\n")
        .unwrap_err();
    assert!(e.message.contains("no") && e.key == "trigger.files", "{e}");

    let e = parse(&format!("name = \"p\"\n[trigger]\n{EXTRACT}")).unwrap_err();
    assert_eq!(e.key, "trigger", "{e}");
}

#[test]
fn vars_need_scalar_defaults_and_models_may_only_use_declared_ones() {
    let ok = parse(
        "name = \"p\"\n[vars]\nday = \"2013-01-01\"\nmin = 3\n\n[[model]]\nname = \"m\"\nquery = \"SELECT '{{ var('day') }}' AS d, {{ var('min') }} AS n\"\n",
    )
    .unwrap();
    assert_eq!(ok.var_defaults()["min"], serde_json::json!(3));

    let e = parse("name = \"p\"\n[vars]\nday = [1, 2]\n\n[[model]]\nname = \"m\"\nquery = \"SELECT 1 AS n\"\n")
        .unwrap_err();
    assert_eq!(e.key, "vars.day", "{e}");

    let e = parse(
        "name = \"p\"\n\n[[model]]\nname = \"m\"\nquery = \"SELECT {{ var('day') }} AS n\"\n",
    )
    .unwrap_err();
    assert!(e.message.contains("unknown var `day`"), "{e}");
}

#[test]
fn snapshots_need_a_key_one_strategy_and_no_expose() {
    let model = |extra: &str| {
        format!("name = \"p\"\n\n[[model]]\nname = \"h\"\nquery = \"SELECT 1 AS id\"\n{extra}")
    };
    assert!(parse(&model("materialized = \"snapshot\"\nunique_key = \"id\"\n")).is_ok());
    let e = parse(&model("materialized = \"snapshot\"\n")).unwrap_err();
    assert_eq!(e.key, "model[0].materialized", "{e}");
    let e = parse(&model(
        "materialized = \"snapshot\"\nunique_key = \"id\"\nupdated_at = \"u\"\ncheck_cols = [\"a\"]\n",
    ))
    .unwrap_err();
    assert_eq!(e.key, "model[0].updated_at", "{e}");
    let e = parse(&model(
        "materialized = \"snapshot\"\nunique_key = \"id\"\nexpose = true\n",
    ))
    .unwrap_err();
    assert_eq!(e.key, "model[0].expose", "{e}");
    let e = parse(&model("check_cols = [\"a\"]\n")).unwrap_err();
    assert!(e.message.contains("snapshots"), "{e}");
}

#[test]
fn pagination_kinds_and_readers_are_checked_with_key_and_line() {
    let http = |paginate: &str| {
        format!(
            "name = \"p\"\n[[extract]]\nname = \"raw\"\nfrom = \"http\"\n\
             url = \"https://example.com/items\"\npaginate = {paginate}\n"
        )
    };
    let ok = parse(&http("{ kind = \"link_header\" }")).unwrap();
    assert_eq!(
        ok.extract[0].paginate.as_ref().unwrap().kind,
        super::PaginationKind::LinkHeader
    );
    let e = parse(&http("{ kind = \"pages\" }")).unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.line),
        ("extract[0].paginate.kind", 6),
        "{e}"
    );
    assert!(e.message.contains("`page`, `offset`, `cursor`"), "{e}");
    let e = parse(&http("{ kind = \"cursor\" }")).unwrap_err();
    assert_eq!(e.key, "extract[0].paginate.next", "{e}");

    let ok = parse(&format!("name = \"p\"\nreaders = [\"analyst\"]\n{EXTRACT}")).unwrap();
    assert_eq!(ok.readers, ["analyst"]);
    let e = parse(&format!(
        "name = \"p\"\nreaders = [\"data team\"]\n{EXTRACT}"
    ))
    .unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("readers", 2), "{e}");
    assert!(e.message.contains("is not a role name"), "{e}");
}
