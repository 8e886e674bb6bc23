//! The harness: the real `brigade` binary on a real socket over a real database per test.
//!
//! `spawn_app(Backend)` creates a temporary app directory and a fresh database (a SQLite file
//! in the directory, or a new database on the shared PostgreSQL cluster from [`postgres`]),
//! creates a superuser through the CLI, starts `brigade serve --addr 127.0.0.1:0`, reads the
//! bound address from the JSON `Listening.` log line on stderr and logs in as the superuser.
//! The server is killed when the [`TestApp`] drops.

pub(crate) mod postgres;
pub(crate) mod redis;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, Response, StatusCode, Url};
use serde_json::{Value, json};
use tempfile::TempDir;

pub(crate) const ADMIN_EMAIL: &str = "admin@example.com";
pub(crate) const ADMIN_PASSWORD: &str = "Sup3r-secret-pass!";
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_brigade");
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Expands to `mod $name { sqlite(), postgres() }`, two tests running the same body against
/// a fresh app on each backend (cf. ripgrep's `rgtest!`). The postgres variant returns early
/// when PostgreSQL is not installed (see [`postgres`]).
macro_rules! both_backends {
    ($name:ident, |$app:pat_param| async move $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some($app) = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await
                else {
                    return;
                };
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await
                else {
                    return;
                };
                $body
            }
        }
    };
}

/// Runs a test body on SQLite and PostgreSQL apps started with `$config` as brigade.toml.
macro_rules! on_both_stores {
    ($name:ident, $config:expr, |$app:pat_param| async move $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some($app) =
                    crate::helpers::spawn_app_with_config(crate::helpers::Backend::Sqlite, $config)
                        .await
                else {
                    return;
                };
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($app) = crate::helpers::spawn_app_with_config(
                    crate::helpers::Backend::Postgres,
                    $config,
                )
                .await
                else {
                    return;
                };
                $body
            }
        }
    };
}

/// Defines `sqlite` and `postgres` tests of an app started with `$files`.
macro_rules! files_test {
    ($name:ident, $files:expr, |$app:pat_param| async move $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let files: Vec<(&str, Vec<u8>)> = $files;
                let files: Vec<(&str, &[u8])> =
                    files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
                let Some($app) =
                    crate::helpers::spawn_app_with_files(crate::helpers::Backend::Sqlite, &files)
                        .await
                else {
                    return;
                };
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let files: Vec<(&str, Vec<u8>)> = $files;
                let files: Vec<(&str, &[u8])> =
                    files.iter().map(|(p, c)| (*p, c.as_slice())).collect();
                let Some($app) =
                    crate::helpers::spawn_app_with_files(crate::helpers::Backend::Postgres, &files)
                        .await
                else {
                    return;
                };
                $body
            }
        }
    };
}

/// Defines `sqlite` and `postgres` tests that get the backend and set up the app themselves
/// (tests that need the database before a server, or no server at all).
macro_rules! backend_test {
    ($name:ident, |$backend:ident| async move $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $backend = crate::helpers::Backend::Sqlite;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $backend = crate::helpers::Backend::Postgres;
                $body
            }
        }
    };
}

/// The database a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A URL to an empty database for an app in `dir`; `None` when PostgreSQL is skipped.
    pub(crate) async fn fresh_database_url(self, dir: &Path) -> Option<String> {
        match self {
            Backend::Sqlite => Some(format!("sqlite://{}/data/brigade.db", dir.display())),
            Backend::Postgres => postgres::fresh_database_url().await,
        }
    }
}

/// A running `brigade serve` with an admin token; killed on drop.
pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) dir: TempDir,
    pub(crate) db_url: String,
    pub(crate) backend: Backend,
    pub(crate) client: reqwest::Client,
    /// The superuser's access token.
    pub(crate) token: String,
    child: Child,
    stderr_log: Arc<Mutex<String>>,
}

/// Starts a fresh app on `backend`; `None` only when PostgreSQL is skipped.
pub(crate) async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let dir = tempfile::Builder::new()
        .prefix("brigade-app-")
        .tempdir()
        .expect("create the app directory");
    let db_url = backend.fresh_database_url(dir.path()).await?;
    Some(TestApp::start(dir, db_url, backend).await)
}

