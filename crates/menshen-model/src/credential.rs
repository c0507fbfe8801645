//! Credentials bound to an App_ID (AUTH-1).

use serde::{Deserialize, Serialize};

str_enum!(
    /// Kind of a credential bound to an App_ID (AUTH-1).
    CredentialKind { Secret = "secret", PublicKey = "public_key", Certificate = "certificate" }
);
