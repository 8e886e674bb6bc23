//! Throwaway PostgreSQL clusters: one shared per test process (one fresh database per test),
//! plus dedicated ones for tests that stop and restart the server.
//!
//! A cluster is `initdb` + `pg_ctl start` in a temporary directory, on a free port, tuned for
//! speed rather than durability ([`PgCluster`]). The shared one is started on first use and
//! kept in a `OnceLock`; statics never drop, so a watchdog shell started next to every
//! cluster stops it and removes its directory once this process has exited, whether the tests
//! passed, failed or panicked. A dedicated cluster ([`dedicated_cluster`]) has the same
//! watchdog and is also stopped and removed when it drops.
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

/// A running PostgreSQL cluster in its own temporary directory, on its own port, with a
/// watchdog that stops and removes it when this process exits. Dropping it stops it
/// (`-m immediate`), removes its directory and ends the watchdog.
pub(crate) struct PgCluster {
    port: u16,
    pg_ctl: PathBuf,
    /// The temporary directory: `data/`, `postgres.log` and the Unix socket.
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// The `postgres` options `pg_ctl start -o` passes (port, socket dir, settings).
    options: String,
    as_root: bool,
    watchdog: Child,
}

/// `Ok(None)`: no binaries, skip. `Err`: the cluster could not be started; every test says why.
static CLUSTER: OnceLock<Result<Option<PgCluster>, String>> = OnceLock::new();

/// Creates a fresh, empty database on the shared cluster and returns its URL,
/// `postgres://postgres@127.0.0.1:PORT/t_<uuid>`.
///
/// Returns `None` (after printing a warning) when PostgreSQL is not installed and `CI` is not
/// `true`; the caller then skips its test.
pub(crate) async fn fresh_database_url() -> Option<String> {
    Some(shared_cluster()?.create_database().await)
}

/// Starts a new cluster of its own for a test that stops or restarts PostgreSQL; `None`
/// (after the skip warning) when PostgreSQL is not installed and `CI` is not `true`.
///
/// # Panics
/// When the binaries exist but the cluster cannot be started.
pub(crate) async fn dedicated_cluster() -> Option<PgCluster> {
    let Some(bin) = find_bin_dir() else {
        skip_or_fail();
        return None;
    };
    let cluster = tokio::task::spawn_blocking(move || PgCluster::start_new(&bin))
        .await
        .expect("the cluster start task");
    match cluster {
        Ok(cluster) => Some(cluster),
        Err(e) => panic!("a dedicated PostgreSQL test cluster could not be started:\n{e}"),
    }
}

/// The shared cluster, starting it on first call; `None` when skipped.
fn shared_cluster() -> Option<&'static PgCluster> {
    // Blocking here is fine: every #[tokio::test] has its own runtime, and the first caller
    // holds the others only while the cluster starts (a few seconds).
    let cluster = CLUSTER.get_or_init(|| {
        let Some(bin) = find_bin_dir() else {
            return Ok(None);
        };
        PgCluster::start_new(&bin).map(Some)
    });
    match cluster {
        Ok(Some(cluster)) => Some(cluster),
        Ok(None) => {
            skip_or_fail();
            None
        }
        Err(e) => panic!("the PostgreSQL test cluster could not be started:\n{e}"),
    }
}

