//! Attacks from the review of issue #11, performed over HTTP against the real binary: a flood
//! of batches hiding failed logins from the audit log, a cached RAG answer outliving the
//! caller's access to its source, the OpenAPI document telling anonymous callers about
//! superuser-only collections, pipeline credentials sent to another origin, and a path
//! index reading a symlink out of the app directory.

mod audit_flood;
mod openapi;
mod pipeline_credentials;
mod rag_cache;
#[cfg(unix)]
mod symlinks;

/// `brigade.toml` lines that open registration and lift rate limits, so a test can make
/// users and hammer the API.
pub(crate) const OPEN: &str =
    "[auth]\nallow_registration = true\n[rate_limit]\nauth = \"off\"\ndefault = \"off\"\n";
