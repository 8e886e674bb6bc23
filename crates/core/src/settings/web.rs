//! `[static]`: a folder of files served at `/`, so an app ships its front end in the same
//! binary (PocketBase's `pb_public`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[static]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticSettings {
    /// The folder, resolved against the app directory.
    pub dir: PathBuf,
    /// Serve `index.html` for paths that name no file and have no extension (client-side
    /// routing).
    pub spa: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStatic {
    dir: Option<String>,
    spa: Option<bool>,
}

/// Checks `[static]`; errors are `(key, message)`.
pub(super) fn static_files(
    raw: RawStatic,
    app_dir: &Path,
) -> Result<Option<StaticSettings>, (String, String)> {
    let Some(dir) = raw
        .dir
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
    else {
        if raw.spa.is_some() {
            return Err((
                "static.spa".into(),
                "needs `dir`, the folder to serve".into(),
            ));
        }
        return Ok(None);
    };
    let path = app_dir.join(&dir);
    if !path.is_dir() {
        return Err((
            "static.dir".into(),
            format!(
                "`{}` is not a folder; create it or fix the path (relative to the app directory)",
                path.display()
            ),
        ));
    }
    Ok(Some(StaticSettings {
        dir: path,
        spa: raw.spa.unwrap_or(false),
    }))
}
