//! Placeholder while the http extractor is written.

use super::{Context, Sender};
use crate::error::PipelineError;

/// Runs the extract.
///
/// # Errors
/// Always, for now.
pub async fn run(cx: &Context, _tx: &Sender) -> Result<(), PipelineError> {
    Err(PipelineError::Extract(format!(
        "extract `{}`: from = \"http\" is not available yet",
        cx.spec.name
    )))
}
