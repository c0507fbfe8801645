//! The built-in customer directory: customers in the store (USR-1, USR-7).
//!
//! A password is checked with argon2id off the async threads. An unknown
//! username is checked against a dummy hash, so the answer takes as long
//! as for a known one (no username oracle). Failures are counted in the
//! store; at `lock_after` in a row the customer is locked for `lock_secs`.
//! A customer with a TOTP enrolled clears the count only with a correct
//! second factor (the authorization server asks for it at every login of
//! such a customer), so a known password does not buy unlimited OTP
//! guesses.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use menshen_model::Customer;
use menshen_store::{ControlPlane, StoreError};
use zeroize::Zeroizing;

use super::CustomerAuthenticator;
use crate::LoginError;

/// Customers in the store.
#[derive(Clone)]
pub struct BuiltinDirectory {
    cp: ControlPlane,
    lock_after: u32,
    lock_secs: i64,
}

fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| {
        let pw = menshen_crypto::random_token(16);
        menshen_store::hash_password(&pw).unwrap_or_default()
    })
}

/// Password checks running at once, at most (about one per core): each is
/// an argon2id run of ~19 MiB and tens of milliseconds of CPU, so an
/// unauthenticated flood of login posts must queue here, bounded, instead
/// of filling the blocking pool the store and the audit index share.
const HASHES_AT_ONCE: usize = 2;
/// How long a login waits for a turn before it is answered "try later".
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn hash_permits() -> &'static tokio::sync::Semaphore {
    static S: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    S.get_or_init(|| tokio::sync::Semaphore::new(HASHES_AT_ONCE))
}

/// `None` when no turn came within [`HASH_WAIT`] (the login fails closed as
/// unavailable, nothing counted against the customer).
async fn verify_blocking(hash: String, password: &str) -> Option<bool> {
    let permit = tokio::time::timeout(HASH_WAIT, hash_permits().acquire())
        .await
        .ok()?
        .ok()?;
    let pw = Zeroizing::new(password.to_string());
    let ok = tokio::task::spawn_blocking(move || {
        let hash = if hash.is_empty() {
            dummy_hash().to_string()
        } else {
            hash
        };
        ControlPlane::verify_password(&hash, &pw)
    })
    .await
    .unwrap_or(false);
    drop(permit);
    Some(ok)
}

impl BuiltinDirectory {
    /// Over the control plane, locking after `lock_after` failures in a
    /// row for `lock_secs` (`OAuthConfig::lock_after`, `lock_secs`).
    pub fn new(cp: ControlPlane, lock_after: u32, lock_secs: i64) -> Arc<Self> {
        Arc::new(BuiltinDirectory {
            cp,
            lock_after: lock_after.max(1),
            lock_secs: lock_secs.max(1),
        })
    }

    async fn failed(&self, user_id: &str, now: i64) -> LoginError {
        match self
            .cp
            .store
            .record_login_failure(user_id, now, self.lock_after, self.lock_secs)
            .await
        {
            Ok(c) => match c.locked_until {
                Some(until) if until > now => {
                    tracing::warn!(
                        user_id,
                        until,
                        "customer locked after repeated login failures"
                    );
                    LoginError::Locked {
                        user_id: Some(user_id.to_string()),
                        until,
                        locked_now: true,
                    }
                }
                _ => LoginError::Invalid {
                    user_id: Some(user_id.to_string()),
                },
            },
            Err(e) => LoginError::Unavailable(e.to_string()),
        }
    }
}

#[async_trait]
impl CustomerAuthenticator for BuiltinDirectory {
    async fn password(
        &self,
        username: &str,
        password: &str,
        now: i64,
    ) -> Result<Customer, LoginError> {
        if username.is_empty() || username.len() > 256 || password.len() > 1024 {
            return Err(LoginError::Invalid { user_id: None });
        }
        let found = self.cp.store.find_customer_login(username).await?;
        let Some((customer, hash, _)) = found else {
            // Same work as a real check.
            if verify_blocking(String::new(), password).await.is_none() {
                return Err(LoginError::Unavailable("password checks busy".into()));
            }
            return Err(LoginError::Invalid { user_id: None });
        };
        if let Some(until) = customer.locked_until.filter(|u| *u > now) {
            return Err(LoginError::Locked {
                user_id: Some(customer.user_id),
                until,
                locked_now: false,
            });
        }
        match verify_blocking(hash, password).await {
            None => return Err(LoginError::Unavailable("password checks busy".into())),
            Some(false) => return Err(self.failed(&customer.user_id, now).await),
            Some(true) => {}
        }
        if !customer.has_totp {
            self.cp
                .store
                .clear_login_failures(&customer.user_id)
                .await?;
        }
        Ok(customer)
    }

    async fn second_factor(&self, user_id: &str, otp: &str, now: i64) -> Result<(), LoginError> {
        let customer = match self.cp.store.get_customer(user_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => return Err(LoginError::Invalid { user_id: None }),
            Err(e) => return Err(e.into()),
        };
        if let Some(until) = customer.locked_until.filter(|u| *u > now) {
            return Err(LoginError::Locked {
                user_id: Some(customer.user_id),
                until,
                locked_now: false,
            });
        }
        let Some(secret) = self.cp.open_totp_secret(user_id).await? else {
            return Err(LoginError::NoSecondFactor);
        };
        if menshen_crypto::totp::totp_verify(&secret, otp, now, 1).is_none() {
            return Err(self.failed(user_id, now).await);
        }
        self.cp.store.clear_login_failures(user_id).await?;
        Ok(())
    }

    async fn customer(&self, user_id: &str) -> Result<Option<Customer>, LoginError> {
        match self.cp.store.get_customer(user_id).await {
            Ok(c) => Ok(Some(c)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod hash_bound_tests {
    use super::*;

    /// USR-7 under a login flood: with every password-check turn taken, a
    /// login waits at most `HASH_WAIT` and is refused as unavailable, never
    /// queued without bound on the shared blocking pool.
    #[tokio::test]
    async fn usr_7_password_checks_are_bounded_and_a_login_past_the_bound_is_refused() {
        let held = hash_permits()
            .acquire_many(HASHES_AT_ONCE as u32)
            .await
            .unwrap();
        let t = std::time::Instant::now();
        assert_eq!(verify_blocking(String::new(), "pw").await, None);
        assert!(t.elapsed() >= HASH_WAIT);
        drop(held);
        assert_eq!(verify_blocking(String::new(), "pw").await, Some(false));
    }
}
