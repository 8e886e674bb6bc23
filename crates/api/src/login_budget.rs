//! The per-account login budget: per-IP limits cannot see a guessing attack spread over many
//! addresses, so failed logins are also counted per account (in the database, shared by every
//! process; see `brigade_store::login_failures`). After `rate_limit.login_failures` failures
//! in a row the account is locked — the right password is refused too — for
//! `rate_limit.login_lockout`, doubling with each further failure up to
//! `rate_limit.login_lockout_max`; a successful login clears the count.
//!
//! The key is derived from the submitted email whether or not an account has it, so an
//! unknown address is locked exactly like a known one and the lock is no account oracle.

use axum::http::StatusCode;
use brigade_auth::opaque;
use brigade_store::login_failures::LoginCharge;
use serde_json::json;

use crate::audit::RequestMeta;
use crate::error::ApiError;
use crate::state::AppState;
use brigade_store::AuditAction;

/// A login attempt charged to its account's budget.
#[must_use = "call `succeeded` when the password was right"]
pub(crate) struct Attempt {
    /// `None` when the per-account budget is off.
    account: Option<String>,
}

/// Charges an attempt to log in as `email`.
///
/// # Errors
/// 429 problem+json with `Retry-After` while the account is locked; database errors.
pub(crate) async fn begin(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
) -> Result<Attempt, ApiError> {
    let Some(policy) = state.settings().rate_limit.login else {
        return Ok(Attempt { account: None });
    };
    let account = account_key(email);
    match state
        .store()
        .accounts()
        .charge_login_attempt(&account, &policy)
        .await?
    {
        LoginCharge::Allowed => Ok(Attempt {
            account: Some(account),
        }),
        LoginCharge::Locked { retry_after } => {
            let secs = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
            metrics::counter!("login_locked_total").increment(1);
            tracing::info!(email = %email, retry_after = secs, "Login refused: account locked.");
            let detail = json!({"email": email, "retry_after": secs});
            state
                .audit()
                .record(meta, AuditAction::AuthLoginLocked, None, None, detail);
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed logins for this account; it is locked for {secs} s. \
                     Wait before trying again."
                ),
            );
            err.retry_after = Some(secs);
            Err(err)
        }
    }
}

impl Attempt {
    /// The password was right: the account's failures are forgotten.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn succeeded(self, state: &AppState) -> Result<(), ApiError> {
        if let Some(account) = self.account {
            state
                .store()
                .accounts()
                .clear_login_failures(&account)
                .await?;
        }
        Ok(())
    }
}

/// The budget key of the account `email` names (existing or not): a hash, so the table
/// holds no address in clear.
fn account_key(email: &str) -> String {
    opaque::hash_token(&format!("login:{}", email.trim().to_lowercase()))
}
