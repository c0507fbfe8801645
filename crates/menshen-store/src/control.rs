//! Control-plane operations that need more than one table or a key: issuing
//! App_IDs and App_Secrets (sealed before they reach the store), assigning
//! U_API_IDs, rotating secrets.

use std::sync::Arc;

use menshen_crypto::{generate_app_secret, MasterKey, PrivateKey, PublicKey, SecretBytes, SigAlg};
use menshen_model::{
    uapi, Api, App, AppStatus, AuthMethod, CredentialKind, Integration, Level, LevelProfile,
    Lifecycle, NewApi, NewApp, UApiId, UApiType, ValidationError,
};
use zeroize::Zeroizing;

use crate::{now_rfc3339, now_unix, CredentialRecord, Store, StoreError};

/// How this bank's U_API_IDs are made (UID-1).
#[derive(Debug, Clone)]
pub struct UApiConfig {
    /// `0P` (default) or `OP`.
    pub prefix: String,
    /// First 6 characters of the bank's JR/T 0124 institution code.
    pub institution: String,
}

impl UApiConfig {
    /// Check both fields.
    pub fn validate(&self) -> Result<(), ValidationError> {
        uapi::validate_prefix(&self.prefix)
            .map_err(|e| ValidationError::new("uapi.prefix", e.reason))?;
        uapi::validate_institution(&self.institution)
            .map_err(|e| ValidationError::new("uapi.institution", e.reason))?;
        Ok(())
    }
}

/// An app just created: the App_Secret is here once and nowhere else.
#[derive(Debug)]
pub struct CreatedApp {
    /// The app.
    pub app: App,
    /// The App_Secret in clear, to show the operator once.
    pub app_secret: Zeroizing<String>,
}

/// The control plane: store plus master key plus U_API_ID settings.
#[derive(Clone)]
pub struct ControlPlane {
    /// The store.
    pub store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    uapi: UApiConfig,
    profile: LevelProfile,
}

/// Purposes of bank keys; each purpose has its own key (KEY-1).
pub mod purpose {
    /// Signs responses to application parties.
    pub const RESPONSE_SIGNING: &str = "response-signing";
    /// Receives digital envelopes (SM2 encryption of session keys).
    pub const ENCRYPTION: &str = "encryption";
    /// Signs audit checkpoints.
    pub const AUDIT: &str = "audit";
}

