//! The files of a path index: every supported file under a file, a directory or a glob.
//!
//! We walk the tree ourselves (walkdir) and match the glob against each path, instead of
//! letting `glob` expand `**`: `glob` follows symlinked directories, so a link to a parent
//! made it index the same files dozens of times over (until the OS refused the path), and
//! two such links made the walk exponential. Here symlinked directories are not entered;
//! symlinked files are read only when they resolve inside the app directory (or, for an
//! absolute path or glob, inside its fixed directory): a link to `/etc/passwd` or to the
//! server's secrets in a docs folder must not end up in answers. Such a file is skipped
//! with a warning.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};
use walkdir::WalkDir;

use crate::document::Format;
use crate::error::SearchError;

/// Deepest directory level walked below a pattern's fixed prefix.
const MAX_DEPTH: usize = 64;

/// Files to ingest: every supported file under `paths` (files, directories or globs, relative
/// to `dir`), sorted, each once.
///
/// # Errors
/// [`SearchError::Invalid`] on key `path` for a path that does not exist or a bad glob.
pub fn list_files(dir: &Path, paths: &[String]) -> Result<Vec<PathBuf>, SearchError> {
    let mut out = Vec::new();
    let app = canonical(dir);
    for p in paths {
        let full = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            dir.join(p)
        };
        if full.is_file() {
            // A file named outright: relative ones must stay in the app directory.
            if Path::new(p).is_absolute() || inside(&full, &app) {
                out.push(full);
            }
            continue;
        }
        let (root, pattern) = if full.is_dir() {
            (full.clone(), None)
        } else if p.contains(['*', '?', '[']) {
            // The app directory is matched literally, even with `[` or `*` in its name.
            let (base, text) = if Path::new(p).is_absolute() {
                (PathBuf::new(), p.clone())
            } else {
                let base = dir.to_string_lossy();
                let sep = if base.ends_with('/') { "" } else { "/" };
                (
                    dir.to_path_buf(),
                    format!("{}{sep}{p}", Pattern::escape(&base)),
                )
            };
            let pattern = Pattern::new(&text)
                .map_err(|e| SearchError::invalid("path", format!("{p}: {e}")))?;
            (base.join(fixed_prefix(Path::new(p))), Some(pattern))
        } else {
            return Err(SearchError::invalid(
                "path",
                format!(
                    "{p}: no such file or directory in {}; name a file, a directory or a glob \
                     (docs/**/*.md), relative to the app directory",
                    dir.display()
                ),
            ));
        };
        let confine = if Path::new(p).is_absolute() {
            canonical(&root)
        } else {
            app.clone()
        };
        walk(&root, pattern.as_ref(), &confine, &mut out);
    }
    out.sort();
    out.dedup();
    // The same file reached through a symlinked file and its real path counts once.
    let mut seen = HashSet::new();
    out.retain(|f| seen.insert(f.canonicalize().unwrap_or_else(|_| f.clone())));
    Ok(out)
}

/// The directories of `pattern` before its first glob metacharacter.
fn fixed_prefix(pattern: &Path) -> PathBuf {
    let mut root = PathBuf::new();
    for part in pattern.components() {
        if part.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        root.push(part);
    }
    root
}

/// `path` with links resolved, or as given when it cannot be resolved.
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// Whether `file` resolves (through any symlink) to a path inside `confine`; logs the ones
/// that do not.
fn inside(file: &Path, confine: &Path) -> bool {
    match file.canonicalize() {
        Ok(target) if target.starts_with(confine) => true,
        Ok(_) => {
            tracing::warn!(
                file = %file.display(),
                allowed = %confine.display(),
                "Skipped a file that links outside the indexed directory."
            );
            false
        }
        Err(_) => false,
    }
}

