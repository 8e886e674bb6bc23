//! Topic names: `collections/posts` (every record of a collection) and
//! `collections/posts/RECORD_ID` (one record). SSE also takes the short forms of API.md,
//! `posts` and `posts/RECORD_ID`.

/// What a topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topic {
    pub(crate) collection: String,
    pub(crate) record: Option<String>,
}

/// Parses a topic as the client wrote it.
///
/// # Errors
/// A message saying what a topic looks like.
pub(crate) fn parse(label: &str) -> Result<Topic, String> {
    let label = label.trim();
    let rest = label.strip_prefix("collections/").unwrap_or(label);
    let mut parts = rest.split('/');
    let collection = parts.next().unwrap_or_default();
    let record = parts.next();
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if parts.next().is_some() || !valid(collection) || record.is_some_and(|r| r != "*" && !valid(r))
    {
        return Err(format!(
            "`{label}` is not a topic: use `collections/NAME` or `collections/NAME/RECORD_ID`"
        ));
    }
    Ok(Topic {
        collection: collection.to_string(),
        record: record.filter(|r| *r != "*").map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_short_forms_name_the_same_topics() {
        let all = Topic {
            collection: "posts".into(),
            record: None,
        };
        assert_eq!(parse("collections/posts"), Ok(all.clone()));
        assert_eq!(parse("posts"), Ok(all.clone()));
        assert_eq!(parse("posts/*"), Ok(all));
        assert_eq!(
            parse("collections/posts/abc123").map(|t| t.record),
            Ok(Some("abc123".into()))
        );
        for bad in ["", "collections/", "posts/a/b", "po sts", "posts/a'b"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