/// Like [`spawn_app`], with `files` (path relative to the app directory, content) written
/// before the server starts.
pub(crate) async fn spawn_app_with_files(
    backend: Backend,
    files: &[(&str, &[u8])],
) -> Option<TestApp> {
    let dir = tempfile::Builder::new()
        .prefix("brigade-app-")
        .tempdir()
        .expect("create the app directory");
    for (path, content) in files {
        write_file(dir.path(), path, content);
    }
    let db_url = backend.fresh_database_url(dir.path()).await?;
    Some(TestApp::start(dir, db_url, backend).await)
}

/// Writes `content` to `dir/path`, creating folders.
pub(crate) fn write_file(dir: &Path, path: &str, content: &[u8]) {
    let full = dir.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).expect("create folders");
    }
    std::fs::write(&full, content).expect("write file");
}

/// Like [`spawn_app`], with `config` as the app's `brigade.toml`.
pub(crate) async fn spawn_app_with_config(backend: Backend, config: &str) -> Option<TestApp> {
    let dir = tempfile::Builder::new()
        .prefix("brigade-app-")
        .tempdir()
        .expect("create the app directory");
    std::fs::write(dir.path().join("brigade.toml"), config).expect("write brigade.toml");
    let db_url = backend.fresh_database_url(dir.path()).await?;
    Some(TestApp::start(dir, db_url, backend).await)
}

/// Two servers on one fresh database, both with `config` as their brigade.toml: instances
/// behind a load balancer. `None` only when PostgreSQL is skipped.
pub(crate) async fn two_servers(backend: Backend, config: &str) -> Option<(TestApp, TestApp)> {
    let mut first = spawn_app_with_config(backend, config).await?;
    let dir = tempfile::Builder::new()
        .prefix("brigade-app-")
        .tempdir()
        .expect("create the app directory");
    write_file(dir.path(), "brigade.toml", config.as_bytes());
    let second = TestApp::start(dir, first.db_url.clone(), backend).await;
    // Starting the second set the superuser's password again, which ended the first's token.
    first.token = second.token.clone();
    Some((first, second))
}

