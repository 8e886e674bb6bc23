//! A throwaway `redis-server` for tests of state shared between instances: started on a free
//! loopback port with persistence off, killed when dropped. Without the binary the tests
//! skip loudly, except under `CI=true` where they fail (`.ci/run` installs it).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Redis; killed on drop.
pub(crate) struct RedisServer {
    child: Child,
    pub(crate) url: String,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

/// Starts a server, or `None` (with a loud warning) when `redis-server` is not installed.
pub(crate) fn start() -> Option<RedisServer> {
    let Some(bin) = find_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("redis-server not found; CI must install it (apt-get install redis-server)");
        }
        eprintln!("\n!!! WARNING: redis-server not found; SKIPPING the Redis tests.\n");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(bin)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let server = RedisServer {
        child,
        url: format!("redis://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}
