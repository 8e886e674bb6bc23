//! Who is on the other end of a realtime connection, and whether they still may be: an access
//! token ends the connection when it expires, a revoked token or key (logout, password or role
//! change, a disabled or deleted account) within [`RECHECK`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brigade_auth::{Principal, PrincipalKind};
use brigade_store::Access;

use crate::extract::{access_of, api_key, authenticate, current};
use crate::state::AppState;

/// How often a connection's credential is checked again.
pub(crate) const RECHECK: Duration = Duration::from_secs(5);

/// The credential of a connection.
#[derive(Clone)]
pub(crate) struct Session {
    principal: Option<Principal>,
    /// The API key itself, to look it up again (it may be revoked).
    key: Option<String>,
    expires: Option<SystemTime>,
    access: Access,
}

impl Session {
    /// An anonymous visitor.
    pub(crate) fn anonymous() -> Self {
        Session {
            principal: None,
            key: None,
            expires: None,
            access: Access::anonymous(),
        }
    }

    /// The session of an access token or API key.
    ///
    /// # Errors
    /// 401 as for any request.
    pub(crate) async fn from_token(
        state: &AppState,
        token: &str,
    ) -> Result<Self, crate::error::ApiError> {
        let (principal, expires) = authenticate(state, token).await?;
        let key = matches!(principal.kind, PrincipalKind::ApiKey { .. }).then(|| token.to_string());
        Ok(Session {
            access: access_of(Some(&principal)),
            principal: Some(principal),
            key,
            expires: expires.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        })
    }

    /// The rules' view of the caller.
    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    /// The account the connection counts against (a key counts against its owner).
    pub(crate) fn account(&self) -> Option<&str> {
        self.principal.as_ref().map(Principal::account_id)
    }

    /// The principal, if any (for `from` in broadcasts and presence).
    pub(crate) fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// How long until the token expires (`None`: it does not).
    pub(crate) fn expires_in(&self) -> Option<Duration> {
        self.expires.map(|at| {
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }

    /// Checks the credential again; `Err` says why the connection must end.
    pub(crate) async fn recheck(&self, state: &AppState) -> Result<(), String> {
        let Some(principal) = &self.principal else {
            return Ok(());
        };
        if self.expires_in() == Some(Duration::ZERO) {
            return Err("The access token expired; refresh it and reconnect.".into());
        }
        let result = match &self.key {
            Some(key) => api_key(state, key).await.map(drop),
            None => current(state, principal).await,
        };
        result.map_err(|e| e.detail)
    }
}
