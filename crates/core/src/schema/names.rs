//! Names of collections and fields. They become SQL identifiers, so they are restricted to a
//! portable, quote-safe alphabet; the store quotes them anyway.

/// The naming rule, for messages.
pub const NAME_RULE: &str = "must start with a letter and contain only letters, digits and underscores (at most 63 characters)";

/// [`is_valid_name`] as a regular expression (without anchors), for the OpenAPI document.
/// The two must say the same; the test below holds them together.
pub const NAME_PATTERN: &str = "[A-Za-z][A-Za-z0-9_]{0,62}";

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

/// The target a relation field names to point at accounts (`"collection": "users"`): an
/// owner field. No collection may take this name.
pub const ACCOUNTS_COLLECTION: &str = "users";

/// Prefixes the databases keep for themselves, whatever the case: SQLite refuses `sqlite_`
/// tables, and PostgreSQL resolves `pg_class` to its catalog before a table of ours.
pub const RESERVED_COLLECTION_PREFIXES: &[(&str, &str)] = &[
    (
        "sqlite_",
        "names starting with `sqlite_` are reserved by SQLite",
    ),
    (
        "pg_",
        "names starting with `pg_` are reserved by PostgreSQL",
    ),
];

/// Why a valid name cannot name a collection, if it cannot: a
/// [reserved prefix](RESERVED_COLLECTION_PREFIXES), or the name of the accounts.
pub fn reserved_collection_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, why)) = RESERVED_COLLECTION_PREFIXES
        .iter()
        .find(|(prefix, _)| lower.starts_with(prefix))
    {
        Some(why)
    } else if lower == ACCOUNTS_COLLECTION {
        Some(
            "`users` names the accounts: a relation field with `\"collection\": \"users\"` points \
             at an account; choose another name for a collection",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_prefixes_are_reserved_for_collections() {
        for bad in ["sqlite_master", "SQLITE_sequence", "pg_class", "Pg_Foo"] {
            assert!(reserved_collection_name(bad).is_some(), "{bad}");
        }
        for good in ["sqlite", "posts", "pgvector", "pages"] {
            assert_eq!(reserved_collection_name(good), None, "{good}");
        }
    }

    /// A small matcher of [`NAME_PATTERN`]'s exact shape (no regex engine in this crate):
    /// if the constant changes, this test fails until both are changed together.
    #[test]
    fn name_pattern_says_what_is_valid_name_checks() {
        assert_eq!(NAME_PATTERN, "[A-Za-z][A-Za-z0-9_]{0,62}");
        let matches = |n: &str| {
            let mut chars = n.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && n.chars().count() <= 63
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        for n in [
            "",
            "a",
            "_a",
            "a_",
            "1a",
            "é",
            "aé",
            "a-b",
            &"a".repeat(63),
            &"a".repeat(64),
        ] {
            assert_eq!(matches(n), is_valid_name(n), "{n:?}");
        }
    }

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
