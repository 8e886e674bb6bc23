//! Redaction of personal data and secrets before questions and answers are logged: email
//! addresses, phone numbers and tokens (bearer tokens, JWTs, API keys, long hex or base64
//! strings) become `[email]`, `[phone]` and `[token]`.

use std::sync::LazyLock;

use regex::Regex;

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let rules = [
        (r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}", "[token]"),
        (
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            "[token]",
        ),
        (
            r"\b(?:sk|pk|rk|ghp|gho|xox[abp]|AKIA)[-_A-Za-z0-9]{12,}",
            "[token]",
        ),
        (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[email]"),
        (r"\b[A-Fa-f0-9]{32,}\b", "[token]"),
        (r"\b[A-Za-z0-9+/_-]{32,}={0,2}", "[token]"),
        (
            r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\b\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}\b",
            "[phone]",
        ),
        (r"\+\d{8,15}\b", "[phone]"),
    ];
    rules
        .into_iter()
        .filter_map(|(re, with)| Regex::new(re).ok().map(|r| (r, with)))
        .collect()
});

/// `text` with emails, phone numbers and tokens replaced.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (re, with) in PATTERNS.iter() {
        if re.is_match(&out) {
            out = re.replace_all(&out, *with).into_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn emails_phones_and_tokens_are_redacted() {
        let r = redact(
            "mail ann.lee+x@example.co.uk or call +1 415-555-0132 / (020) 7946 0958 with \
             Bearer abc.def-123456 and sk-proj-ABCDEF1234567890abcd and \
             eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig and 0123456789abcdef0123456789abcdef",
        );
        assert!(!r.contains("ann.lee"), "{r}");
        assert!(!r.contains("555"), "{r}");
        assert!(!r.contains("7946"), "{r}");
        assert!(!r.contains("abc.def"), "{r}");
        assert!(!r.contains("ABCDEF1234"), "{r}");
        assert!(!r.contains("eyJhbGci"), "{r}");
        assert!(!r.contains("0123456789abcdef"), "{r}");
        assert!(
            r.contains("[email]") && r.contains("[phone]") && r.contains("[token]"),
            "{r}"
        );
    }

    #[test]
    fn ordinary_text_is_kept() {
        let q = "How does VACUUM FULL differ from VACUUM in PostgreSQL 15 (since 2022)?";
        assert_eq!(redact(q), q);
    }
}
