//! Documents posted to an index over the API: ingested, skipped when unchanged, updated,
//! deleted, listed; superusers only; malformed documents rejected naming the field.

use serde_json::json;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use brigade_search::test_pdf::make_pdf;

use super::{docs_of, hits, wait_ingested};
use crate::helpers::{expect_json, expect_problem};

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![(
        "brigade.toml",
        b"[[search.indexes]]\nname = \"kb\"\nchunk = { max_tokens = 40, overlap = 8 }\n".to_vec(),
    )]
}

files_test!(
    posted_documents_are_indexed_updated_and_deleted,
    files(),
    |app| async move {
        let doc = json!({
            "id": "faq/billing",
            "title": "Billing FAQ",
            "text": "# Invoices\n\nInvoices are emailed on the first day of each month.\n\n# Refunds\n\nRefunds take five business days.",
            "metadata": {"team": "finance"},
        });
        let created =
            expect_json(app.post("/api/search/kb/documents", doc.clone()).await, 201).await;
        assert_eq!(created["ids"], json!(["faq/billing"]));
        assert_eq!(created["indexed"], 1);
        assert!(created["chunks"].as_u64().unwrap() >= 2, "{created}");
        let again = expect_json(app.post("/api/search/kb/documents", doc).await, 200).await;
        assert_eq!(
            (again["indexed"].clone(), again["skipped"].clone()),
            (json!(0), json!(1))
        );

        let found = hits(&app, "kb", &[("q", "when are refunds paid"), ("k", "1")]).await;
        assert_eq!(found[0]["source"]["title"], "Billing FAQ");
        assert_eq!(found[0]["text"], "Refunds take five business days.");
        assert_eq!(found[0]["heading"], "Refunds");

        // An update replaces the old chunks.
        let changed = json!({"id": "faq/billing", "title": "Billing FAQ", "text": "Refunds now take two weeks."});
        expect_json(app.post("/api/search/kb/documents", changed).await, 201).await;
        for mode in ["keyword", "vector", "hybrid"] {
            let found = hits(&app, "kb", &[("q", "refunds"), ("mode", mode)]).await;
            assert_eq!(found.len(), 1, "{mode}: {found:?}");
            assert_eq!(found[0]["text"], "Refunds now take two weeks.", "{mode}");
        }

        // Several at once; ids are generated when absent.
        let many = json!({"documents": [
            {"text": "Passwords are reset from the login page.", "format": "text"},
            {"id": "html-1", "format": "html", "text": "<html><head><title>Status</title></head><body><nav>Home | Next</nav><p>All systems operational.</p></body></html>"},
        ]});
        let created = expect_json(app.post("/api/search/kb/documents", many).await, 201).await;
        assert_eq!(created["indexed"], 2);
        let listed = expect_json(app.get("/api/search/kb/documents").await, 200).await;
        assert_eq!(listed["total_items"], 3, "{listed}");
        let second = expect_json(
            app.get("/api/search/kb/documents?page=2&per_page=2").await,
            200,
        )
        .await;
        assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
        for bad in [
            "page=0",
            "page=18446744073709551615",
            "per_page=501",
            "page=x",
        ] {
            let field = bad.split('=').next().unwrap();
            expect_problem(
                app.get(&format!("/api/search/kb/documents?{bad}")).await,
                400,
                Some(field),
            )
            .await;
        }
        let billing = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "faq/billing")
            .expect("listed");
        assert_eq!(billing["metadata"], json!(null), "{billing}");

        // Ids with slashes are deleted through the path (raw or percent-encoded).
        let res = app.delete("/api/search/kb/documents/faq/billing").await;
        assert_eq!(res.status(), 204);
        assert!(
            hits(&app, "kb", &[("q", "refunds"), ("mode", "keyword")])
                .await
                .is_empty()
        );
        for mode in ["vector", "hybrid"] {
            let found = docs_of(&hits(&app, "kb", &[("q", "refunds"), ("mode", mode)]).await);
            assert!(
                !found.contains(&"faq/billing".to_string()),
                "{mode}: {found:?}"
            );
        }
        expect_problem(
            app.delete("/api/search/kb/documents/faq%2Fbilling").await,
            404,
            None,
        )
        .await;
        expect_json(
            app.post(
                "/api/search/kb/documents",
                json!({"id": "a/b", "text": "x y"}),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(
            app.delete("/api/search/kb/documents/a%2Fb").await.status(),
            204
        );
        assert_eq!(
            docs_of(&hits(&app, "kb", &[("q", "operational"), ("mode", "keyword")]).await),
            ["html-1"]
        );
    }
);

files_test!(posted_metadata_is_filterable, files(), |app| async move {
    let docs = json!({"documents": [
        {"id": "a", "text": "Replication slots keep WAL for standbys.",
         "metadata": {"lang": "en", "tags": ["sql", "replication"], "year": 2024, "public": true, "team": {"name": "db"}}},
        {"id": "b", "text": "Replication slots retain WAL segments until consumed.",
         "metadata": {"lang": "de", "tags": ["wal"], "year": 2021.5, "public": false}},
        {"id": "c", "text": "Replication lag grows when a standby falls behind."},
    ]});
    expect_json(app.post("/api/search/kb/documents", docs).await, 201).await;
    let cases = [
        ("lang = 'en'", vec!["a"]),
        ("metadata.lang = 'en'", vec!["a"]),
        ("lang != 'en'", vec!["b", "c"]),
        ("tags = 'sql'", vec!["a"]),
        ("tags ~ 'WA'", vec!["b"]),
        ("tags !~ 'wa'", vec!["a", "c"]),
        ("year >= 2022", vec!["a"]),
        ("year < 2022.0", vec!["b"]),
        ("year > '2000'", vec![]),
        ("public = true", vec!["a"]),
        ("public = false || lang = null", vec!["b", "c"]),
        ("metadata.lang != null", vec!["a", "b"]),
        ("metadata.team.name = 'db'", vec!["a"]),
        ("lang = 'en' || id = 'c'", vec!["a", "c"]),
        ("nothing = 'here'", vec![]),
    ];
    for (filter, expected) in cases {
        for mode in ["keyword", "vector", "hybrid"] {
            let mut found = docs_of(
                &hits(
                    &app,
                    "kb",
                    &[
                        ("q", "replication slots WAL standby"),
                        ("filter", filter),
                        ("mode", mode),
                    ],
                )
                .await,
            );
            found.sort();
            assert_eq!(found, expected, "{filter} ({mode})");
        }
    }
});

fn with_pdfs() -> Vec<(&'static str, Vec<u8>)> {
    let pdf = make_pdf(
        Some("Checkpoint Tuning"),
        &[
            &[&["Checkpoints flush dirty buffers", "to disk at intervals."]],
            &[&["Raise max_wal_size to space checkpoints further apart."]],
        ],
    );
    vec![
        (
            "brigade.toml",
            b"[[search.indexes]]\nname = \"kb\"\n\n[[search.indexes]]\nname = \"papers\"\npath = \"papers/*.pdf\"\n"
                .to_vec(),
        ),
        ("papers/checkpoints.pdf", pdf),
    ]
}

files_test!(
    pdfs_are_read_from_folders_and_posts,
    with_pdfs(),
    |app| async move {
        // From a folder, at start.
        let index = wait_ingested(&app, "papers").await;
        assert_eq!(index["documents"], 1, "{index}");
        let found = hits(&app, "papers", &[("q", "max_wal_size checkpoints")]).await;
        assert_eq!(
            found[0]["source"]["title"], "Checkpoint Tuning",
            "{found:?}"
        );
        assert_eq!(found[0]["source"]["path_or_url"], "papers/checkpoints.pdf");
        assert!(
            found
                .iter()
                .any(|h| h["text"].as_str().unwrap().contains("Raise max_wal_size")),
            "{found:?}"
        );
        // Posted as base64; the page text is searchable and the title comes from the PDF.
        let pdf = make_pdf(
            Some("Vacuum Notes"),
            &[&[&["Autovacuum workers reclaim dead tuples."]]],
        );
        let body =
            json!({"id": "notes.pdf", "format": "pdf", "content_base64": STANDARD.encode(pdf)});
        let created = expect_json(app.post("/api/search/kb/documents", body).await, 201).await;
        assert_eq!(created["indexed"], 1, "{created}");
        let found = hits(&app, "kb", &[("q", "dead tuples"), ("mode", "keyword")]).await;
        assert_eq!(docs_of(&found), ["notes.pdf"]);
        assert_eq!(found[0]["source"]["title"], "Vacuum Notes");
        assert_eq!(found[0]["text"], "Autovacuum workers reclaim dead tuples.");
    }
);

fn two_indexes() -> Vec<(&'static str, Vec<u8>)> {
    vec![(
        "brigade.toml",
        b"[[search.indexes]]\nname = \"spread\"\nchunk = { max_tokens = 16, overlap = 0 }\n\n\
          [[search.indexes]]\nname = \"plain\"\nchunk = { max_tokens = 16, overlap = 0 }\n\
          same_document_weight = 1\n"
            .to_vec(),
    )]
}

files_test!(
    hits_are_spread_over_documents,
    two_indexes(),
    |app| async move {
        let docs = json!({"documents": [
            {"id": "long", "format": "text", "text": "Checkpoint tuning: raise max_wal_size.\n\nCheckpoint tuning: spread checkpoints out.\n\nCheckpoint tuning: watch checkpoint warnings."},
            {"id": "short", "format": "text", "text": "Checkpoint tuning is in the WAL chapter."},
        ]});
        for index in ["spread", "plain"] {
            let url = format!("/api/search/{index}/documents");
            expect_json(app.post(&url, docs.clone()).await, 201).await;
        }
        let query = [("q", "checkpoint tuning"), ("k", "2"), ("mode", "keyword")];
        // By default the second hit comes from another document...
        let spread = hits(&app, "spread", &query).await;
        assert_eq!(docs_of(&spread), ["long", "short"], "{spread:?}");
        let scores: Vec<f64> = spread
            .iter()
            .map(|h| h["score"].as_f64().unwrap())
            .collect();
        assert!(scores[0] >= scores[1], "{scores:?}");
        // ...and with `same_document_weight = 1` ranking is per chunk.
        let plain = hits(&app, "plain", &query).await;
        assert_eq!(docs_of(&plain), ["long", "long"], "{plain:?}");
    }
);

fn owned() -> Vec<(&'static str, Vec<u8>)> {
    vec![(
        "brigade.toml",
        b"[auth]\nallow_registration = true\n\n[[search.indexes]]\nname = \"notes\"\n\
          rule = \"metadata.owner = @request.auth.id\"\n"
            .to_vec(),
    )]
}

files_test!(
    rules_and_the_answer_cache_keep_callers_apart,
    owned(),
    |app| async move {
        let (alice, alice_token) = crate::rules::user(&app, "alice@example.com").await;
        let (bob, bob_token) = crate::rules::user(&app, "bob@example.com").await;
        let docs = json!({"documents": [
            {"id": "a", "text": "The vault code is in the red binder.", "metadata": {"owner": alice}},
            {"id": "b", "text": "The vault code is in the blue binder.", "metadata": {"owner": bob}},
        ]});
        expect_json(app.post("/api/search/notes/documents", docs).await, 201).await;
        let ask = |token: Option<&str>| {
            let mut req = app
                .client
                .post(app.url("/api/rag/notes"))
                .json(&json!({"question": "Where is the vault code?"}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move { expect_json(crate::helpers::send(req).await, 200).await }
        };
        let sources = |a: &serde_json::Value| -> Vec<String> {
            a["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["document_id"].as_str().unwrap().to_string())
                .collect()
        };
        // Each caller is answered from their own documents, never from another's cached answer.
        let first = ask(Some(&alice_token)).await;
        assert_eq!(
            (sources(&first), first["cached"].clone()),
            (vec!["a".to_string()], json!(false)),
            "{first}"
        );
        let theirs = ask(Some(&bob_token)).await;
        assert_eq!(
            (sources(&theirs), theirs["cached"].clone()),
            (vec!["b".to_string()], json!(false)),
            "{theirs}"
        );
        let again = ask(Some(&alice_token)).await;
        assert_eq!(
            (sources(&again), again["cached"].clone()),
            (vec!["a".to_string()], json!(true)),
            "{again}"
        );
        let anonymous = ask(None).await;
        assert!(sources(&anonymous).is_empty(), "{anonymous}");
        // A write to the index makes cached answers stale.
        expect_json(
        app.post(
            "/api/search/notes/documents",
            json!({"id": "c", "text": "A spare vault code is taped under the desk.", "metadata": {"owner": alice}}),
        )
        .await,
        201,
    )
    .await;
        let after = ask(Some(&alice_token)).await;
        assert_eq!(after["cached"], false, "{after}");
        assert!(sources(&after).contains(&"c".to_string()), "{after}");
    }
);

files_test!(
    document_writes_need_a_superuser_and_valid_documents,
    files(),
    |app| async move {
        let anon = crate::helpers::send(
            app.client
                .post(app.url("/api/search/kb/documents"))
                .json(&json!({"text": "x"})),
        )
        .await;
        expect_problem(anon, 401, None).await;
        let bad = [
            (json!({"title": "no text"}), "text"),
            (json!({"text": 5}), "text"),
            (json!({"text": "x", "format": "docx"}), "format"),
            (json!({"text": "x", "metadata": [1]}), "metadata"),
            (json!({"text": "x", "colour": "red"}), "colour"),
            (json!({"text": "x", "id": ""}), "id"),
            (
                json!({"content_base64": "%%%", "format": "pdf"}),
                "content_base64",
            ),
            (
                json!({"documents": [{"text": "ok"}, {"text": 1}]}),
                "documents.1.text",
            ),
            (json!({"documents": []}), "documents"),
            (json!([]), "documents"),
            (json!("text"), "body"),
        ];
        for (body, field) in bad {
            expect_problem(
                app.post("/api/search/kb/documents", body.clone()).await,
                400,
                Some(field),
            )
            .await;
        }
        // A PDF that is not one is refused as unprocessable, not a server error.
        let res = app
            .post(
                "/api/search/kb/documents",
                json!({"format": "pdf", "content_base64": "bm90IGEgcGRm"}),
            )
            .await;
        expect_problem(res, 422, None).await;
        expect_problem(
            app.post("/api/search/nope/documents", json!({"text": "x"}))
                .await,
            404,
            None,
        )
        .await;
        expect_problem(app.delete("/api/search/kb/documents/nope").await, 404, None).await;
        let res = crate::helpers::send(
            app.client
                .post(app.url("/api/search/kb/documents"))
                .bearer_auth(&app.token)
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await;
        expect_problem(res, 415, None).await;
    }
);
