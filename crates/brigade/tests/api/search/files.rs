//! A path-backed index: files ingested when the server starts, searched by keywords, by
//! meaning and both, with filters, highlights and clear errors; the CLI ingests and queries.

use serde_json::Value;

use super::{config, docs_of, hits, manual, wait_ingested};
use crate::helpers::{assert_success, expect_problem, run_cli};

fn files(extra: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut f = manual();
    f.push(config(extra));
    f
}

files_test!(
    serve_ingests_files_and_every_mode_finds_them,
    files(""),
    |app| async move {
        let index = wait_ingested(&app, "docs").await;
        assert_eq!(index["documents"], 3, "{index}");
        let openapi =
            crate::helpers::expect_json(app.anon_get("/api/openapi.json").await, 200).await;
        assert_eq!(
            openapi["paths"]["/api/rag/{index}"]["post"]["parameters"][0]["schema"]["enum"],
            serde_json::json!(["docs"])
        );
        assert!(openapi["paths"]["/api/search/{index}"]["get"].is_object());
        assert_eq!(index["ingest"]["report"]["indexed"], 3, "{index}");
        assert_eq!(
            (index["chunk"].clone(), index["ranking"].clone()),
            (
                serde_json::json!({"max_tokens": 300, "overlap": 40}),
                serde_json::json!({"vector_weight": 0.5, "same_document_weight": 0.6})
            ),
            "{index}"
        );

        for mode in ["keyword", "vector", "hybrid"] {
            let found = hits(
                &app,
                "docs",
                &[
                    ("q", "restore a pg_dump archive"),
                    ("mode", mode),
                    ("k", "3"),
                ],
            )
            .await;
            assert!(!found.is_empty(), "{mode}: no hits");
            assert_eq!(docs_of(&found)[0], "docs/backup.md", "{mode}: {found:?}");
            assert!(found.len() <= 3);
        }
        let found = hits(&app, "docs", &[("q", "exclusive lock vacuum full")]).await;
        let top = &found[0];
        assert_eq!(top["source"]["document_id"], "docs/vacuum.md");
        assert_eq!(top["source"]["title"], "Routine Vacuuming");
        assert_eq!(top["source"]["path_or_url"], "docs/vacuum.md");
        assert_eq!(top["source"]["chunk"], 0);
        assert_eq!(top["id"], "docs/vacuum.md#0");
        assert!(top["score"].as_f64().unwrap() > 0.0);
        assert!(top["text"].as_str().unwrap().contains("VACUUM FULL"));
        let marks: Vec<&str> = top["highlights"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            marks.iter().any(|h| h.contains("<mark>exclusive</mark>")),
            "{marks:?}"
        );

        // Filters use the filter language over the document's id, title, path and kind.
        let only_guide = hits(
            &app,
            "docs",
            &[("q", "index lock"), ("filter", "path ~ 'guide/'")],
        )
        .await;
        assert_eq!(
            docs_of(&only_guide),
            ["docs/guide/indexes.md"],
            "{only_guide:?}"
        );
        let none = hits(
            &app,
            "docs",
            &[
                ("q", "vacuum"),
                ("filter", "title = 'nothing'"),
                ("mode", "vector"),
            ],
        )
        .await;
        assert!(none.is_empty(), "{none:?}");
        // Front matter keys are metadata: listed with the document, filtered by name or as
        // `metadata.KEY`.
        let listed =
            crate::helpers::expect_json(app.get("/api/search/docs/documents").await, 200).await;
        let vacuum = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "docs/vacuum.md")
            .expect("listed");
        assert_eq!(
            vacuum["metadata"],
            serde_json::json!({"title": "Routine Vacuuming", "tags": ["maintenance", "storage"], "level": 2})
        );
        for (filter, expected) in [
            ("tags = 'maintenance'", vec!["docs/vacuum.md"]),
            (
                "metadata.level >= 2 && kind = 'markdown'",
                vec!["docs/vacuum.md"],
            ),
            ("level < 2", vec![]),
            (
                "tags != 'storage'",
                vec!["docs/backup.md", "docs/guide/indexes.md"],
            ),
        ] {
            let mut found = docs_of(
                &hits(
                    &app,
                    "docs",
                    &[
                        ("q", "vacuum lock index pg_dump"),
                        ("filter", filter),
                        ("k", "20"),
                    ],
                )
                .await,
            );
            found.sort();
            found.dedup();
            assert_eq!(found, expected, "{filter}");
        }
    }
);

