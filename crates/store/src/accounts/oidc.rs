//! OpenID Connect logins: pending ones (started by one request, finished once by the
//! callback, possibly on another server process) and the identities linked to accounts.

use super::Accounts;
use crate::error::StoreError;
use crate::oidc_links::{self, OidcLogin};
use crate::oidc_state::{self, PendingLogin};
use crate::users;

impl Accounts<'_> {
    /// Remembers a login sent to a provider until its callback arrives or it expires.
    ///
    /// # Errors
    /// Database errors.
    pub async fn create_pending_login(self, login: &PendingLogin) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        oidc_state::insert(tx.as_mut(), login).await?;
        tx.commit().await
    }

    /// Spends the pending login with this state hash: returns it when it exists and has not
    /// expired; every later call with the same hash returns `None`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn take_pending_login(
        self,
        state_hash: &str,
    ) -> Result<Option<PendingLogin>, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let login = oidc_state::take(tx.as_mut(), state_hash).await?;
        tx.commit().await?;
        Ok(login)
    }
}

impl Accounts<'_> {
    /// Decides who a login with `subject` at `provider` is, in one transaction: the account
    /// linked to that identity; else, when the provider vouched for `verified_email`, the
    /// account with that email if it holds no roles and has no other identity at `provider`
    /// (then linked), or a new role-less account with `profile` and a password hash
    /// (`no_password`) that no password matches (then linked).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a concurrent login created the account or the link
    /// first (calling again settles it); database errors.
    pub async fn oidc_login(
        self,
        provider: &str,
        subject: &str,
        verified_email: Option<&str>,
        profile: &serde_json::Map<String, serde_json::Value>,
        no_password: &str,
    ) -> Result<OidcLogin, StoreError> {
        let mut tx = self.store.db.begin().await?;
        if let Some(id) = oidc_links::user_id(tx.as_mut(), provider, subject).await? {
            let user = users::by_id(tx.as_mut(), &id).await?;
            tx.commit().await?;
            return user
                .map(OidcLogin::Known)
                .ok_or_else(|| StoreError::internal(format!("linked account `{id}` is gone")));
        }
        let Some(email) = verified_email else {
            return Ok(OidcLogin::Unverified);
        };
        let outcome = match users::by_email(tx.as_mut(), email).await? {
            Some(user) if !user.roles.is_empty() => return Ok(OidcLogin::Privileged),
            Some(user) => {
                if oidc_links::subject_of(tx.as_mut(), provider, &user.id)
                    .await?
                    .is_some()
                {
                    return Ok(OidcLogin::OtherIdentity);
                }
                OidcLogin::Linked(user)
            }
            None => OidcLogin::Created(
                users::insert(tx.as_mut(), email, no_password, &[], profile).await?,
            ),
        };
        let (OidcLogin::Linked(user) | OidcLogin::Created(user)) = &outcome else {
            return Ok(outcome);
        };
        if !oidc_links::insert(tx.as_mut(), provider, subject, &user.id).await? {
            return Err(StoreError::conflict(
                "subject",
                "this identity was linked by a concurrent login",
            ));
        }
        tx.commit().await?;
        Ok(outcome)
    }
}
