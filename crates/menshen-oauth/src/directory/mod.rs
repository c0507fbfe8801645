//! Customer directories (USR-1, USR-7): who may log in at the bank.

pub mod builtin;
pub mod https;

use async_trait::async_trait;
use menshen_model::Customer;

use crate::LoginError;

/// Checks a customer's credentials. Passwords and OTPs pass through here
/// and nowhere else; an implementation never logs them.
#[async_trait]
pub trait CustomerAuthenticator: Send + Sync {
    /// Check a username and password; the customer on success. Counts
    /// failures and locks the customer after too many (USR-7).
    async fn password(
        &self,
        username: &str,
        password: &str,
        now: i64,
    ) -> Result<Customer, LoginError>;
    /// Check a one-time password of a customer who passed
    /// [`CustomerAuthenticator::password`]. (Single use of each OTP is the
    /// authorization server's job, for every directory.)
    async fn second_factor(&self, user_id: &str, otp: &str, now: i64) -> Result<(), LoginError>;
    /// A customer by id (`None` if unknown).
    async fn customer(&self, user_id: &str) -> Result<Option<Customer>, LoginError>;
}