fn new_app_id() -> String {
    format!("app_{}", hex_lower(&menshen_crypto::random_bytes(10)))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl ControlPlane {
    /// Build one.
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, uapi: UApiConfig) -> Self {
        ControlPlane {
            store,
            master,
            uapi,
            profile: LevelProfile::ThreeLevel,
        }
    }

    /// Use a level profile (LVL-2).
    pub fn with_profile(mut self, profile: LevelProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Register an app's public key (AUTH-1, KEY-2): the algorithm is fixed by
    /// the key; at most two keys are active at once, so the app can rotate.
    pub async fn add_public_key(
        &self,
        app_id: &str,
        pem: &str,
        not_before: Option<i64>,
        not_after: Option<i64>,
    ) -> Result<CredentialRecord, StoreError> {
        let app = self.store.get_app(app_id).await?;
        if app.status == AppStatus::Exited {
            return Err(StoreError::Conflict(ValidationError::new(
                "app_id",
                "the app has exited",
            )));
        }
        let pk = PublicKey::from_spki_pem(pem).map_err(|e| {
            StoreError::Invalid(ValidationError::new(
                "public_key_pem",
                format!("{e}; give a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an SM2, P-256, Ed25519 or RSA (>= 2048 bits) key"),
            ))
        })?;
        let now = now_unix();
        let nb = not_before.unwrap_or(now);
        if let Some(na) = not_after {
            if na <= nb {
                return Err(StoreError::Invalid(ValidationError::new(
                    "not_after",
                    "must be later than not_before",
                )));
            }
        }
        let fp = pk.fingerprint();
        if let Some(other) = self.store.find_credential_by_fingerprint(&fp).await? {
            return Err(StoreError::Conflict(ValidationError::new(
                "public_key_pem",
                if other.app_id == app_id {
                    "this key is already registered for the app"
                } else {
                    "this key is registered to another app"
                },
            )));
        }
        let active = self
            .store
            .list_credentials(app_id)
            .await?
            .into_iter()
            .filter(|c| {
                c.kind == CredentialKind::PublicKey
                    && !c.revoked
                    && c.not_after.is_none_or(|t| t > now)
            })
            .count();
        if active >= 2 {
            return Err(StoreError::Conflict(ValidationError::new(
                "public_key_pem",
                "the app already has two active keys; revoke one first (two keys allow a rotation overlap)",
            )));
        }
        self.store
            .add_credential(&CredentialRecord {
                id: 0,
                app_id: app_id.to_string(),
                kind: CredentialKind::PublicKey,
                sealed_secret: None,
                public_pem: Some(pk.to_pem()),
                alg: Some(pk.alg().name().to_string()),
                not_before: nb,
                not_after,
                revoked: false,
                fingerprint: Some(fp),
                subject: None,
                created_at: now_rfc3339(),
            })
            .await
    }

    /// Register an app's SM2 **encryption** key (CONF-2, KEY-1; protocol
    /// §12.5): the gateway wraps response session keys for it. Never used to
    /// verify a signature; a key registered to any app for any use (a
    /// signing key included) is refused by its fingerprint, so one key is
    /// never both. At most two active, for a rotation overlap.
    pub async fn add_encryption_key(
        &self,
        app_id: &str,
        pem: &str,
        not_after: Option<i64>,
    ) -> Result<CredentialRecord, StoreError> {
        let app = self.store.get_app(app_id).await?;
        if app.status == AppStatus::Exited {
            return Err(StoreError::Conflict(ValidationError::new(
                "app_id",
                "the app has exited",
            )));
        }
        let invalid = |m: String| StoreError::Invalid(ValidationError::new("public_key_pem", m));
        let pk = PublicKey::from_spki_pem(pem)
            .map_err(|e| invalid(format!("{e}; give a PEM `PUBLIC KEY` of an SM2 key")))?;
        if pk.alg() != SigAlg::Sm2Sm3 {
            return Err(invalid(
                "an encryption key must be an SM2 key (GB/T 32918.4)".into(),
            ));
        }
        let now = now_unix();
        if not_after.is_some_and(|na| na <= now) {
            return Err(StoreError::Invalid(ValidationError::new(
                "not_after",
                "must be in the future",
            )));
        }
        let fp = pk.fingerprint();
        if let Some(other) = self.store.find_credential_by_fingerprint(&fp).await? {
            return Err(StoreError::Conflict(ValidationError::new(
                "public_key_pem",
                if other.app_id == app_id {
                    "this key is already registered for the app (a signing key cannot also be the encryption key: KEY-1)"
                } else {
                    "this key is registered to another app"
                },
            )));
        }
        let active = self
            .store
            .list_credentials(app_id)
            .await?
            .into_iter()
            .filter(|c| {
                c.kind == CredentialKind::EncryptionKey
                    && !c.revoked
                    && c.not_after.is_none_or(|t| t > now)
            })
            .count();
        if active >= 2 {
            return Err(StoreError::Conflict(ValidationError::new(
                "public_key_pem",
                "the app already has two active encryption keys; revoke one first",
            )));
        }
        self.store
            .add_credential(&CredentialRecord {
                id: 0,
                app_id: app_id.to_string(),
                kind: CredentialKind::EncryptionKey,
                sealed_secret: None,
                public_pem: Some(pk.to_pem()),
                alg: Some("sm2-encryption".to_string()),
                not_before: now,
                not_after,
                revoked: false,
                fingerprint: Some(fp),
                subject: None,
                created_at: now_rfc3339(),
            })
            .await
    }

    /// Bind a client certificate to an app (AUTH-1 "App_ID + certificate"):
    /// mutual-TLS connections presenting it are that app's.
    pub async fn add_certificate(
        &self,
        app_id: &str,
        pem: &str,
    ) -> Result<CredentialRecord, StoreError> {
        use x509_cert::der::{DecodePem, Encode};
        let invalid = |m: String| StoreError::Invalid(ValidationError::new("certificate_pem", m));
        self.store.get_app(app_id).await?;
        let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes())
            .map_err(|e| invalid(format!("not a PEM X.509 certificate: {e}")))?;
        let der = cert.to_der().map_err(|e| invalid(e.to_string()))?;
        let fp = hex::encode(menshen_crypto::sha256(&der));
        let v = &cert.tbs_certificate.validity;
        let nb = v.not_before.to_unix_duration().as_secs() as i64;
        let na = v.not_after.to_unix_duration().as_secs() as i64;
        if na <= now_unix() {
            return Err(invalid("the certificate has expired".into()));
        }
        if self
            .store
            .find_credential_by_fingerprint(&fp)
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(ValidationError::new(
                "certificate_pem",
                "this certificate is already bound to an app",
            )));
        }
        self.store
            .add_credential(&CredentialRecord {
                id: 0,
                app_id: app_id.to_string(),
                kind: CredentialKind::Certificate,
                sealed_secret: None,
                public_pem: Some(pem.trim().to_string()),
                alg: None,
                not_before: nb,
                not_after: Some(na),
                revoked: false,
                fingerprint: Some(fp),
                subject: Some(cert.tbs_certificate.subject.to_string()),
                created_at: now_rfc3339(),
            })
            .await
    }

    /// Grant an app an API (ONB-3), refusing a grant below the API level's
    /// minimum (LVL-3, LVL-4): A2/A3 need a server app holding a key pair or
    /// a bound certificate.
    pub async fn add_grant(
        &self,
        app_id: &str,
        api_id: &str,
    ) -> Result<menshen_model::Grant, StoreError> {
        let app = self.store.get_app(app_id).await.map_err(|_| {
            StoreError::Invalid(ValidationError::new("app_id", format!("no app `{app_id}`")))
        })?;
        let api = self.store.get_api(api_id).await.map_err(|_| {
            StoreError::Invalid(ValidationError::new("api_id", format!("no API `{api_id}`")))
        })?;
        if api.level > Level::A1 {
            if app.kind == menshen_model::AppKind::Mobile {
                return Err(StoreError::Invalid(ValidationError::new(
                    "app_id",
                    format!(
                        "mobile apps may be granted only A1 APIs; `{api_id}` is {} (LVL-4)",
                        api.level.as_str()
                    ),
                )));
            }
            let now = now_unix();
            let creds = self.store.list_credentials(app_id).await?;
            let strong = creds.iter().any(|c| {
                !c.revoked
                    && c.not_after.is_none_or(|t| t > now)
                    && match c.kind {
                        CredentialKind::PublicKey => {
                            api.controls.auth.contains(&AuthMethod::KeyPair)
                        }
                        CredentialKind::Certificate => {
                            api.controls.auth.contains(&AuthMethod::Certificate)
                        }
                        CredentialKind::Secret => false,
                        CredentialKind::EncryptionKey => false,
                    }
            });
            if !strong {
                return Err(StoreError::Invalid(ValidationError::new(
                    "api_id",
                    format!("`{api_id}` is {}: the app must first register a key pair or a client certificate (missing control: key-pair or certificate authentication)", api.level.as_str()),
                )));
            }
        }
        self.store.add_grant(app_id, api_id).await
    }

    /// Make sure the bank has a response-signing key and a separate encryption
    /// key (KEY-1), generated here and kept sealed under the master key (KEY-3).
    pub async fn ensure_bank_keys(&self) -> Result<Vec<crate::BankKeyRecord>, StoreError> {
        let mut keys = self.store.list_bank_keys().await?;
        for p in [
            purpose::RESPONSE_SIGNING,
            purpose::ENCRYPTION,
            purpose::AUDIT,
        ] {
            if keys.iter().any(|k| k.purpose == p && !k.retired) {
                continue;
            }
            let (key, pkcs8) = PrivateKey::generate(SigAlg::Sm2Sm3)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let short = match p {
                purpose::RESPONSE_SIGNING => "sig",
                purpose::ENCRYPTION => "enc",
                _ => "aud",
            };
            let key_id = format!("bank-{short}-{}", &key.public_key().fingerprint()[..12]);
            let rec = crate::BankKeyRecord {
                sealed_pkcs8: self
                    .master
                    .seal(&format!("bank-key:{key_id}"), pkcs8.as_bytes()),
                key_id,
                purpose: p.to_string(),
                alg: SigAlg::Sm2Sm3.name().to_string(),
                public_pem: key.public_key().to_pem(),
                created_at: now_rfc3339(),
                retired: false,
            };
            self.store.insert_bank_key(&rec).await?;
            keys.push(rec);
        }
        Ok(keys)
    }

    /// Open a bank encryption key's private half for SM2 decryption (§12).
    pub fn open_bank_decryption_key(
        &self,
        rec: &crate::BankKeyRecord,
    ) -> Option<menshen_crypto::Sm2DecryptionKey> {
        let pem = self
            .master
            .open(&format!("bank-key:{}", rec.key_id), &rec.sealed_pkcs8)
            .ok()?;
        let text = std::str::from_utf8(&pem).ok()?;
        menshen_crypto::Sm2DecryptionKey::from_pkcs8_pem(text).ok()
    }

    /// Open a bank key's private half.
    pub fn open_bank_key(&self, rec: &crate::BankKeyRecord) -> Option<PrivateKey> {
        let pem = self
            .master
            .open(&format!("bank-key:{}", rec.key_id), &rec.sealed_pkcs8)
            .ok()?;
        let text = std::str::from_utf8(&pem).ok()?;
        PrivateKey::from_pkcs8_pem(text).ok()
    }

    /// The master key (for opening sealed secrets when compiling snapshots).
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    fn secret_credential(&self, app_id: &str) -> (CredentialRecord, Zeroizing<String>) {
        let secret = generate_app_secret();
        let rec = CredentialRecord {
            id: 0,
            app_id: app_id.to_string(),
            kind: CredentialKind::Secret,
            sealed_secret: Some(self.master.seal(app_id, secret.as_bytes())),
            public_pem: None,
            alg: None,
            not_before: now_unix(),
            not_after: None,
            revoked: false,
            fingerprint: None,
            subject: None,
            created_at: now_rfc3339(),
        };
        (rec, secret)
    }

    /// Onboard an application party (ONB-2): a fresh immutable App_ID and an
    /// App_Secret, stored sealed, returned in clear once. No grants (ONB-3).
    pub async fn create_app(&self, new: &NewApp) -> Result<CreatedApp, StoreError> {
        new.validate()?;
        let app = App {
            app_id: new_app_id(),
            name: new.name.trim().to_string(),
            kind: new.kind,
            status: AppStatus::Active,
            require_client_cert: false,
            contact: new.contact.clone(),
            notify_url: new.notify_url.clone(),
            created_at: now_rfc3339(),
        };
        let (cred, secret) = self.secret_credential(&app.app_id);
        self.store.insert_app(&app, &[cred]).await?;
        Ok(CreatedApp {
            app,
            app_secret: secret,
        })
    }

    /// Issue a new App_Secret. The old one stays valid for `grace_secs`
    /// (0 = void at once) so the app can switch without downtime.
    pub async fn rotate_secret(
        &self,
        app_id: &str,
        grace_secs: u32,
    ) -> Result<Zeroizing<String>, StoreError> {
        let app = self.store.get_app(app_id).await?;
        if app.status == AppStatus::Exited {
            return Err(StoreError::Conflict(ValidationError::new(
                "app_id",
                "the app has exited; its credentials cannot be renewed",
            )));
        }
        let (cred, secret) = self.secret_credential(app_id);
        self.store
            .rotate_credential(&cred, now_unix() + i64::from(grace_secs))
            .await?;
        Ok(secret)
    }

    /// Open a sealed App_Secret for HMAC verification.
    pub fn open_secret(&self, cred: &CredentialRecord) -> Option<SecretBytes> {
        let sealed = cred.sealed_secret.as_deref()?;
        self.master.open(&cred.app_id, sealed).ok()
    }

    /// Add an API to the catalog (LVL-1) with a new U_API_ID (UID-2).
    pub async fn create_api(&self, new: &NewApi) -> Result<Api, StoreError> {
        new.validate()?;
        if self.profile == LevelProfile::TwoLevel && new.level == Level::A3 {
            return Err(StoreError::Invalid(ValidationError::new(
                "level",
                "this platform uses the two-level profile: use A1 or A2 (A2 covers funds movement)",
            )));
        }
        let kind = UApiType::for_level(new.level);
        // Check the parts now so a bad category is named before any write.
        UApiId::new(
            &self.uapi.prefix,
            &self.uapi.institution,
            kind,
            new.category,
            new.subcategory,
            1,
        )
        .map_err(|e| ValidationError::new(e.field, e.reason))?;
        let api = Api {
            api_id: new.api_id.clone(),
            version: new.version.clone(),
            name: new.name.clone().unwrap_or_else(|| new.api_id.clone()),
            method: new.method,
            path: new.path.clone(),
            upstream: new.upstream.trim_end_matches('/').to_string(),
            level: new.level,
            integrations: if new.integrations.is_empty() {
                vec![Integration::ServerToServer]
            } else {
                new.integrations.clone()
            },
            owner: new.owner.clone().unwrap_or_default(),
            lifecycle: new.lifecycle.unwrap_or(Lifecycle::Published),
            controls: new.resolved_controls()?,
            u_api_id: String::new(),
            created_at: now_rfc3339(),
        };
        let (prefix, inst, cat, sub) = (
            self.uapi.prefix.clone(),
            self.uapi.institution.clone(),
            new.category,
            new.subcategory,
        );
        let make = Box::new(move |seq: u32| {
            UApiId::new(&prefix, &inst, kind, cat, sub, seq)
                .map(|u| u.to_string())
                .map_err(|e| ValidationError::new(e.field, e.reason))
        });
        self.store
            .insert_api(
                &api,
                (&self.uapi.institution, kind.code(), new.category),
                make,
            )
            .await
    }
}
