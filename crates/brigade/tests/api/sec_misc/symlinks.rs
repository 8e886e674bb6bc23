//! A path index followed symlinked files wherever they pointed, so a link in the docs folder
//! to a file outside the app directory put that file's text in search results and answers.
//! Now such a file is skipped (with a log line); links inside the app directory still work.

use serde_json::json;

use crate::helpers::{TestApp, expect_json, write_file};
use crate::search::{docs_of, hits, wait_ingested};

backend_test!(
    a_symlink_out_of_the_app_directory_is_not_indexed,
    |backend| async move {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(
            outside.path().join("secret.md"),
            "# Secret\n\nThe production password is swordfish-77.\n",
        )
        .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("brigade-app-")
            .tempdir()
            .unwrap();
        write_file(
            dir.path(),
            "brigade.toml",
            b"[[search.indexes]]\nname = \"docs\"\npath = \"docs/**/*.md\"\n",
        );
        write_file(
            dir.path(),
            "docs/guide.md",
            b"# Guide\n\nThe swordfish is a fast fish.\n",
        );
        write_file(
            dir.path(),
            "notes/inside.md",
            b"# Inside\n\nA swordfish note.\n",
        );
        std::os::unix::fs::symlink(
            outside.path().join("secret.md"),
            dir.path().join("docs/leak.md"),
        )
        .unwrap();
        std::os::unix::fs::symlink("../notes/inside.md", dir.path().join("docs/alias.md")).unwrap();
        let Some(db_url) = backend.fresh_database_url(dir.path()).await else {
            return;
        };
        let app = TestApp::start(dir, db_url, backend).await;
        let index = wait_ingested(&app, "docs").await;
        assert_eq!(index["documents"], 2, "{index}");

        let found = hits(
            &app,
            "docs",
            &[("q", "swordfish password"), ("mode", "keyword")],
        )
        .await;
        let mut docs = docs_of(&found);
        docs.sort();
        assert_eq!(docs, ["docs/alias.md", "docs/guide.md"], "{found:?}");
        let answer = expect_json(
            app.post(
                "/api/rag/docs",
                json!({"question": "What is the production password?"}),
            )
            .await,
            200,
        )
        .await;
        assert!(!answer.to_string().contains("swordfish-77"), "{answer}");
        assert!(
            app.logs()
                .contains("Skipped a file that links outside the indexed directory."),
            "{}",
            crate::helpers::log_tail(&app.logs(), 4000)
        );
    }
);