/// Adds the supported files under `root` that match `pattern` and resolve inside `confine`.
fn walk(root: &Path, pattern: Option<&Pattern>, confine: &Path, out: &mut Vec<PathBuf>) {
    let options = MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    for entry in WalkDir::new(root)
        .max_depth(MAX_DEPTH)
        .into_iter()
        .flatten()
    {
        let path = entry.path();
        // A symlink is followed only to a file: `is_file` reads through it.
        let is_file = if entry.path_is_symlink() {
            path.is_file()
        } else {
            entry.file_type().is_file()
        };
        if !is_file || Format::from_path(path).is_none() {
            continue;
        }
        if pattern.is_none_or(|p| p.matches_path_with(path, options)) && inside(path, confine) {
            out.push(path.to_path_buf());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path, paths: &[&str]) -> Vec<String> {
        let paths: Vec<String> = paths.iter().map(ToString::to_string).collect();
        list_files(dir, &paths)
            .expect("listed")
            .iter()
            .map(|f| crate::ingest::file_id(dir, f))
            .collect()
    }

    #[test]
    fn globs_directories_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for f in [
            "docs/a.md",
            "docs/b.txt",
            "docs/skip.docx",
            "docs/deep/c.html",
            "other/d.md",
        ] {
            std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
            std::fs::write(dir.join(f), "x").unwrap();
        }
        assert_eq!(names(dir, &["docs/*.md"]), ["docs/a.md"]);
        assert_eq!(
            names(dir, &["docs/**/*.md", "docs/**/*.html"]),
            ["docs/a.md", "docs/deep/c.html"]
        );
        assert_eq!(
            names(dir, &["docs"]),
            ["docs/a.md", "docs/b.txt", "docs/deep/c.html"]
        );
        assert_eq!(names(dir, &["other/d.md", "other/d.md"]), ["other/d.md"]);
        assert_eq!(names(dir, &["nothing/*.md"]), Vec::<String>::new());
        assert!(list_files(dir, &["missing.md".to_string()]).is_err());
        assert!(list_files(dir, &["docs/[.md".to_string()]).is_err());
    }

    #[test]
    fn the_app_directory_is_matched_literally() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my [app] *");
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(dir.join("docs/a.md"), "x").unwrap();
        assert_eq!(names(&dir, &["docs/*.md"]), ["docs/a.md"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_directories_are_not_followed_and_files_count_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("docs/sub")).unwrap();
        std::fs::write(dir.join("docs/a.md"), "x").unwrap();
        // Two links to ancestors: glob's `**` walked these exponentially.
        std::os::unix::fs::symlink("..", dir.join("docs/sub/up")).unwrap();
        std::os::unix::fs::symlink("../..", dir.join("docs/sub/top")).unwrap();
        std::os::unix::fs::symlink("../a.md", dir.join("docs/sub/alias.md")).unwrap();
        assert_eq!(names(dir, &["docs/**/*.md"]), ["docs/a.md"]);
        assert_eq!(names(dir, &["docs"]), ["docs/a.md"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_files_pointing_outside_the_app_directory_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("app");
        let outside = tmp.path().join("secrets");
        std::fs::create_dir_all(dir.join("docs/sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keys.md"), "the root password").unwrap();
        std::fs::write(dir.join("inside.md"), "fine").unwrap();
        std::fs::write(dir.join("docs/a.md"), "x").unwrap();
        // Out of the app directory: by absolute and by relative link, and a whole directory.
        std::os::unix::fs::symlink(outside.join("keys.md"), dir.join("docs/abs.md")).unwrap();
        std::os::unix::fs::symlink("../../secrets/keys.md", dir.join("docs/rel.md")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("docs/linked")).unwrap();
        // Inside it (though outside the walked folder) is fine.
        std::os::unix::fs::symlink("../../inside.md", dir.join("docs/sub/ok.md")).unwrap();
        assert_eq!(
            names(&dir, &["docs/**/*.md"]),
            ["docs/a.md", "docs/sub/ok.md"]
        );
        assert_eq!(names(&dir, &["docs"]), ["docs/a.md", "docs/sub/ok.md"]);
        // Named outright, or walked as the root of a glob, a link out is skipped too.
        assert_eq!(names(&dir, &["docs/abs.md"]), Vec::<String>::new());
        assert_eq!(names(&dir, &["docs/linked/*.md"]), Vec::<String>::new());
        assert_eq!(names(&dir, &["docs/linked"]), Vec::<String>::new());
    }
}
