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

/// The target a relation field names to point at accounts (`"collection": "users"`): an
/// owner field. No collection may take this name.
pub const ACCOUNTS_COLLECTION: &str = "users";

/// Why a valid name cannot name a collection, if it cannot: the databases keep `sqlite_`
/// (SQLite refuses such tables) and `pg_` (PostgreSQL resolves `pg_class` to its catalog before
/// a table of ours) for themselves, whatever the case.
pub fn reserved_collection_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("sqlite_") {
        Some("names starting with `sqlite_` are reserved by SQLite")
    } else if lower.starts_with("pg_") {
        Some("names starting with `pg_` are reserved by PostgreSQL")
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
