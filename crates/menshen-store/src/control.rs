//! Control-plane operations that need more than one table or a key: issuing
//! App_IDs and App_Secrets (sealed before they reach the store), assigning
//! U_API_IDs, rotating secrets.

use std::sync::Arc;

use menshen_crypto::{generate_app_secret, MasterKey, SecretBytes};
use menshen_model::{
    uapi, Api, App, AppStatus, CredentialKind, Integration, Lifecycle, NewApi, NewApp, UApiId,
    UApiType, ValidationError,
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
        }
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
            contact: new.contact.clone(),
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
