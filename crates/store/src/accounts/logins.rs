//! The per-account login budget (see [`crate::login_failures`]).

use brigade_core::settings::LoginLockout;

use super::Accounts;
use crate::error::StoreError;
use crate::login_failures::{self, LoginCharge};

impl Accounts<'_> {
    /// Charges a login attempt to `account` (an opaque key derived from the submitted email):
    /// [`LoginCharge::Locked`] while the account is locked, else the attempt counts as a
    /// failure until [`Accounts::clear_login_failures`].
    ///
    /// # Errors
    /// Database errors.
    pub async fn charge_login_attempt(
        self,
        account: &str,
        policy: &LoginLockout,
    ) -> Result<LoginCharge, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let charge = login_failures::charge(tx.as_mut(), account, policy).await?;
        tx.commit().await?;
        Ok(charge)
    }

    /// Forgets the failed logins of `account` (the password was right).
    ///
    /// # Errors
    /// Database errors.
    pub async fn clear_login_failures(self, account: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        login_failures::clear(tx.as_mut(), account).await?;
        tx.commit().await
    }

    /// Drops failure counts nobody added to for a day (or the longest lock); returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune_login_failures(self, policy: &LoginLockout) -> Result<u64, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let pruned = login_failures::prune(tx.as_mut(), policy).await?;
        tx.commit().await?;
        Ok(pruned)
    }
}