files_test!(
    bad_searches_are_clear_problems,
    files(""),
    |app| async move {
        wait_ingested(&app, "docs").await;
        let get = |q: &[(&str, &str)]| {
            let url = app.url_with("/api/search/docs", q);
            crate::helpers::send(app.client.get(url).bearer_auth(&app.token))
        };
        expect_problem(get(&[("q", "")]).await, 400, Some("q")).await;
        expect_problem(get(&[]).await, 400, Some("q")).await;
        expect_problem(get(&[("q", &"x".repeat(5000))]).await, 400, Some("q")).await;
        expect_problem(get(&[("q", "vacuum"), ("k", "0")]).await, 400, Some("k")).await;
        expect_problem(get(&[("q", "vacuum"), ("k", "ten")]).await, 400, Some("k")).await;
        expect_problem(get(&[("q", "vacuum"), ("k", "1000")]).await, 400, Some("k")).await;
        expect_problem(
            get(&[("q", "vacuum"), ("mode", "semantic")]).await,
            400,
            Some("mode"),
        )
        .await;
        expect_problem(
            get(&[("q", "vacuum"), ("filter", "title ==")]).await,
            400,
            Some("filter"),
        )
        .await;
        expect_problem(
            get(&[("q", "vacuum"), ("filter", "title = 1")]).await,
            400,
            Some("filter"),
        )
        .await;
        for filter in ["metadata = 1", "level > true", "tags > null"] {
            expect_problem(
                get(&[("q", "vacuum"), ("filter", filter)]).await,
                400,
                Some("filter"),
            )
            .await;
        }
        let url = app.url_with("/api/search/nope", &[("q", "x")]);
        expect_problem(crate::helpers::send(app.client.get(url)).await, 404, None).await;
        // Hostile text is searched, not interpreted.
        for q in [
            "\"unbalanced",
            "vacuum OR",
            "NEAR(a b)",
            "a:b*",
            "'; DROP TABLE x; --",
            "ü∑ 😀",
        ] {
            let res = get(&[("q", q)]).await;
            assert_eq!(
                res.status(),
                200,
                "{q}: {}",
                res.text().await.unwrap_or_default()
            );
        }
    }
);

files_test!(
    an_index_rule_restricts_who_searches,
    files("rule = \"@request.auth.id != null\"\n"),
    |app| async move {
        wait_ingested(&app, "docs").await;
        let anon = crate::helpers::send(
            app.client
                .get(app.url_with("/api/search/docs", &[("q", "vacuum")])),
        )
        .await;
        let body: Value = anon.json().await.unwrap();
        assert_eq!(body["hits"].as_array().map(Vec::len), Some(0), "{body}");
        assert!(!hits(&app, "docs", &[("q", "vacuum")]).await.is_empty());
    }
);

