//! The built-in customer directory's control-plane side (USR-1, USR-7):
//! enrolling bank customers (password hashed with argon2id, a TOTP secret
//! sealed under the master key and shown once), opening the TOTP secret to
//! check a code, checking a password, and the bank revoking a consent
//! (USR-6).
//!
//! Passwords: argon2id v19 with the `argon2` crate's default parameters
//! (m = 19 MiB, t = 2, p = 1, the OWASP minimum), a 16-byte salt from the
//! CSPRNG, stored as a PHC string; the parameters are in the string, so
//! raising them later keeps old hashes verifiable.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use menshen_crypto::totp;
use menshen_model::{Consent, ConsentState, Customer, RevokedBy, ValidationError};
use zeroize::Zeroizing;

use crate::{now_unix, ControlPlane, StoreError};

/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation).
pub const TOTP_SECRET_BYTES: usize = 20;

/// A new customer id: `C` + 26 base32 characters (128 bits from the CSPRNG).
pub fn new_customer_id() -> String {
    format!(
        "C{}",
        totp::base32_encode(&menshen_crypto::random_bytes(16))
    )
}

/// A new consent id: `CN` + 26 base32 characters (128 bits from the CSPRNG).
pub fn new_consent_id() -> String {
    format!(
        "CN{}",
        totp::base32_encode(&menshen_crypto::random_bytes(16))
    )
}

/// The sealing context of a customer's TOTP secret: a sealed secret copied
/// to another customer's row does not open.
fn totp_context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

/// Hash a password with argon2id (default parameters) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt_bytes = menshen_crypto::random_bytes(16);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| StoreError::Backend(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Backend(format!("password hash: {e}")))
}

/// Whether `password` matches the PHC string `hash` (argon2's own
/// verification, which compares in constant time). A malformed hash is a
/// mismatch.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

fn invalid(field: &str, msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(ValidationError::new(field, msg))
}

/// Check the enrolment input; each error names its field.
pub fn validate_new_customer(
    username: &str,
    display_name: &str,
    password: &str,
    accounts: &[String],
) -> Result<(), StoreError> {
    let n = username.chars().count();
    if !(3..=64).contains(&n) {
        return Err(invalid("username", "3 to 64 characters"));
    }
    if username
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(
            "username",
            "printable characters only, no spaces or control characters",
        ));
    }
    let n = display_name.trim().chars().count();
    if !(1..=128).contains(&n) || display_name.chars().any(char::is_control) {
        return Err(invalid("display_name", "1 to 128 printable characters"));
    }
    let n = password.chars().count();
    if n < 8 {
        return Err(invalid("password", "at least 8 characters"));
    }
    if n > 1024 {
        return Err(invalid("password", "at most 1024 characters"));
    }
    if accounts.is_empty() {
        return Err(invalid(
            "accounts",
            "give at least one account the customer owns",
        ));
    }
    for (i, a) in accounts.iter().enumerate() {
        if !(6..=32).contains(&a.len()) || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "accounts",
                format!("account #{}: 6 to 32 digits", i + 1),
            ));
        }
        if accounts[..i].contains(a) {
            return Err(invalid(
                "accounts",
                format!("account #{} is listed twice", i + 1),
            ));
        }
    }
    Ok(())
}

impl ControlPlane {
    /// Enrol a bank customer (USR-1) who owns `accounts`. The password is
    /// stored only as an argon2id hash; with `with_totp`, a fresh 20-byte
    /// TOTP secret is stored sealed under the master key and returned once,
    /// in base32, for the customer's authenticator app. `Conflict` on a
    /// taken username or an account that already has an owner.
    pub async fn create_customer(
        &self,
        username: &str,
        display_name: &str,
        password: &str,
        accounts: Vec<String>,
        with_totp: bool,
    ) -> Result<(Customer, Option<Zeroizing<String>>), StoreError> {
        validate_new_customer(username, display_name, password, &accounts)?;
        let pw = Zeroizing::new(password.to_string());
        // argon2id takes tens of milliseconds of CPU: off the async threads.
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        let customer = Customer {
            user_id: new_customer_id(),
            username: username.to_string(),
            display_name: display_name.trim().to_string(),
            accounts,
            has_totp: with_totp,
            locked_until: None,
        };
        let (sealed, shown) = if with_totp {
            let secret = menshen_crypto::random_bytes(TOTP_SECRET_BYTES);
            let sealed = self
                .master()
                .seal(&totp_context(&customer.user_id), &secret);
            (
                Some(sealed.into_bytes()),
                Some(Zeroizing::new(totp::base32_encode(&secret))),
            )
        } else {
            (None, None)
        };
        self.store
            .insert_customer(&customer, &hash, sealed.as_deref())
            .await?;
        Ok((customer, shown))
    }

    /// A customer's TOTP secret, opened (USR-1); `None` if not enrolled.
    pub async fn open_totp_secret(
        &self,
        user_id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let Some(sealed) = self.store.customer_totp_sealed(user_id).await? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&sealed)
            .map_err(|_| StoreError::Backend("sealed TOTP secret is not text".into()))?;
        self.master()
            .open(&totp_context(user_id), text)
            .map(Some)
            .map_err(|e| StoreError::Backend(format!("sealed TOTP secret: {e}")))
    }

    /// Whether `password` matches `hash` (see [`verify_password`]).
    pub fn verify_password(hash: &str, password: &str) -> bool {
        verify_password(hash, password)
    }

    /// The bank revokes a consent (USR-6, AUTH-6): `revoked` by `bank`,
    /// from `authorised` or `awaiting_authorisation`; `Conflict` when it is
    /// already in another state (revoked, expired, consumed, rejected). The
    /// authorization server voids the consent's tokens when it sees the
    /// state.
    pub async fn revoke_consent(
        &self,
        consent_id: &str,
        by: RevokedBy,
    ) -> Result<Consent, StoreError> {
        let mut c = self.store.get_consent(consent_id).await?;
        c.state = ConsentState::Revoked;
        c.revoked_by = Some(by);
        c.ended_at = Some(now_unix());
        self.store
            .update_consent(
                &c,
                &[
                    ConsentState::Authorised,
                    ConsentState::AwaitingAuthorisation,
                ],
            )
            .await
    }
}
