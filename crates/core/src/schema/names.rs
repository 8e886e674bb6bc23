//! Names of collections and fields. They become SQL identifiers, so they are restricted to a
//! portable, quote-safe alphabet; the store quotes them anyway.

/// The naming rule, for messages.
pub const NAME_RULE: &str = "must start with a letter and contain only letters, digits and underscores (at most 63 characters)";

/// Whether `name` is a valid collection or field name.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_rejected() {
        for bad in [
            "",
            "_users",
            "1abc",
            "a b",
            "a\"b",
            "posts; DROP TABLE x",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        for good in ["posts", "Posts_2", "a"] {
            assert!(is_valid_name(good));
        }
    }
}