files_test!(
    cli_ingest_skips_unchanged_files_and_removes_deleted_ones,
    files(""),
    |app| async move {
        wait_ingested(&app, "docs").await;
        let dir = app.dir.path().to_path_buf();
        let env = [("BRIGADE_DATABASE_URL", app.db_url.as_str())];
        let cli = |args: Vec<String>| async move { run_cli(args, &env, None).await };
        let d = dir.display().to_string();
        // `brigade search ARGS... --dir DIR`
        let search = |args: &[&str]| {
            let mut argv: Vec<String> = vec!["search".into()];
            argv.extend(args.iter().map(ToString::to_string));
            argv.extend(["--dir".to_string(), d.clone()]);
            cli(argv)
        };
        let out = search(&["ingest", "docs"]).await;
        assert_success(&out, "search ingest");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("3 documents (0 indexed, 3 unchanged, 0 removed"),
            "{stdout}"
        );

        std::fs::remove_file(dir.join("docs/guide/indexes.md")).unwrap();
        std::fs::write(
            dir.join("docs/wal.md"),
            "# WAL\n\nThe write-ahead log records every change before it reaches the data files.\n",
        )
        .unwrap();
        let out = search(&["ingest", "docs"]).await;
        assert_success(&out, "search ingest");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("3 documents (1 indexed, 2 unchanged, 1 removed"),
            "{stdout}"
        );

        // The running server sees what the CLI wrote, in every mode.
        for mode in ["keyword", "vector"] {
            let found = hits(
                &app,
                "docs",
                &[
                    ("q", "write-ahead log records every change"),
                    ("mode", mode),
                ],
            )
            .await;
            assert_eq!(
                docs_of(&found).first().map(String::as_str),
                Some("docs/wal.md"),
                "{mode}: {found:?}"
            );
            assert!(
                !docs_of(&found).contains(&"docs/guide/indexes.md".to_string()),
                "{mode}: {found:?}"
            );
        }

        let out = search(&["query", "docs", "restore archives"]).await;
        assert_success(&out, "search query");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(" 1. ") && stdout.contains("docs/backup.md"),
            "{stdout}"
        );

        // Piped, the text has no terminal escapes and no HTML entities.
        assert!(
            !stdout.contains('\u{1b}') && !stdout.contains("&amp;"),
            "{stdout}"
        );
        let out = search(&["query", "docs", "restore archives", "--json", "-k", "1"]).await;
        assert_success(&out, "search query --json");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(
            json["hits"][0]["source"]["document_id"], "docs/backup.md",
            "{json}"
        );
        let out = search(&[
            "ask",
            "docs",
            "How do I restore a pg_dump archive?",
            "--json",
        ])
        .await;
        assert_success(&out, "search ask --json");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(json["mode"], "extractive", "{json}");
        assert_eq!(
            json["sources"][0]["document_id"], "docs/backup.md",
            "{json}"
        );
        // A bad filter is a usage error, like a bad -k.
        let out = search(&["query", "docs", "x", "--filter", "title =="]).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("filter"));

        // `brigade bench search` scores the index on a questions file.
        let questions = dir.join("questions.jsonl");
        std::fs::write(
            &questions,
            "{\"id\": \"a\", \"question\": \"restore a pg_dump archive\", \"pages\": [\"backup.md\"], \"kind\": \"keyword\"}\n\
             {\"id\": \"b\", \"question\": \"vacuum full exclusive lock\", \"pages\": [\"vacuum.md\"], \"kind\": \"keyword\"}\n",
        )
        .unwrap();
        let scores = dir.join("scores.json");
        let out = cli(vec![
            "bench".into(),
            "search".into(),
            "--questions".into(),
            questions.display().to_string(),
            "--json".into(),
            scores.display().to_string(),
            "--dir".into(),
            d.clone(),
        ])
        .await;
        assert_success(&out, "bench search");
        let scores: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&scores).unwrap()).unwrap();
        let keyword = scores
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["index"] == "docs" && s["mode"] == "keyword")
            .expect("keyword scores");
        assert_eq!(keyword["recall_at_5"], 1.0, "{keyword}");
        assert_eq!(keyword["questions"], 2, "{keyword}");

        let out = search(&["query", "nope", "x"]).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no [[search.indexes]] named `nope`")
        );
        let out = search(&["ingest", "docs", "missing/"]).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("missing/: no such file or directory")
        );
    }
);
