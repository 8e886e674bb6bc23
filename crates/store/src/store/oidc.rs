//! Pending OpenID Connect logins: started by one request, finished (once) by the callback,
//! possibly on another server process.

use super::Store;
use crate::error::StoreError;
use crate::oidc_state::{self, PendingLogin};

impl Store {
    /// Remembers a login sent to a provider until its callback arrives or it expires.
    ///
    /// # Errors
    /// Database errors.
    pub async fn create_pending_login(&self, login: &PendingLogin) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        oidc_state::insert(tx.as_mut(), login).await?;
        tx.commit().await
    }

    /// Spends the pending login with this state hash: returns it when it exists and has not
    /// expired; every later call with the same hash returns `None`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn take_pending_login(
        &self,
        state_hash: &str,
    ) -> Result<Option<PendingLogin>, StoreError> {
        let mut tx = self.db.begin().await?;
        let login = oidc_state::take(tx.as_mut(), state_hash).await?;
        tx.commit().await?;
        Ok(login)
    }
}
