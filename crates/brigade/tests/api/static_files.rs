//! `[static] dir`: an app's front end served at `/` with content types, ETags and cache
//! headers, never a file outside the folder or a hidden one, an SPA fallback when asked, and
//! API paths that always win.

use crate::helpers::{content_type, expect_problem, run_cli};

fn files(spa: bool) -> Vec<(&'static str, Vec<u8>)> {
    let config = format!("[static]\ndir = \"public\"\nspa = {spa}\n");
    vec![
        ("brigade.toml", config.into_bytes()),
        (
            "public/index.html",
            b"<!doctype html><title>home</title>".to_vec(),
        ),
        ("public/app.js", b"console.log('hi');".to_vec()),
        ("public/docs/index.html", b"<p>docs</p>".to_vec()),
        ("public/.env", b"SECRET=1".to_vec()),
        ("secret.txt", b"outside".to_vec()),
    ]
}

files_test!(
    a_static_folder_is_served_at_the_root,
    files(false),
    |app| async move {
        std::os::unix::fs::symlink(
            app.dir.path().join("secret.txt"),
            app.dir.path().join("public/escape.txt"),
        )
        .unwrap();
        let home = app.client.get(app.url("/")).send().await.unwrap();
        assert_eq!(home.status(), 200);
        assert_eq!(content_type(&home), "text/html; charset=utf-8");
        assert_eq!(home.headers()["cache-control"], "no-cache");
        let etag = home.headers()["etag"].to_str().unwrap().to_string();
        assert!(home.text().await.unwrap().contains("<title>home</title>"));
        let again = app
            .client
            .get(app.url("/index.html"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
        let js = app.client.get(app.url("/app.js")).send().await.unwrap();
        assert_eq!(content_type(&js), "text/javascript; charset=utf-8");
        assert!(
            js.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        assert_eq!(js.text().await.unwrap(), "console.log('hi');");
        let head = app.client.head(app.url("/app.js")).send().await.unwrap();
        assert_eq!(
            (
                head.status().as_u16(),
                head.headers()["content-length"].to_str().unwrap()
            ),
            (200, "18")
        );
        let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
        assert_eq!(docs.text().await.unwrap(), "<p>docs</p>");
        for refused in [
            "/.env",
            "/escape.txt",
            "/%2e%2e/secret.txt",
            "/docs/%2e%2e/%2e%2e/secret.txt",
            "/missing.js",
            "/some/route",
        ] {
            let res = app.client.get(app.url(refused)).send().await.unwrap();
            assert_eq!(res.status(), 404, "{refused}");
        }
        // API paths stay the API's: an unknown one is a JSON 404, and a POST is no file read.
        expect_problem(
            app.client.get(app.url("/api/nope")).send().await.unwrap(),
            404,
            None,
        )
        .await;
        let post = app.client.post(app.url("/app.js")).send().await.unwrap();
        assert_eq!(post.status(), 404);
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
);

files_test!(
    an_spa_gets_its_index_for_client_routes,
    files(true),
    |app| async move {
        let route = app.client.get(app.url("/rooms/42")).send().await.unwrap();
        assert_eq!(route.status(), 200);
        assert!(route.text().await.unwrap().contains("<title>home</title>"));
        assert_eq!(
            app.client
                .get(app.url("/missing.js"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            app.client
                .get(app.url("/.env"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
);

#[tokio::test]
async fn a_missing_static_folder_stops_serve_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("brigade.toml"), "[static]\ndir = \"web\"\n").unwrap();
    let out = run_cli(
        [
            std::ffi::OsStr::new("serve"),
            std::ffi::OsStr::new("--dir"),
            dir.path().as_os_str(),
        ],
        &[],
        None,
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("static.dir") && stderr.contains("web"),
        "{stderr}"
    );
}
