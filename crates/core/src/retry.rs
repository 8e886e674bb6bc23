//! Retry timing and error text shared by every HTTP client Brigade runs: pipeline extracts
//! and the LLM and embedding calls of search. One copy, so `Retry-After` as an HTTP date and
//! repeated cause text are handled the same everywhere.

use std::time::{Duration, SystemTime};

/// Whether a response status is worth retrying: 429 and 5xx.
pub fn retryable_status(code: u16) -> bool {
    code == 429 || (500..600).contains(&code)
}

/// The delay before retry number `retry + 1`: `start` doubled `retry` times, at most `cap`.
pub fn backoff(retry: u32, start: Duration, cap: Duration) -> Duration {
    start
        .saturating_mul(2u32.saturating_pow(retry.min(16)))
        .min(cap)
}

/// A `Retry-After` value — seconds or an HTTP date — as a delay from `now`, at most `cap`;
/// `None` when it is neither.
pub fn retry_after(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        let at = SystemTime::from(at.with_timezone(&chrono::Utc));
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(cap))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let delays: Vec<u128> = (0..7)
            .map(|r| backoff(r, Duration::from_millis(200), Duration::from_secs(5)).as_millis())
            .collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert!(retryable_status(429) && retryable_status(503));
        assert!(!retryable_status(404) && !retryable_status(600));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_capped() {
        let cap = Duration::from_secs(60);
        let now = SystemTime::now();
        assert_eq!(retry_after(" 3 ", now, cap), Some(Duration::from_secs(3)));
        let base = UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", base, cap),
            Some(Duration::from_secs(10))
        );
        assert_eq!(retry_after("86400", now, cap), Some(cap));
        assert_eq!(retry_after("soon", now, cap), None);
    }
}
