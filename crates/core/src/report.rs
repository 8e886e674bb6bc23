//! Rendering an error with its causes, once each.
//!
//! Brigade's errors keep the error they wrap as their `source()` (so a caller can downcast
//! to the driver's error and read, say, a SQLSTATE) *and* say what happened in their own
//! message, so `to_string()` alone is enough for a problem detail or a run's error column.
//! A plain `{:#}` walk of such a chain repeats the driver's words; [`chain`] skips every
//! cause whose text the message already holds.

use std::error::Error;

/// The error a variant wraps: any error that can cross threads.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

/// `error: cause: cause's cause`, leaving out causes already said.
pub fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading brigade.toml: {0}")]
    struct Says(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("starting the server")]
    struct Context(#[source] Says);

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            chain(&Says(io)),
            "reading brigade.toml: no such file",
            "the io error is in the message and must not appear twice"
        );
    }

    #[test]
    fn causes_not_in_the_message_are_appended() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            chain(&Context(Says(io))),
            "starting the server: reading brigade.toml: no such file"
        );
    }
}