/// Without PostgreSQL binaries: panics under CI, else prints the skip warning.
fn skip_or_fail() {
    if is_ci() {
        panic!(
            "CI=true but no PostgreSQL binaries (initdb, pg_ctl, postgres) were found \
             on PATH or in {DEBIAN_PREFIX}/*/bin; install PostgreSQL \
             (apt-get install postgresql)"
        );
    }
    warn_skipped();
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

impl PgCluster {
    /// Runs `initdb` and `pg_ctl start` in a new temporary directory and starts the watchdog.
    fn start_new(bin: &Path) -> Result<PgCluster, String> {
        let as_root = running_as_root();
        let root = tempfile::Builder::new()
            .prefix("brigade-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?
            .keep();
        let result = Self::init_and_start(bin, &root, as_root);
        if result.is_err() {
            let _ = fs::remove_dir_all(&root);
        }
        result
    }

    fn init_and_start(bin: &Path, root: &Path, as_root: bool) -> Result<PgCluster, String> {
        let data = root.join("data");
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
        // The watchdog first, so that a test process killed during initdb or the start leaves
        // nothing behind either.
        let pg_ctl = bin.join("pg_ctl");
        let mut watchdog = start_watchdog(&pg_ctl, &data, root, as_root)?;
        if let Err(e) = initdb(bin, root, &data, as_root) {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            return Err(e);
        }

        let port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            root.display()
        );
        let cluster = PgCluster {
            port,
            pg_ctl,
            root: root.to_path_buf(),
            data,
            log: root.join("postgres.log"),
            options,
            as_root,
            watchdog,
        };
        // On failure, dropping the cluster stops whatever started and ends the watchdog.
        cluster.start_blocking()?;
        Ok(cluster)
    }

    /// Creates a fresh, empty database and returns its URL,
    /// `postgres://postgres@127.0.0.1:PORT/t_<uuid>`.
    pub(crate) async fn create_database(&self) -> String {
        let port = self.port;
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
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }

    /// `pg_ctl start -w`: starts the stopped server on its port and data directory and waits
    /// until it accepts connections. Needs the multi-threaded runtime (`block_in_place`).
    pub(crate) async fn start(&self) -> Result<(), String> {
        tokio::task::block_in_place(|| self.start_blocking())
    }

    /// `pg_ctl stop -m fast -w`: rolls back open transactions, disconnects every client and
    /// waits until the server is down. Needs the multi-threaded runtime (`block_in_place`).
    pub(crate) async fn stop(&self) -> Result<(), String> {
        tokio::task::block_in_place(|| {
            let out = self
                .pg_ctl_command()
                .args(["-m", "fast", "-w", "-t", "60", "stop"])
                .output()
                .map_err(|e| format!("cannot run {}: {e}", self.pg_ctl.display()))?;
            check(&out, "pg_ctl stop -m fast").map_err(|e| self.with_log(e))
        })
    }

    /// Stops (`-m fast`) and starts the server again, on the same port and data directory.
    /// (Not `pg_ctl restart`: it has no `-l`, so the server would inherit our output pipes.)
    pub(crate) async fn restart(&self) -> Result<(), String> {
        self.stop().await?;
        self.start().await
    }

    fn start_blocking(&self) -> Result<(), String> {
        let out = self
            .pg_ctl_command()
            .arg("-l")
            .arg(&self.log)
            .arg("-o")
            .arg(&self.options)
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.pg_ctl.display()))?;
        check(&out, "pg_ctl start").map_err(|e| self.with_log(e))
    }

    fn with_log(&self, error: String) -> String {
        format!("{error}\n--- postgres.log ---\n{}", self.server_log())
    }

    /// Ends every connection to `database` (`pg_terminate_backend`, as a failover or an idle
    /// reaper would) and returns how many there were.
    pub(crate) async fn terminate_backends(&self, database: &str) -> u64 {
        let port = self.port;
        let (client, connection) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            NoTls,
        )
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster on port {port}: {e}"));
        let connection = tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await
            .unwrap_or_else(|e| panic!("pg_terminate_backend failed: {e}"));
        drop(client);
        let _ = connection.await;
        rows.len() as u64
    }

    /// The server log so far, for failure messages.
    pub(crate) fn server_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `pg_ctl -D DATA` as the right OS user.
    fn pg_ctl_command(&self) -> Command {
        let mut cmd = pg_command(&self.pg_ctl, &self.root, self.as_root);
        cmd.arg("-D").arg(&self.data);
        cmd
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl_command()
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.root);
        // Nothing is left for the watchdog to do.
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// `initdb` of a fast, trusting, UTF-8 cluster in `data`.
fn initdb(bin: &Path, root: &Path, data: &Path, as_root: bool) -> Result<(), String> {
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
        .arg(data)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", initdb.display()))?;
    check(&out, "initdb")
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
/// Errors of `pg_ctl stop` (nothing running) are ignored.
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
    // A second pass catches an `initdb` or `pg_ctl start` that outlived the test process.
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf {root}; \
         sleep 3; {stop}; rm -rf {root}",
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
