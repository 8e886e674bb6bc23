//! The command line: help, `init`, configuration errors, and `migrate status|up`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::helpers::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("brigade-cli-")
        .tempdir()
        .unwrap()
}

#[tokio::test]
async fn help_shows_examples() {
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let out = run_cli(args, &[], None).await;
        assert_success(&out, &format!("brigade {}", args.join(" ")));
        let text = stdout(&out);
        assert!(
            text.to_lowercase().contains("example"),
            "`brigade {}` shows no example:\n{text}",
            args.join(" ")
        );
    }
    let text = stdout(&run_cli(["--help"], &[], None).await);
    for command in ["init", "serve", "migrate", "superuser"] {
        assert!(
            text.contains(command),
            "--help does not list {command}:\n{text}"
        );
    }
}

#[tokio::test]
async fn bad_usage_exits_with_2() {
    let dir = temp_dir();
    let out = run_cli(["frobnicate"], &[], None).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "unknown subcommand: {}",
        stderr(&out)
    );
    let args = [
        Path::new("serve"),
        Path::new("--addr"),
        Path::new("not-an-address"),
        Path::new("--dir"),
        dir.path(),
    ];
    let out = run_cli(args, &[], None).await;
    assert_eq!(out.status.code(), Some(2), "bad --addr: {}", stderr(&out));
}

#[tokio::test]
async fn init_scaffolds_an_app_directory() {
    let parent = temp_dir();
    let app = parent.path().join("myapp");
    let out = run_cli([Path::new("init"), &app], &[], None).await;
    assert_success(&out, "brigade init");
    assert!(app.join("brigade.toml").is_file(), "no brigade.toml");
    for dir in ["pipelines", "models", "docs", "migrations"] {
        assert!(app.join(dir).is_dir(), "init did not create {dir}/");
    }
    assert!(
        !app.join("collections").exists(),
        "init scaffolds a collections/ folder nothing reads"
    );
}

#[tokio::test]
async fn config_errors_name_the_key_once_and_refuse_endpoints() {
    let dir = temp_dir();
    let check = |toml: &'static str| {
        let dir = dir.path().to_path_buf();
        async move {
            std::fs::write(dir.join("brigade.toml"), toml).unwrap();
            let out = run_cli(
                [
                    Path::new("migrate"),
                    Path::new("status"),
                    Path::new("--dir"),
                    &dir,
                ],
                &[],
                None,
            )
            .await;
            assert_eq!(out.status.code(), Some(2), "{toml}: {}", stderr(&out));
            stderr(&out)
        }
    };
    let message = check("[llm]\nprovider = \"openai\"\n").await;
    assert!(message.contains("key `llm.provider`"), "{message}");
    assert!(!message.contains("``"), "doubled quotes: {message}");
    let message = check("[server\n").await;
    assert!(!message.contains("(file)"), "{message}");
    assert!(message.contains("line 1"), "{message}");
    let message = check("[endpoints]\nshort = \"SELECT 1\"\n").await;
    assert!(message.contains("key `endpoints`"), "{message}");
}

#[tokio::test]
async fn an_unset_llm_key_stops_serve_but_not_migrate() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("brigade.toml"),
        "[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\napi_key_env = \"BRIGADE_TEST_UNSET_KEY\"\n",
    )
    .unwrap();
    let out = run_cli(
        [
            Path::new("migrate"),
            Path::new("status"),
            Path::new("--dir"),
            dir.path(),
        ],
        &[],
        None,
    )
    .await;
    assert_success(&out, "migrate status with an unset llm key");
    let out = run_cli(
        [
            Path::new("serve"),
            Path::new("--addr"),
            Path::new("127.0.0.1:0"),
            Path::new("--dir"),
            dir.path(),
        ],
        &[],
        None,
    )
    .await;
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(
        message.contains("BRIGADE_TEST_UNSET_KEY") && message.contains("api_key_env"),
        "{message}"
    );
}

#[tokio::test]
async fn a_taken_address_is_named_once_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = temp_dir();
    std::fs::write(dir.path().join("brigade.toml"), "").unwrap();
    let out = run_cli(
        [
            Path::new("serve"),
            Path::new("--addr"),
            Path::new(&addr),
            Path::new("--dir"),
            dir.path(),
        ],
        &[],
        None,
    )
    .await;
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    assert_eq!(
        message.matches("Address already in use").count(),
        1,
        "{message}"
    );
    assert!(message.contains("--addr"), "no hint: {message}");
}

