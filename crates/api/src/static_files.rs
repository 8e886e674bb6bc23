//! `[static] dir`: the app's own front end, served at `/` for every path no route claims.
//!
//! API paths always win (they are routes; an unknown `/api/...` path stays a JSON 404). A path
//! is decoded and split into segments, and any `.`/`..` segment, hidden name (`.env`,
//! `.git`), backslash or NUL is refused before the file system is touched; the resolved file
//! must also still lie inside the folder once symlinks are followed. Responses carry a
//! content type from the extension, a weak ETag from size and modification time (answered
//! with 304 on `If-None-Match`), and `Cache-Control`: `no-cache` for HTML, so a new release
//! shows at once, an hour for other assets. With `spa = true`, a path without an extension
//! that names no file gets `index.html` (client-side routing).

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use brigade_core::settings::StaticSettings;

use crate::error::ApiError;
use crate::state::AppState;

/// The fallback: a static file, or the JSON 404 of an unknown route.
pub(crate) async fn fallback(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    let api = path == "/api" || path.starts_with("/api/");
    match state.settings().static_files.as_ref() {
        Some(settings) if !api && (method == Method::GET || method == Method::HEAD) => {
            serve(settings, path, &headers, method == Method::HEAD).await
        }
        _ => not_found(),
    }
}

fn not_found() -> Response {
    ApiError::not_found("No such route; see /api/docs for the API.").into_response()
}

/// The segments of a URL path, decoded, or `None` when one is not a plain file name.
fn segments(path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let segment = percent_decode(raw)?;
        let plain = !segment.starts_with('.')
            && !segment.contains(['/', '\\', '\0'])
            && !segment.chars().any(char::is_control);
        if !plain {
            return None;
        }
        out.push(segment);
    }
    Some(out)
}

/// `%XX` decoding; `None` for a malformed escape or text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file `path` names under `root`, following symlinks only within it.
async fn resolve(root: &Path, segments: &[String]) -> Option<PathBuf> {
    let mut candidate = root.to_path_buf();
    candidate.extend(segments);
    let meta = tokio::fs::metadata(&candidate).await.ok()?;
    if meta.is_dir() {
        candidate.push("index.html");
    }
    let real = tokio::fs::canonicalize(&candidate).await.ok()?;
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let meta = tokio::fs::metadata(&real).await.ok()?;
    (real.starts_with(&root) && meta.is_file()).then_some(real)
}

async fn serve(settings: &StaticSettings, path: &str, headers: &HeaderMap, head: bool) -> Response {
    let Some(segments) = segments(path) else {
        return not_found();
    };
    let file = match resolve(&settings.dir, &segments).await {
        Some(file) => file,
        None => {
            let has_extension = segments.last().is_some_and(|s| s.contains('.'));
            if !settings.spa || has_extension {
                return not_found();
            }
            match resolve(&settings.dir, &["index.html".to_string()]).await {
                Some(index) => index,
                None => return not_found(),
            }
        }
    };
    match send_file(&file, headers, head).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "Could not read a static file.");
            not_found()
        }
    }
}

async fn send_file(file: &Path, headers: &HeaderMap, head: bool) -> std::io::Result<Response> {
    let meta = tokio::fs::metadata(file).await?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("W/\"{:x}-{:x}\"", meta.len(), modified);
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    let html = mime.essence_str() == "text/html";
    let content_type = if mime.type_() == "text" || mime.essence_str() == "application/javascript" {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
    };
    let cache = if html {
        "no-cache"
    } else {
        "public, max-age=3600"
    };
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if fresh {
        return Ok(builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default());
    }
    builder = builder
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        )
        .header(header::CONTENT_LENGTH, meta.len());
    let body = if head {
        Body::empty()
    } else {
        let file = tokio::fs::File::open(file).await?;
        Body::from_stream(tokio_util::io::ReaderStream::new(file))
    };
    Ok(builder.body(body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_plain_segments_or_refused() {
        assert_eq!(segments("/a/b.css"), Some(vec!["a".into(), "b.css".into()]));
        assert_eq!(segments("/"), Some(vec![]));
        assert_eq!(
            segments("/with%20space.txt"),
            Some(vec!["with space.txt".into()])
        );
        for bad in [
            "/../etc/passwd",
            "/a/%2e%2e/b",
            "/.env",
            "/a/%2Fb",
            "/a%5cb",
            "/%00",
            "/%zz",
            "/%ff",
        ] {
            assert_eq!(segments(bad), None, "{bad}");
        }
    }
}
