//! Cron schedules (UTC): parsing and the next firing time.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Parses a 5-field (or 6-field, with seconds) cron expression.
///
/// # Errors
/// Why the expression is invalid.
pub fn parse(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| {
            format!(
                "`{expr}` is not a valid cron expression (5 fields, or 6 with seconds, UTC): {e}"
            )
        })
}

/// The first firing strictly after `after`.
pub fn next_after(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_five_and_six_fields() {
        let c = parse("0 3 * * *").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-01-01T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            next_after(&c, t).unwrap().to_rfc3339(),
            "2026-01-02T03:00:00+00:00"
        );
        assert!(parse("*/5 * * * * *").is_ok());
        assert!(parse("61 * * * *").is_err());
        assert!(parse("not cron").is_err());
    }
}
