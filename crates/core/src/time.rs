//! Timestamps: always UTC, always RFC 3339 with milliseconds and `Z`
//! (`2026-11-22T20:49:26.123Z`). One fixed-width format sorts correctly as text in both stores.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time in the canonical format.
pub fn now() -> String {
    format_datetime(Utc::now())
}

/// Formats a UTC time canonically.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses RFC 3339 (any offset) or `YYYY-MM-DD HH:MM:SS[.fff][Z]` or a bare date
/// `YYYY-MM-DD`, and returns the canonical UTC form.
pub fn normalize_datetime(input: &str) -> Option<String> {
    let s = input.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(format_datetime(t.with_timezone(&Utc)));
    }
    let spaced = s.replacen(' ', "T", 1);
    let with_zone = if spaced.ends_with('Z') {
        spaced
    } else {
        format!("{spaced}Z")
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&with_zone) {
        return Some(format_datetime(t.with_timezone(&Utc)));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| format_datetime(dt.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_offsets_and_shapes() {
        assert_eq!(
            normalize_datetime("2024-01-02T03:04:05+02:00").as_deref(),
            Some("2024-01-02T01:04:05.000Z")
        );
        assert_eq!(
            normalize_datetime("2024-01-02 03:04:05.5").as_deref(),
            Some("2024-01-02T03:04:05.500Z")
        );
        assert_eq!(
            normalize_datetime("2024-01-02").as_deref(),
            Some("2024-01-02T00:00:00.000Z")
        );
        assert_eq!(normalize_datetime("yesterday"), None);
        assert_eq!(normalize_datetime("2024-13-40"), None);
    }
}
