//! Credentials bound to an App_ID (AUTH-1).

use serde::{Deserialize, Serialize};

str_enum!(
    /// Kind of a credential bound to an App_ID (AUTH-1). `encryption_key`
    /// is an SM2 public key the gateway encrypts response fields for
    /// (CONF-2); it never verifies a signature (KEY-1).
    CredentialKind { Secret = "secret", PublicKey = "public_key", Certificate = "certificate", EncryptionKey = "encryption_key" }
);
