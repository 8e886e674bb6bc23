//! Failed logins per account in `_login_failures`: the per-account budget that stops a
//! password-guessing attack spread over many client addresses, which per-IP rate limits
//! cannot see. It lives in the database so that every server process on one database
//! charges the same counter.
//!
//! Each attempt is charged *before* the password is checked (and the charge is cleared when
//! the password was right), so concurrent guesses cannot all slip past the check before any
//! of them is counted. Accounts are keyed by an opaque string the caller derives from the
//! submitted email, whether or not such an account exists: unknown accounts are locked
//! exactly like known ones, so the lock reveals nothing about who has an account.

use std::time::Duration;

use brigade_core::settings::LoginLockout;
use brigade_core::value::Value;
use chrono::{DateTime, Utc};

use crate::conn::{ColType, Conn};
use crate::error::StoreError;
use crate::sql::Sql;

/// The tables of this module (portable SQL): step 10 of the system tables.
pub(crate) const DDL: &str =
    "CREATE TABLE IF NOT EXISTS _login_failures (account TEXT PRIMARY KEY NOT NULL,
     failures INTEGER NOT NULL, locked_until TEXT, updated TEXT NOT NULL);
 CREATE INDEX IF NOT EXISTS _login_failures_updated ON _login_failures (updated);";

/// Failures are forgotten after this long without another attempt (or after the longest
/// lock, if that is longer).
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What charging a login attempt to an account led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCharge {
    /// The attempt may check the password; it is counted as a failure until cleared.
    Allowed,
    /// The account is locked: refuse the attempt, right password or not.
    Locked {
        /// How long until the lock ends.
        retry_after: Duration,
    },
}

/// Charges one attempt to `account`. The attempt that reaches `policy.failures` locks the
/// account for `policy.lockout`; each attempt after a lock ends locks it again for twice as
/// long, up to `policy.lockout_max`.
pub(crate) async fn charge(
    conn: &mut dyn Conn,
    account: &str,
    policy: &LoginLockout,
) -> Result<LoginCharge, StoreError> {
    let now = Utc::now();
    let now_text = brigade_core::time::format_datetime(now);
    let forget = brigade_core::time::format_datetime(now - chrono_duration(forget_after(policy)));
    // Counts the attempt unless a lock is in force (then no row comes back). On PostgreSQL
    // the row stays locked until commit, so concurrent attempts are counted one by one.
    let mut sql = Sql::new(conn.dialect());
    sql.push("INSERT INTO _login_failures (account, failures, locked_until, updated) VALUES (")
        .bind(Value::Text(account.into()))
        .push(", 1, NULL, ")
        .bind(Value::Text(now_text.clone()))
        .push(
            ") ON CONFLICT (account) DO UPDATE SET failures = CASE WHEN _login_failures.updated < ",
        )
        .bind(Value::Text(forget))
        .push(
            " THEN 1 ELSE _login_failures.failures + 1 END, updated = excluded.updated \
             WHERE _login_failures.locked_until IS NULL \
             OR _login_failures.locked_until <= excluded.updated RETURNING failures",
        );
    let counted = conn.query(&sql, &[ColType::Int]).await?.pop();
    let failures = match counted.and_then(|mut row| row.pop()) {
        Some(Value::Int(n)) => n,
        Some(other) => {
            return Err(StoreError::internal(format!(
                "_login_failures.failures is {other:?}"
            )));
        }
        None => return locked(conn, account, now).await,
    };
    let over = failures - i64::from(policy.failures);
    if over >= 0 {
        let lock = u32::try_from(over)
            .ok()
            .and_then(|n| 2u32.checked_pow(n))
            .and_then(|factor| policy.lockout.checked_mul(factor))
            .map_or(policy.lockout_max, |d| d.min(policy.lockout_max));
        let until = brigade_core::time::format_datetime(now + chrono_duration(lock));
        let mut sql = Sql::new(conn.dialect());
        sql.push("UPDATE _login_failures SET locked_until = ")
            .bind(Value::Text(until))
            .push(" WHERE account = ")
            .bind(Value::Text(account.into()));
        conn.execute(&sql).await?;
    }
    Ok(LoginCharge::Allowed)
}

/// The lock in force on `account`.
async fn locked(
    conn: &mut dyn Conn,
    account: &str,
    now: DateTime<Utc>,
) -> Result<LoginCharge, StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("SELECT locked_until FROM _login_failures WHERE account = ")
        .bind(Value::Text(account.into()));
    let until = match conn.query(&sql, &[ColType::Text]).await?.pop() {
        Some(mut row) => match row.pop() {
            Some(Value::Text(t)) => DateTime::parse_from_rfc3339(&t)
                .map_err(|e| StoreError::internal_from("_login_failures.locked_until", e))?
                .with_timezone(&Utc),
            _ => now,
        },
        None => now,
    };
    let retry_after = (until - now).to_std().unwrap_or_default();
    Ok(LoginCharge::Locked {
        retry_after: retry_after.max(Duration::from_secs(1)),
    })
}

/// How long failures are remembered after the last attempt.
fn forget_after(policy: &LoginLockout) -> Duration {
    FORGET_AFTER.max(policy.lockout_max)
}

/// Drops the rows of accounts nobody tried for a while (the table would otherwise keep one
/// row per address ever tried, existing or not); returns how many.
pub(crate) async fn prune(conn: &mut dyn Conn, policy: &LoginLockout) -> Result<u64, StoreError> {
    let forget = Utc::now() - chrono_duration(forget_after(policy));
    let mut sql = Sql::new(conn.dialect());
    sql.push("DELETE FROM _login_failures WHERE updated < ")
        .bind(Value::Text(brigade_core::time::format_datetime(forget)));
    conn.execute(&sql).await
}

/// Forgets the failures of `account` (after a successful login).
pub(crate) async fn clear(conn: &mut dyn Conn, account: &str) -> Result<(), StoreError> {
    let mut sql = Sql::new(conn.dialect());
    sql.push("DELETE FROM _login_failures WHERE account = ")
        .bind(Value::Text(account.into()));
    conn.execute(&sql).await?;
    Ok(())
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