/// Waits up to 3 s for `status` to answer 200 (a server learning of a change made through
/// another), failing with `what`.
pub(crate) async fn until_ok<F, Fut>(what: &str, status: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::StatusCode>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let got = status().await;
        if got == StatusCode::OK {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {got} after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Creates the superuser in `dir` on `db_url`, serves the app and logs in.
    pub(crate) async fn start(dir: TempDir, db_url: String, backend: Backend) -> TestApp {
        Self::start_at(dir, db_url, backend, "127.0.0.1:0").await
    }

    /// [`TestApp::start`] on a given address (a restart on the same port).
    pub(crate) async fn start_at(
        dir: TempDir,
        db_url: String,
        backend: Backend,
        addr: &str,
    ) -> TestApp {
        let out = run_cli(
            [
                OsStr::new("superuser"),
                OsStr::new("create"),
                OsStr::new(ADMIN_EMAIL),
                OsStr::new("--password-stdin"),
                OsStr::new("--dir"),
                dir.path().as_os_str(),
            ],
            &[("BRIGADE_DATABASE_URL", &db_url)],
            Some(ADMIN_PASSWORD),
        )
        .await;
        assert_success(&out, "brigade superuser create");

        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--addr", addr, "--dir"])
            .arg(dir.path())
            .env("BRIGADE_DATABASE_URL", &db_url)
            .env("BRIGADE_LOG_FORMAT", "json")
            .env("BRIGADE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        scrub_env(&mut cmd);
        let mut child = cmd.spawn().expect("spawn brigade serve");
        let stderr_log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn_log_reader(child.stderr.take().expect("piped"), &stderr_log, Some(tx));
        spawn_log_reader(child.stdout.take().expect("piped"), &stderr_log, None);

        let addr = match tokio::time::timeout(STARTUP_TIMEOUT, rx).await {
            Ok(Ok(addr)) => addr,
            outcome => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => format!("it exited with {status}"),
                    _ => "it is still running".to_owned(),
                };
                let _ = child.kill();
                let _ = child.wait();
                let why = if outcome.is_err() {
                    "within 30 s"
                } else {
                    "before its output ended"
                };
                panic!(
                    "brigade serve did not log `Listening.` {why}; {status}. Log:\n{}",
                    stderr_log.lock().unwrap()
                );
            }
        };

        let mut app = TestApp {
            addr,
            dir,
            db_url,
            backend,
            client: reqwest::Client::new(),
            token: String::new(),
            child,
            stderr_log,
        };
        let res = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
            .send()
            .await
            .expect("POST /api/auth/login");
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "superuser login failed: {body}");
        let login: Value = serde_json::from_str(&body).expect("login response is JSON");
        assert_eq!(login["token_type"], "Bearer", "{login}");
        app.token = login["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {login}"))
            .to_owned();
        app
    }

    /// `http://ADDR{path}`; `path` may carry a query string.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL for `path` with `query` pairs percent-encoded.
    pub(crate) fn url_with(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = Url::parse(&self.url(path)).expect("valid URL");
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A request with the admin bearer token.
    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        send(self.request(Method::GET, path)).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Response {
        send(self.request(Method::POST, path).json(&body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> Response {
        send(self.request(Method::PATCH, path).json(&body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Response {
        send(self.request(Method::DELETE, path)).await
    }

    /// GET without any token.
    pub(crate) async fn anon_get(&self, path: &str) -> Response {
        send(self.client.get(self.url(path))).await
    }

    pub(crate) async fn create_collection(&self, body: Value) -> Response {
        self.post("/api/collections", body).await
    }

    /// Creates a collection and returns it, failing the test unless the answer is 201.
    pub(crate) async fn must_create_collection(&self, body: Value) -> Value {
        let res = self.create_collection(body).await;
        expect_json(res, 201).await
    }

    pub(crate) async fn post_record(&self, collection: &str, body: Value) -> Response {
        self.post(&format!("/api/collections/{collection}/records"), body)
            .await
    }

    /// Creates a record and returns it, failing the test unless the answer is 201.
    pub(crate) async fn must_post_record(&self, collection: &str, body: Value) -> Value {
        expect_json(self.post_record(collection, body).await, 201).await
    }

    /// `GET /api/collections/{collection}/records` with `query` (admin).
    pub(crate) async fn list_records(&self, collection: &str, query: &[(&str, &str)]) -> Response {
        let url = self.url_with(&format!("/api/collections/{collection}/records"), query);
        send(self.client.get(url).bearer_auth(&self.token)).await
    }

    /// The list page for `query`, failing the test unless the answer is 200.
    pub(crate) async fn must_list(&self, collection: &str, query: &[(&str, &str)]) -> Value {
        expect_json(self.list_records(collection, query).await, 200).await
    }

    /// `total_items` of the unfiltered list of `collection`.
    pub(crate) async fn count(&self, collection: &str) -> u64 {
        let page = self.must_list(collection, &[]).await;
        page["total_items"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total_items in {page}"))
    }

    /// The collected stderr (and stdout) of the server so far.
    pub(crate) fn logs(&self) -> String {
        self.stderr_log.lock().unwrap().clone()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the server to exit on its own.
    pub(crate) async fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server as Ctrl-C would (SIGTERM, then waits for it) and hands back its app
    /// directory, database URL and log, so a test can start it again.
    pub(crate) async fn stop(mut self) -> (TempDir, String, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let exited = self.wait_for_exit(Duration::from_secs(30)).await;
        assert!(exited.is_some(), "brigade serve did not stop on SIGTERM");
        let placeholder = tempfile::tempdir().expect("a temporary directory");
        let dir = std::mem::replace(&mut self.dir, placeholder);
        (dir, self.db_url.clone(), self.logs())
    }

    /// The migration files in `DIR/migrations`, sorted by name.
    pub(crate) fn migration_files(&self) -> Vec<PathBuf> {
        migration_files(self.dir.path())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects lines of `stream` into `log`; with `listening`, sends the `fields.address` of the
/// first JSON line whose `fields.message` is `Listening.`.
fn spawn_log_reader(
    stream: impl Read + Send + 'static,
    log: &Arc<Mutex<String>>,
    mut listening: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) {
    let log = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if listening.is_some()
                && let Some(addr) = listening_address(&line)
            {
                let _ = listening.take().expect("checked").send(addr);
            }
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let value: Value = serde_json::from_str(line).ok()?;
    if value["fields"]["message"] != "Listening." {
        return None;
    }
    value["fields"]["address"].as_str()?.parse().ok()
}

/// Removes inherited `BRIGADE_*` variables so the developer's shell cannot leak into a test.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BRIGADE_") {
            cmd.env_remove(key);
        }
    }
}

/// Runs `brigade ARGS` with `env` (inherited `BRIGADE_*` removed) and `stdin`; fails the
/// test if it takes longer than a minute.
pub(crate) async fn run_cli<I, S>(args: I, env: &[(&str, &str)], stdin: Option<&str>) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    scrub_env(&mut cmd);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let description = format!("{cmd:?}");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn brigade");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("piped");
        // A CLI that exits without reading stdin is judged by its output, not by EPIPE here.
        let _ = pipe.write_all(input.as_bytes()).await;
        let _ = pipe.write_all(b"\n").await;
        drop(pipe);
    }
    match tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.expect("wait for brigade"),
        Err(_) => panic!("{description} did not finish within {CLI_TIMEOUT:?}"),
    }
}

pub(crate) fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The migration files in `dir/migrations`, sorted by name.
pub(crate) fn migration_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join("migrations")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read migrations dir").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Sends a request, panicking only when the server does not answer.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Response {
    request.send().await.expect("the server answers")
}

/// Asserts the status and returns the JSON body (showing the body when either check fails).
pub(crate) async fn expect_json(res: Response, status: u16) -> Value {
    let (actual, text) = status_and_text(res).await;
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts an RFC 9457 problem: the status, the `application/problem+json` content type,
/// `status` in the body, and (when given) a non-empty message at `errors[error_key]`.
/// Returns the problem.
pub(crate) async fn expect_problem(res: Response, status: u16, error_key: Option<&str>) -> Value {
    let content_type = content_type(&res);
    let (actual, text) = status_and_text(res).await;
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert!(
        content_type.starts_with(PROBLEM_JSON),
        "content-type is {content_type:?}, not {PROBLEM_JSON}; body: {text}"
    );
    let problem: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("problem is not JSON ({e}): {text}"));
    assert_eq!(problem["status"], status, "{problem}");
    assert!(
        problem["title"].is_string(),
        "problem without title: {problem}"
    );
    if let Some(key) = error_key {
        let message = &problem["errors"][key];
        assert!(
            message.as_str().is_some_and(|m| !m.is_empty()),
            "expected a message at errors[{key:?}] in {problem}"
        );
    }
    problem
}

/// Asserts a 4xx answer (never 2xx, never 5xx) and returns the status and body.
pub(crate) async fn expect_client_error(res: Response, what: &str) -> (u16, String) {
    let (status, text) = status_and_text(res).await;
    assert!(
        (400..500).contains(&status),
        "{what}: expected 4xx, got {status}: {text}"
    );
    (status, text)
}

pub(crate) async fn status_and_text(res: Response) -> (u16, String) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("read the body");
    (status, text)
}

pub(crate) fn content_type(res: &Response) -> String {
    res.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The `field` values of `page.items`, in order, as strings.
pub(crate) fn column(page: &Value, field: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {page}"))
        .iter()
        .map(|item| match &item[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Whether `s` looks like `2026-11-22T20:49:26.123Z`: RFC 3339, UTC, millisecond precision.
pub(crate) fn is_utc_millis(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

/// Awaits all `futures` concurrently on the current task (they may borrow, unlike spawned
/// tasks) and returns their outputs in order.
pub(crate) async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    use std::task::Poll;
    let mut pending: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(out) => {
                        *output = Some(out);
                        *slot = None;
                    }
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

/// The last `max` bytes (or a little fewer, at a char boundary) of a server log.
pub(crate) fn log_tail(log: &str, max: usize) -> String {
    let start = log.len().saturating_sub(max);
    let start = (start..log.len())
        .find(|i| log.is_char_boundary(*i))
        .unwrap_or(log.len());
    log[start..].to_owned()
}

/// The distinct causes of the server's `Internal error.` log lines (what a 500 hid).
pub(crate) fn internal_errors(log: &str) -> Vec<String> {
    let mut causes: Vec<String> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["fields"]["message"] == "Internal error.")
        .map(|v| v["fields"]["error"].as_str().unwrap_or_default().to_owned())
        .collect();
    causes.sort();
    causes.dedup();
    causes
}

/// The `posts` collection the batch and concurrency tests share: `title` (required),
/// `slug` (unique), `views` (integer).
pub(crate) async fn create_posts(app: &TestApp) {
    app.must_create_collection(json!({
        "name": "posts",
        "fields": [
            { "name": "title", "type": "text", "required": true },
            { "name": "slug", "type": "text", "unique": true },
            { "name": "views", "type": "integer" },
        ],
    }))
    .await;
}

/// `/api/collections/posts/records/{id}` of a record.
pub(crate) fn posts_record_path(record: &Value) -> String {
    let id = record["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string id in {record}"));
    format!("/api/collections/posts/records/{id}")
}
