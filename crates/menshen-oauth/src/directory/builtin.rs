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

async fn verify_blocking(hash: String, password: &str) -> bool {
    let pw = Zeroizing::new(password.to_string());
    tokio::task::spawn_blocking(move || {
        let hash = if hash.is_empty() {
            dummy_hash().to_string()
        } else {
            hash
        };
        ControlPlane::verify_password(&hash, &pw)
    })
    .await
    .unwrap_or(false)
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
            verify_blocking(String::new(), password).await;
            return Err(LoginError::Invalid { user_id: None });
        };
        if let Some(until) = customer.locked_until.filter(|u| *u > now) {
            return Err(LoginError::Locked {
                user_id: Some(customer.user_id),
                until,
                locked_now: false,
            });
        }
        if !verify_blocking(hash, password).await {
            return Err(self.failed(&customer.user_id, now).await);
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
