//! examples/chat in a real browser: Debian's Chromium driven by playwright-core
//! (examples/chat/tests/chat.e2e.mjs) as two users — presence, typing, a message delivered
//! within a second, no HTML injection, recovery after the server restarts, history on join and
//! a private room the other user cannot see. Screenshots go to `target/e2e/screenshots/`.
//!
//! Needs `/usr/bin/chromium` (Debian package `chromium`), Node.js and playwright-core in
//! `target/e2e` (installed here with npm when missing; never a downloaded browser). Under
//! `CI=true` a missing piece fails the test; elsewhere it is skipped with a message.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{Backend, TestApp};
use crate::readme::{copy_tree, free_port};

const PLAYWRIGHT: &str = "playwright-core@1.64.1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/` of this build (the test binary is `target/debug/deps/api-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("target/debug/deps/…")
        .to_path_buf()
}

/// Where playwright-core is installed, or why the test cannot run.
async fn browser_tools() -> Result<PathBuf, String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("{chromium} is missing: `apt-get install chromium`"));
    }
    let node = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await;
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("Node.js is missing: `apt-get install nodejs npm`".into());
    }
    let e2e = target_dir().join("e2e");
    if !e2e.join("node_modules/playwright-core").is_dir() {
        std::fs::create_dir_all(&e2e).map_err(|e| e.to_string())?;
        let out = tokio::process::Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&e2e)
            .arg(PLAYWRIGHT)
            .output()
            .await
            .map_err(|e| format!("npm: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`npm install {PLAYWRIGHT}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(e2e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_headless_chromium() {
    let e2e = match browser_tools().await {
        Ok(dir) => dir,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the browser test cannot run under CI: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED two_people_chat_in_headless_chromium: {why}");
            return;
        }
    };
    // The script runs from target/e2e, where playwright-core resolves.
    let script = e2e.join("chat.e2e.mjs");
    std::fs::copy(repo().join("examples/chat/tests/chat.e2e.mjs"), &script).unwrap();
    let shots = e2e.join("screenshots");

    let dir = tempfile::Builder::new()
        .prefix("brigade-chat-")
        .tempdir()
        .unwrap();
    copy_tree(&repo().join("examples/chat"), dir.path());
    let db_url = Backend::Sqlite
        .fresh_database_url(dir.path())
        .await
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut app = Some(TestApp::start_at(dir, db_url, Backend::Sqlite, &addr).await);

    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://{addr}/"))
        .arg(&shots)
        .current_dir(&e2e)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut output = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            output.push(line.clone());
            if line == "RESTART" {
                let (dir, url, _) = app.take().unwrap().stop().await;
                app = Some(TestApp::start_at(dir, url, Backend::Sqlite, &addr).await);
                stdin.write_all(b"RESTARTED\n").await.unwrap();
            }
        }
        node.wait().await.unwrap()
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser test finished within 3 minutes");
    let mut stderr = String::new();
    if let Some(mut e) = node.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    let log = app.as_ref().map(TestApp::logs).unwrap_or_default();
    assert!(
        status.success() && output.iter().any(|l| l == "OK"),
        "the browser test failed:\n{}\n{stderr}\nserver log:\n{}",
        output.join("\n"),
        crate::helpers::log_tail(&log, 40)
    );
    for shot in [
        "alice-desktop.png",
        "bob-phone.png",
        "alice-private-room.png",
    ] {
        assert!(shots.join(shot).is_file(), "screenshot {shot}");
    }
}
