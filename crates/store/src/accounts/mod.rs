//! Accounts, reached through [`Store::accounts`]: users, refresh-token families, password
//! resets, API keys, the per-account login budget, OpenID Connect logins and persistent
//! values (the token signing secrets). Whatever must end existing access (password or role
//! change, logout, refresh-token reuse) increments the account's token version in the same
//! transaction.

use brigade_core::value::Value;

use crate::api_keys::{self, ApiKeyLookup, ApiKeyRow};
use crate::error::StoreError;
use crate::handle::Store;
use crate::sessions::{self, Rotation};
use crate::system;
use crate::users::{self, UserRow};

mod logins;
mod oidc;

/// Accounts and what proves who a caller is: users, sessions, API keys, login failures,
/// OpenID Connect logins and persistent values. Borrowed from a [`Store`] by
/// [`Store::accounts`].
#[derive(Clone, Copy)]
pub struct Accounts<'a> {
    store: &'a Store,
}

impl Store {
    /// Users, sessions, API keys, login failures, OpenID Connect logins, persistent values.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { store: self }
    }
}

impl Accounts<'_> {
    // ---- users -----------------------------------------------------------------------

    /// Creates an account with an already-hashed password.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on `email` when the address is taken.
    pub async fn create_user(
        self,
        email: &str,
        password_hash: &str,
        roles: &[String],
        profile: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<UserRow, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let user = users::insert(tx.as_mut(), email, password_hash, roles, profile).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Replaces a user's password hash; the account's access tokens stop working.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_user_password(self, id: &str, password_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        users::set_password(tx.as_mut(), id, password_hash).await?;
        tx.commit().await
    }

    /// The account's current token version (`None`: no such account). Access tokens
    /// issued at another version are revoked.
    ///
    /// # Errors
    /// Database errors.
    pub async fn token_version(self, user_id: &str) -> Result<Option<i64>, StoreError> {
        let mut conn = self.store.db.read().await?;
        users::token_version(conn.as_mut(), user_id).await
    }

    /// The account with this email (case-insensitive).
    ///
    /// # Errors
    /// Database errors.
    pub async fn user_by_email(self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let mut conn = self.store.db.read().await?;
        users::by_email(conn.as_mut(), email).await
    }

    /// The account with this id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn user_by_id(self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let mut conn = self.store.db.read().await?;
        users::by_id(conn.as_mut(), id).await
    }

    /// How many accounts have `role`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn count_users_with_role(self, role: &str) -> Result<i64, StoreError> {
        let mut conn = self.store.db.read().await?;
        users::count_with_role(conn.as_mut(), role).await
    }

    /// Stores a new refresh token (its hash) starting a new family (one per login).
    ///
    /// # Errors
    /// Database errors.
    pub async fn create_refresh_token(
        self,
        user_id: &str,
        token_hash: &str,
        expires: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        sessions::insert(
            tx.as_mut(),
            user_id,
            &brigade_core::ids::new_id(),
            token_hash,
            expires,
        )
        .await?;
        tx.commit().await
    }

    /// Spends a refresh token and stores its successor, atomically. Replaying a spent token
    /// revokes its whole family.
    ///
    /// # Errors
    /// Database errors.
    pub async fn rotate_refresh_token(
        self,
        old_hash: &str,
        new_hash: &str,
        new_expires: &str,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let outcome = sessions::rotate(tx.as_mut(), old_hash, new_hash, new_expires).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Revokes the family of a refresh token and the account's access tokens (logout).
    /// Returns the account of a known token.
    ///
    /// # Errors
    /// Database errors.
    pub async fn revoke_refresh_token(
        self,
        token_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let Some([Value::Text(family), Value::Text(user_id), ..]) =
            sessions::find(tx.as_mut(), token_hash).await?
        else {
            return Ok(None);
        };
        sessions::revoke_family(tx.as_mut(), &family).await?;
        users::bump_token_version(tx.as_mut(), &user_id).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    /// A persistent value, created with `make` the first time (the same value for every
    /// process sharing the database).
    ///
    /// # Errors
    /// Database errors.
    pub async fn persistent_value(
        self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        {
            let mut conn = self.store.db.read().await?;
            if let Some(v) = system::kv_get(conn.as_mut(), key).await? {
                return Ok(v);
            }
        }
        let mut tx = self.store.db.begin().await?;
        let v = system::kv_get_or_insert(tx.as_mut(), key, &make()).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Stores a new API key (its hash) attributed to the account `owner`, which must hold
    /// every role of the key now (`admin` counts as holding every role).
    ///
    /// # Errors
    /// [`StoreError::Forbidden`] when the account no longer exists or lacks a role.
    pub async fn create_api_key(
        self,
        name: &str,
        key_hash: &str,
        roles: &[String],
        owner: &str,
        expires: Option<&str>,
    ) -> Result<ApiKeyRow, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let holds = |owner_roles: &[String]| {
            owner_roles.iter().any(|r| r == "admin")
                || roles.iter().all(|r| owner_roles.contains(r))
        };
        match users::by_id(tx.as_mut(), owner).await? {
            Some(user) if holds(&user.roles) => {}
            Some(_) => {
                return Err(StoreError::Forbidden {
                    anonymous: false,
                    message: "A key cannot carry roles its creator does not hold.".into(),
                });
            }
            None => {
                return Err(StoreError::Forbidden {
                    anonymous: false,
                    message: "The account creating the key no longer exists.".into(),
                });
            }
        }
        let row = api_keys::insert(tx.as_mut(), name, key_hash, roles, owner, expires).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// All API keys (without secrets).
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_api_keys(self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let mut conn = self.store.db.read().await?;
        api_keys::list(conn.as_mut()).await
    }

    /// The key with this hash, if it exists and has not expired, with the current roles of
    /// the account it belongs to.
    ///
    /// # Errors
    /// Database errors.
    pub async fn api_key_by_hash(self, key_hash: &str) -> Result<Option<ApiKeyLookup>, StoreError> {
        let mut conn = self.store.db.read().await?;
        let now = brigade_core::time::now();
        Ok(api_keys::by_hash_with_owner(conn.as_mut(), key_hash)
            .await?
            .filter(|k| k.key.expires_at.as_deref().is_none_or(|e| e > now.as_str())))
    }

    /// Revokes (deletes) a key; `false` when there was no such key.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_api_key(self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let deleted = api_keys::delete(tx.as_mut(), id).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Records that a key was used at `at`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn touch_api_key(self, id: &str, at: &str) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        api_keys::touch(tx.as_mut(), id, at).await?;
        tx.commit().await
    }

    /// Replaces a user's password hash and revokes all their refresh and access tokens,
    /// atomically.
    ///
    /// # Errors
    /// Database errors.
    pub async fn change_password(
        self,
        user_id: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        users::set_password(tx.as_mut(), user_id, password_hash).await?;
        sessions::revoke_user(tx.as_mut(), user_id).await?;
        tx.commit().await
    }

    /// Replaces a user's profile fields.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_user_profile(
        self,
        user_id: &str,
        profile: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        users::set_profile(tx.as_mut(), user_id, profile).await?;
        tx.commit().await
    }

    /// Stores a password-reset token (its hash) for a user, replacing a pending one: only
    /// the newest reset link works.
    ///
    /// # Errors
    /// Database errors.
    pub async fn create_password_reset(
        self,
        user_id: &str,
        token_hash: &str,
        expires: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        sessions::insert_reset(tx.as_mut(), user_id, token_hash, expires).await?;
        tx.commit().await
    }

    /// Spends a reset token and sets the new password in one transaction (revoking the
    /// user's refresh and access tokens). Returns the user id, or `None` for an unknown, used or
    /// expired token.
    ///
    /// # Errors
    /// Database errors.
    pub async fn reset_password(
        self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.store.db.begin().await?;
        let Some(user_id) = sessions::use_reset(tx.as_mut(), token_hash).await? else {
            return Ok(None);
        };
        users::set_password(tx.as_mut(), &user_id, password_hash).await?;
        sessions::revoke_user(tx.as_mut(), &user_id).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    /// A persistent value if set.
    ///
    /// # Errors
    /// Database errors.
    pub async fn stored_value(self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.db.read().await?;
        system::kv_get(conn.as_mut(), key).await
    }

    /// Moves the value of `key` to `previous_key` and stores `next` under `key`, atomically
    /// (key rotation).
    ///
    /// # Errors
    /// Database errors.
    pub async fn rotate_value(
        self,
        key: &str,
        previous_key: &str,
        next: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.db.begin().await?;
        if let Some(current) = system::kv_get(tx.as_mut(), key).await? {
            system::kv_set(tx.as_mut(), previous_key, &current).await?;
        }
        system::kv_set(tx.as_mut(), key, next).await?;
        tx.commit().await
    }

    /// A page of accounts (by id) and the total.
    ///
    /// # Errors
    /// Database errors.
    pub async fn list_users(
        self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<UserRow>, i64), StoreError> {
        let mut conn = self.store.db.read().await?;
        users::page(conn.as_mut(), offset, limit).await
    }

    /// Replaces a user's roles and revokes the account's access tokens (they carry the old
    /// roles). Taking any role away also revokes every API key attributed to the account;
    /// the count is returned with the updated account. Refuses to take `admin` from the
    /// last superuser.
    ///
    /// # Errors
    /// [`StoreError::RecordNotFound`] for an unknown user, [`StoreError::Conflict`] for the
    /// last superuser.
    pub async fn set_user_roles(
        self,
        id: &str,
        roles: &[String],
    ) -> Result<(UserRow, u64), StoreError> {
        let mut tx = self.store.db.begin().await?;
        let Some(user) = users::by_id(tx.as_mut(), id).await? else {
            return Err(StoreError::RecordNotFound {
                collection: "users".into(),
                id: id.into(),
            });
        };
        let admin = "admin".to_string();
        if user.roles.contains(&admin)
            && !roles.contains(&admin)
            && users::count_with_role(tx.as_mut(), "admin").await? <= 1
        {
            return Err(StoreError::conflict(
                "roles",
                "this is the last superuser; make another one first",
            ));
        }
        users::set_roles(tx.as_mut(), id, roles).await?;
        let revoked_keys = if user.roles.iter().any(|r| !roles.contains(r)) {
            api_keys::delete_by_owner(tx.as_mut(), id).await?
        } else {
            0
        };
        let updated = users::by_id(tx.as_mut(), id)
            .await?
            .ok_or_else(|| StoreError::internal("user vanished"))?;
        tx.commit().await?;
        Ok((updated, revoked_keys))
    }
}
