//! Placeholder while the html extractor is written.

use super::{Context, Sender};
use crate::error::PipelineError;

/// Checks a CSS selector.
///
/// # Errors
/// Why the selector is invalid.
pub fn check_selector(selector: &str) -> Result<(), String> {
    scraper::Selector::parse(selector)
        .map(|_| ())
        .map_err(|e| format!("`{selector}` is not a valid CSS selector: {e}"))
}

/// Runs the extract.
///
/// # Errors
/// Always, for now.
pub async fn run(cx: &Context, _tx: &Sender) -> Result<(), PipelineError> {
    Err(PipelineError::Extract(format!(
        "extract `{}`: from = \"html\" is not available yet",
        cx.spec.name
    )))
}
