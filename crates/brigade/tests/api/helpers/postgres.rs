//! One throwaway PostgreSQL cluster per test process, one fresh database per test.
//!
//! The cluster is started on first use (`initdb` + `pg_ctl` in a temporary directory, on a
//! free port, tuned for speed rather than durability) and kept in a `OnceLock`. Statics never
//! drop, so a watchdog shell started next to the cluster stops it and removes its directory
//! once this process has exited, whether the tests passed, failed or panicked.
//!
//! When no PostgreSQL binaries can be found the postgres variants are skipped with a loud
//! warning, except under `CI=true`, where that is an error.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use tokio_postgres::NoTls;

/// The binaries the harness needs, all from one installation.
const BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
/// Where Debian and Ubuntu put the server binaries (`/usr/lib/postgresql/15/bin`).
const DEBIAN_PREFIX: &str = "/usr/lib/postgresql";
/// The OS user that owns the cluster when the tests run as root (initdb refuses root).
const PG_OS_USER: &str = "postgres";

/// A running cluster. The watchdog child is kept only so it is not reported as a leak.
struct Cluster {
    port: u16,
    _watchdog: Child,
}

/// `Ok(None)`: no binaries, skip. `Err`: the cluster could not be started; every test says why.
static CLUSTER: OnceLock<Result<Option<Cluster>, String>> = OnceLock::new();

/// Creates a fresh, empty database on the shared cluster and returns its URL,
/// `postgres://postgres@127.0.0.1:PORT/t_<uuid>`.
///
/// Returns `None` (after printing a warning) when PostgreSQL is not installed and `CI` is not
/// `true`; the caller then skips its test.
pub(crate) async fn fresh_database_url() -> Option<String> {
    let port = cluster_port()?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to the test cluster on port {port}: {e}"));
    let connection = tokio::spawn(connection);
    // The name is generated above (hex only), so formatting it into the statement is safe.
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
    drop(client);
    let _ = connection.await;
    Some(format!("postgres://postgres@127.0.0.1:{port}/{name}"))
}

/// The port of the shared cluster, starting it on first call; `None` when skipped.
fn cluster_port() -> Option<u16> {
    // Blocking here is fine: every #[tokio::test] has its own runtime, and the first caller
    // holds the others only while the cluster starts (a few seconds).
    let cluster = CLUSTER.get_or_init(|| {
        let Some(bin) = find_bin_dir() else {
            return Ok(None);
        };
        start_cluster(&bin).map(Some)
    });
    match cluster {
        Ok(Some(cluster)) => Some(cluster.port),
        Ok(None) => {
            if is_ci() {
                panic!(
                    "CI=true but no PostgreSQL binaries (initdb, pg_ctl, postgres) were found \
                     on PATH or in {DEBIAN_PREFIX}/*/bin; install PostgreSQL \
                     (apt-get install postgresql)"
                );
            }
            warn_skipped();
            None
        }
        Err(e) => panic!("the PostgreSQL test cluster could not be started:\n{e}"),
    }
}

/// Prints the skip warning once, straight to stderr: libtest's capture would hide an
/// `eprintln!` from a passing test.
fn warn_skipped() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! WARNING: PostgreSQL (initdb, pg_ctl, postgres) not found on PATH or in \
             {DEBIAN_PREFIX}/*/bin.\n!!! SKIPPING every PostgreSQL test variant: they pass \
             without testing anything. Install PostgreSQL to run them.\n"
        );
    });
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: first one on PATH that has all
/// three, else the highest version under `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| BINARIES.iter().all(|b| dir.join(b).is_file());
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|d| has_all(d))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(DEBIAN_PREFIX)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_all(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Runs `initdb` and `pg_ctl start` in a new temporary directory and starts the watchdog.
fn start_cluster(bin: &Path) -> Result<Cluster, String> {
    let as_root = running_as_root();
    let root = tempfile::Builder::new()
        .prefix("brigade-pg-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?
        .keep();
    let result = init_and_start(bin, &root, as_root);
    if result.is_err() {
        let _ = fs::remove_dir_all(&root);
    }
    result
}

fn init_and_start(bin: &Path, root: &Path, as_root: bool) -> Result<Cluster, String> {
    let data = root.join("data");
    let log = root.join("postgres.log");
    if as_root {
        // initdb and postgres refuse to run as root; the postgres user must own everything.
        let out = Command::new("chown")
            .arg("-R")
            .arg(PG_OS_USER)
            .arg(root)
            .output()
            .map_err(|e| format!("cannot run chown: {e}"))?;
        check(&out, "chown (is there a `postgres` OS user?)")?;
    }
    let initdb = bin.join("initdb");
    let out = pg_command(&initdb, root, as_root)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .arg("-D")
        .arg(&data)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", initdb.display()))?;
    check(&out, "initdb")?;

    let port = free_port()?;
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300",
        root.display()
    );
    let pg_ctl = bin.join("pg_ctl");
    let out = pg_command(&pg_ctl, root, as_root)
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(&options)
        .args(["-w", "-t", "60", "start"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", pg_ctl.display()))?;
    if let Err(e) = check(&out, "pg_ctl start") {
        let server_log = fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("{e}\n--- postgres.log ---\n{server_log}"));
    }

    let watchdog = start_watchdog(&pg_ctl, &data, root, as_root)?;
    Ok(Cluster {
        port,
        _watchdog: watchdog,
    })
}

/// A command for a PostgreSQL binary, run as the `postgres` user when we are root.
/// The working directory is the cluster's, which that user can always enter.
fn pg_command(program: &Path, root: &Path, as_root: bool) -> Command {
    let mut cmd = if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", PG_OS_USER, "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    cmd.current_dir(root).stdin(Stdio::null());
    cmd
}

/// Starts `sh` polling this process; when it is gone, the cluster is stopped and removed.
/// It runs in its own process group so a Ctrl-C on the test run does not kill it first.
fn start_watchdog(pg_ctl: &Path, data: &Path, root: &Path, as_root: bool) -> Result<Child, String> {
    let stop = format!(
        "{}{} -D {} stop -m immediate",
        if as_root {
            "runuser -u postgres -- "
        } else {
            ""
        },
        shell_quote(pg_ctl),
        shell_quote(data),
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf {root}",
        pid = std::process::id(),
        root = shell_quote(root),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the cluster watchdog: {e}"))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A port that was free a moment ago (bind to port 0, read it, release it).
fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a free port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot read the bound port: {e}"))
}

fn check(out: &Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Single-quotes a path for `sh -c`.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_cluster_gives_each_test_its_own_database() {
        let Some(first) = fresh_database_url().await else {
            return;
        };
        let second = fresh_database_url()
            .await
            .expect("the cluster is already running");
        assert_ne!(first, second);
        assert!(
            first.starts_with("postgres://postgres@127.0.0.1:"),
            "{first}"
        );

        for url in [&first, &second] {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
            tokio::spawn(connection);
            client
                .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
                .await
                .expect("a fresh database is empty and writable");
            let row = client
                .query_one("SELECT current_database(), count(*) FROM t", &[])
                .await
                .unwrap();
            let name: String = row.get(0);
            let count: i64 = row.get(1);
            assert!(url.ends_with(&format!("/{name}")), "{url} vs {name}");
            assert_eq!(count, 1);
        }
    }
}