#[tokio::test]
async fn serve_without_brigade_toml_says_where_the_database_goes() {
    let dir = temp_dir();
    let out = run_cli(
        [
            Path::new("migrate"),
            Path::new("status"),
            Path::new("--dir"),
            dir.path(),
        ],
        &[],
        None,
    )
    .await;
    assert_success(&out, "migrate status without brigade.toml");
    let message = stderr(&out);
    assert!(
        message.contains("No brigade.toml") && message.contains("brigade init"),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_server_addr_in_brigade_toml_exits_with_2() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("brigade.toml"),
        "[server]\naddr = \"not an address\"\n",
    )
    .unwrap();
    let out = run_cli(
        [Path::new("serve"), Path::new("--dir"), dir.path()],
        &[],
        None,
    )
    .await;
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {message}");
    assert!(
        message.contains("brigade.toml"),
        "the message does not name the file: {message}"
    );
    assert!(
        message.contains("server.addr"),
        "the message does not name the key: {message}"
    );
}

#[tokio::test]
async fn invalid_server_addr_in_env_exits_with_2() {
    let dir = temp_dir();
    let out = run_cli(
        [Path::new("serve"), Path::new("--dir"), dir.path()],
        &[("BRIGADE_SERVER_ADDR", "nope")],
        None,
    )
    .await;
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {message}");
    assert!(
        message.contains("BRIGADE_SERVER_ADDR") || message.contains("server.addr"),
        "the message names neither the variable nor the key: {message}"
    );
}

/// Runs `brigade migrate SUBCOMMAND --dir DIR` on `db_url` and returns its stdout.
async fn migrate(subcommand: &str, dir: &Path, db_url: &str) -> String {
    let out = run_cli(
        [
            Path::new("migrate"),
            Path::new(subcommand),
            Path::new("--dir"),
            dir,
        ],
        &[("BRIGADE_DATABASE_URL", db_url)],
        None,
    )
    .await;
    assert_success(&out, &format!("brigade migrate {subcommand}"));
    stdout(&out)
}

/// Asserts that every migration file has a line in `status` naming it and `state`.
fn assert_listed(status: &str, files: &[PathBuf], state: &str) {
    assert!(!files.is_empty(), "no migration files to look for");
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy();
        assert!(
            status
                .lines()
                .any(|line| line.contains(stem.as_ref()) && line.to_lowercase().contains(state)),
            "`migrate status` does not show {stem} as {state}:\n{status}"
        );
    }
}

/// Copies `from/migrations/*` into `to/migrations/`.
fn copy_migrations(from: &Path, to: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(to.join("migrations")).unwrap();
    for file in migration_files(from) {
        std::fs::copy(&file, to.join("migrations").join(file.file_name().unwrap())).unwrap();
    }
    migration_files(to)
}

/// authors ← posts.author, then a PATCH that renames and adds a field.
async fn create_schema(app: &TestApp) {
    app.must_create_collection(json!({
        "name": "authors",
        "fields": [
            { "name": "name", "type": "text", "required": true },
            { "name": "email", "type": "email", "unique": true },
        ],
    }))
    .await;
    let posts = app
        .must_create_collection(json!({
            "name": "posts",
            "fields": [
                { "name": "title", "type": "text" },
                { "name": "status", "type": "select", "default": "draft",
                  "options": { "values": ["draft", "live"] } },
                { "name": "author", "type": "relation",
                  "options": { "collection": "authors", "cascade_delete": true } },
            ],
            "indexes": [["status"]],
        }))
        .await;
    let mut fields = posts["fields"].as_array().unwrap().clone();
    fields[0]["name"] = json!("headline");
    fields.push(json!({ "name": "views", "type": "integer", "default": 0 }));
    let res = app
        .patch("/api/collections/posts", json!({ "fields": fields }))
        .await;
    expect_json(res, 200).await;
}

both_backends!(migrate_status_lists_applied_and_pending, |app| async move {
    create_schema(&app).await;
    let files = app.migration_files();
    assert!(
        files.len() >= 3,
        "three schema changes, three migration files: {files:?}"
    );
    let status = migrate("status", app.dir.path(), &app.db_url).await;
    assert_listed(&status, &files, "applied");
    assert!(
        !status.to_lowercase().contains("pending"),
        "nothing is pending:\n{status}"
    );

    let fresh = temp_dir();
    let copied = copy_migrations(app.dir.path(), fresh.path());
    let url = app
        .backend
        .fresh_database_url(fresh.path())
        .await
        .expect("backend is running");
    let status = migrate("status", fresh.path(), &url).await;
    assert_listed(&status, &copied, "pending");
    migrate("up", fresh.path(), &url).await;
    let status = migrate("status", fresh.path(), &url).await;
    assert_listed(&status, &copied, "applied");
    assert!(
        !status.to_lowercase().contains("pending"),
        "`migrate up` left something pending:\n{status}"
    );
});

