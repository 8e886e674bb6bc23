//! Every crate the binary links is under a licence we can ship under Apache-2.0. Works
//! offline: `cargo metadata --offline` reads the lock file and the local registry.
//!
//! Adding a dependency with a licence outside [`ALLOWED`] fails this test; decide whether
//! the licence is compatible (and say so in the commit) before adding it here.

use std::process::Command;

/// Permissive licences, plus MPL-2.0 (file-level copyleft: its files stay MPL, our code
/// does not change licence) and the Unicode data licence.
const ALLOWED: &[&str] = &[
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "0BSD",
    "CC0-1.0",
    "Unlicense",
    "BSL-1.0",
    "Unicode-3.0",
    "MPL-2.0",
];

#[test]
fn every_linked_crate_has_an_allowed_licence() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let linked: std::collections::HashSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let mut refused = Vec::new();
    for package in meta["packages"].as_array().unwrap() {
        if !linked.contains(package["id"].as_str().unwrap()) {
            continue;
        }
        let name = package["name"].as_str().unwrap();
        match package["license"].as_str() {
            Some(expr) if allowed(expr) => {}
            Some(expr) => refused.push(format!("{name}: {expr}")),
            None => refused.push(format!("{name}: no SPDX licence (license-file only?)")),
        }
    }
    assert!(
        refused.is_empty(),
        "licences to review:\n{}",
        refused.join("\n")
    );
}

/// Whether an SPDX expression (`A OR B`, `A AND (B OR C)`, the old `A/B`) can be met with
/// [`ALLOWED`] licences.
fn allowed(expr: &str) -> bool {
    let expr = expr
        .replace('/', " OR ")
        .replace('(', " ( ")
        .replace(')', " ) ");
    let tokens: Vec<&str> = expr.split_whitespace().collect();
    let mut pos = 0;
    let ok = or(&tokens, &mut pos);
    ok && pos == tokens.len()
}

fn or(t: &[&str], pos: &mut usize) -> bool {
    let mut ok = and(t, pos);
    while t.get(*pos) == Some(&"OR") {
        *pos += 1;
        ok |= and(t, pos);
    }
    ok
}

fn and(t: &[&str], pos: &mut usize) -> bool {
    let mut ok = atom(t, pos);
    while t.get(*pos) == Some(&"AND") {
        *pos += 1;
        ok &= atom(t, pos);
    }
    ok
}

fn atom(t: &[&str], pos: &mut usize) -> bool {
    match t.get(*pos) {
        Some(&"(") => {
            *pos += 1;
            let ok = or(t, pos);
            if t.get(*pos) == Some(&")") {
                *pos += 1;
            }
            ok
        }
        Some(id) => {
            *pos += 1;
            let mut id = (*id).to_string();
            if t.get(*pos) == Some(&"WITH") {
                id = format!("{id} WITH {}", t.get(*pos + 1).copied().unwrap_or(""));
                *pos += 2;
            }
            ALLOWED.contains(&id.as_str())
        }
        None => false,
    }
}

#[test]
fn the_expression_reader_refuses_what_it_should() {
    assert!(allowed("MIT OR Apache-2.0"));
    assert!(allowed("(MIT OR Apache-2.0) AND Unicode-3.0"));
    assert!(allowed("MIT/Apache-2.0"));
    assert!(!allowed("GPL-3.0"));
    assert!(!allowed("MIT AND GPL-3.0"));
    assert!(allowed("GPL-3.0 OR MIT"));
    assert!(!allowed("AGPL-3.0-only"));
}