both_backends!(
    empty_and_edited_migrations_are_refused_and_reported,
    |app| async move {
        let dir = temp_dir();
        let out = run_cli(
            [
                Path::new("migrate"),
                Path::new("new"),
                Path::new("add_things"),
                Path::new("--dir"),
                dir.path(),
            ],
            &[],
            None,
        )
        .await;
        assert_success(&out, "migrate new");
        let file = std::fs::read_dir(dir.path().join("migrations"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .expect("migrate new wrote a file");
        let url = app
            .backend
            .fresh_database_url(dir.path())
            .await
            .expect("backend is running");
        let up = |dir: PathBuf, url: String| async move {
            run_cli(
                [
                    Path::new("migrate"),
                    Path::new("up"),
                    Path::new("--dir"),
                    &dir,
                ],
                &[("BRIGADE_DATABASE_URL", url.as_str())],
                None,
            )
            .await
        };
        let out = up(dir.path().to_path_buf(), url.clone()).await;
        let message = stderr(&out);
        assert_ne!(
            out.status.code(),
            Some(0),
            "an empty migration applied: {message}"
        );
        assert!(
            message.contains("empty")
                && message.contains(&*file.file_name().unwrap().to_string_lossy()),
            "{message}"
        );
        let status = migrate("status", dir.path(), &url).await;
        assert!(status.contains("pending"), "{status}");

        let sql = json!({"operations": [{"op": "sql", "sql": "CREATE TABLE things (id INTEGER PRIMARY KEY)"}]});
        std::fs::write(&file, serde_json::to_string_pretty(&sql).unwrap()).unwrap();
        assert_success(
            &up(dir.path().to_path_buf(), url.clone()).await,
            "migrate up",
        );
        let edited = json!({"operations": [{"op": "sql", "sql": "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)"}]});
        std::fs::write(&file, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
        let status = migrate("status", dir.path(), &url).await;
        assert!(status.contains("file changed since"), "{status}");
        let out = up(dir.path().to_path_buf(), url.clone()).await;
        assert_success(&out, "migrate up after an edit");
        assert!(
            stderr(&out).contains("changed after it was applied"),
            "{}",
            stderr(&out)
        );
    }
);

/// A collection without ids and timestamps, which differ between databases.
fn comparable(collection: &Value) -> Value {
    let mut c = collection.clone();
    let object = c.as_object_mut().unwrap();
    for key in ["id", "created", "updated"] {
        object.remove(key);
    }
    for field in object["fields"].as_array_mut().unwrap() {
        field.as_object_mut().unwrap().remove("id");
    }
    c
}

async fn comparable_collections(app: &TestApp) -> Vec<Value> {
    let list = expect_json(app.get("/api/collections").await, 200).await;
    let mut items: Vec<Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(comparable)
        .collect();
    items.sort_by_key(|c| c["name"].as_str().unwrap_or_default().to_owned());
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_from_sqlite_reproduce_the_schema_on_postgres() {
    let source = spawn_app(Backend::Sqlite)
        .await
        .expect("sqlite always runs");
    create_schema(&source).await;
    let expected = comparable_collections(&source).await;
    assert_eq!(expected.len(), 2);

    let target_dir = temp_dir();
    copy_migrations(source.dir.path(), target_dir.path());
    let Some(url) = Backend::Postgres
        .fresh_database_url(target_dir.path())
        .await
    else {
        return;
    };
    migrate("up", target_dir.path(), &url).await;
    let target = TestApp::start(target_dir, url, Backend::Postgres).await;
    assert_eq!(comparable_collections(&target).await, expected);

    let author = target
        .must_post_record(
            "authors",
            json!({ "name": "ann", "email": "ann@example.com" }),
        )
        .await;
    let post = target
        .must_post_record("posts", json!({ "headline": "hi", "author": author["id"] }))
        .await;
    assert_eq!(
        (&post["status"], &post["views"]),
        (&json!("draft"), &json!(0)),
        "{post}"
    );
    let res = target
        .post_record("posts", json!({ "author": "missing" }))
        .await;
    expect_problem(res, 400, Some("author")).await;
    let res = target
        .post_record(
            "authors",
            json!({ "name": "bob", "email": "ann@example.com" }),
        )
        .await;
    expect_problem(res, 409, Some("email")).await;
}

#[tokio::test]
async fn jwt_rotate_replaces_the_stored_key_and_refuses_env_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/brigade.db", dir.path().display());
    let args = |extra: &[&str]| {
        let mut a = vec!["jwt", "rotate", "--dir"];
        a.push(dir.path().to_str().unwrap());
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let out = run_cli(args(&[]), &[("BRIGADE_DATABASE_URL", &db)], None).await;
    assert_success(&out, "brigade jwt rotate");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Rotated"));
    let secret = "0123456789abcdef0123456789abcdef";
    let out = run_cli(
        args(&[]),
        &[
            ("BRIGADE_DATABASE_URL", &db),
            ("BRIGADE_JWT_SECRET", secret),
        ],
        None,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "rotating an env secret is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("BRIGADE_JWT_PREVIOUS_SECRET"));
    let out = run_cli(
        args(&[]),
        &[
            ("BRIGADE_DATABASE_URL", &db),
            ("BRIGADE_JWT_SECRET", "short"),
        ],
        None,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "a short secret is a configuration error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 bytes"));
}

/// Copies `examples/demo` without its pipelines (their data is not part of the repository).
fn demo_copy() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo");
    let dir = temp_dir();
    copy_tree(&root, dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if ["pipelines", "models", "data"].contains(&&*name.to_string_lossy()) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// The examples `brigade search … --help` prints are commands that work on the demo app.
#[tokio::test]
async fn search_help_examples_run_on_the_demo_app() {
    let demo = demo_copy();
    let dir = demo.path().to_str().unwrap().to_string();
    for sub in ["ingest", "query", "ask"] {
        let help = stdout(&run_cli(["search", sub, "--help"], &[], None).await);
        let examples: Vec<&str> = help
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("brigade search"))
            .collect();
        assert!(
            !examples.is_empty(),
            "no example in `search {sub} --help`:\n{help}"
        );
        for example in examples {
            let words = shell_words(example);
            assert_eq!(
                words.last().map(String::as_str),
                Some("examples/demo"),
                "{example}"
            );
            let mut args: Vec<String> = words[1..words.len() - 1].to_vec();
            args.push(dir.clone());
            let out = run_cli(&args, &[], None).await;
            assert_success(&out, example);
            if sub != "ingest" {
                assert!(
                    stdout(&out).contains("docs/"),
                    "`{example}` found nothing:\n{}",
                    stdout(&out)
                );
            }
        }
    }
}

/// Splits a help example like a shell would (double and single quotes, no escapes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// `brigade serve` and `brigade migrate` that cannot reach PostgreSQL say where they tried
/// (host, port, database, role) and why, in the server's own words when it answered: not
/// "db error" or "error connecting to server".
#[tokio::test]
async fn unreachable_postgres_names_the_target_and_the_reason() {
    let dir = temp_dir();
    let dir_arg = dir.path().to_str().expect("a UTF-8 temp dir");
    let mut cases = vec![(
        "postgres://nobody@127.0.0.1:1/nothing".to_string(),
        vec![
            "127.0.0.1:1".to_string(),
            "database `nothing`".into(),
            "role `nobody`".into(),
            "connection refused".into(),
        ],
    )];
    // The reason depends on the resolver (no such name, or a timeout): the target is named.
    cases.push((
        "postgres://someone@no-such-host.invalid:5433/shop".to_string(),
        vec![
            "no-such-host.invalid:5433".to_string(),
            "database `shop`".into(),
            "role `someone`".into(),
        ],
    ));
    if let Some(url) = crate::helpers::postgres::fresh_database_url().await {
        // postgres://postgres@127.0.0.1:PORT/t_...
        let base = url
            .rsplit_once('/')
            .map_or(url.as_str(), |(b, _)| b)
            .to_string();
        let port = base.rsplit(':').next().unwrap_or_default().to_string();
        let address = format!("127.0.0.1:{port}");
        cases.push((
            format!("{base}/no_such_db"),
            vec![
                address.clone(),
                "database `no_such_db`".into(),
                "role `postgres`".into(),
                "database \"no_such_db\" does not exist".into(),
            ],
        ));
        let as_stranger = url.replacen("postgres@", "no_such_role@", 1);
        let database = format!("database `{}`", url.rsplit('/').next().unwrap_or_default());
        cases.push((
            as_stranger,
            vec![
                address,
                database,
                "role `no_such_role`".into(),
                "role \"no_such_role\" does not exist".into(),
            ],
        ));
    }
    for (url, parts) in cases {
        for args in [
            vec!["serve", "--dir", dir_arg],
            vec!["migrate", "up", "--dir", dir_arg],
        ] {
            let out = run_cli(&args, &[("BRIGADE_DATABASE_URL", &url)], None).await;
            let text = stderr(&out);
            assert_ne!(out.status.code(), Some(0), "{args:?} on {url}: {text}");
            let lower = text.to_lowercase();
            for part in &parts {
                assert!(
                    lower.contains(&part.to_lowercase()),
                    "`brigade {}` on {url}: no {part:?} in:\n{text}",
                    args.join(" ")
                );
            }
        }
    }
}
