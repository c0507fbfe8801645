//! The immutable view of the control plane that the hot path reads. Compiled
//! from a [`CatalogDump`] and swapped atomically ([`arc_swap`]); no request
//! ever waits on the database. A refresher task rebuilds it when the store's
//! change counter moves (local notify at once, plus a poll for other writers).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use menshen_crypto::{HmacSm3Key, MacAlg, PrivateKey, PublicKey, SecretBytes};
use menshen_model::{Api, App, CredentialKind, IpAction, LimitRule, Method, PathPattern};
use menshen_store::{CatalogDump, ControlPlane, StoreError};

/// An API as the gateway serves it.
#[derive(Debug)]
pub struct ApiEntry {
    /// The catalog entry.
    pub api: Api,
    /// Its parsed path pattern.
    pub pattern: PathPattern,
    /// Upstream base, without trailing slash.
    pub upstream_base: String,
    /// What the API's level and controls compile into (DESIGN: "a security
    /// level compiles into the set of stages").
    pub plan: crate::pipeline::StagePlan,
    /// Request headers passed upstream (CONF-5).
    pub request_headers: crate::stages::upstream::HeaderAllow,
    /// Upstream response headers passed back (CONF-5).
    pub response_headers: crate::stages::upstream::HeaderAllow,
    /// `x-menshen-api-id` and `x-menshen-u-api-id` for the upstream, built once.
    pub id_headers: (Option<http::HeaderValue>, Option<http::HeaderValue>),
    /// For a built-in endpoint of the authorization server, its name
    /// ([`crate::authorizer::BUILTIN_ENDPOINTS`]): answered by the
    /// authorizer instead of forwarded.
    pub builtin: Option<&'static str>,
    /// The query and body schemas, compiled (LVL-5); `None`: no check.
    pub schema: Option<crate::stages::validate::CompiledSchema>,
    /// Attack screening (ATK-1).
    pub screen: crate::stages::screen::ScreenPlan,
    /// Response masking (CONF-3).
    pub mask: crate::stages::mask::MaskPlan,
    /// Its API_ID as a metric label (MON-1), interned once here.
    pub metric: menshen_metrics::LabelId,
}

impl ApiEntry {
    /// The compiled entry of `api`; `None` when its stored path does not parse.
    fn compile(api: Api, builtin: Option<&'static str>) -> Option<ApiEntry> {
        let Ok(pattern) = PathPattern::parse(&api.path) else {
            tracing::warn!(api_id = %api.api_id, "stored path pattern does not parse; API skipped");
            return None;
        };
        let upstream_base = api.upstream.trim_end_matches('/').to_string();
        use crate::stages::upstream::{
            HeaderAllow, DEFAULT_REQUEST_HEADERS, DEFAULT_RESPONSE_HEADERS,
        };
        let request_headers = HeaderAllow::new(
            DEFAULT_REQUEST_HEADERS,
            &api.controls.forward_request_headers,
        );
        let response_headers = HeaderAllow::new(
            DEFAULT_RESPONSE_HEADERS,
            &api.controls.forward_response_headers,
        );
        let schema = match api
            .controls
            .schema
            .as_ref()
            .map(crate::stages::validate::CompiledSchema::compile)
        {
            None => None,
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                // Checked when saved; if it no longer compiles, the API is
                // not served rather than served unchecked (fail closed).
                tracing::error!(api_id = %api.api_id, error = %e, "stored schema does not compile; API skipped");
                return None;
            }
        };
        let screen = crate::stages::screen::ScreenPlan::compile(
            &api.controls.screening,
            &api.controls.forward_request_headers,
        );
        let mask = crate::stages::mask::MaskPlan::compile(&api.controls.response_mask, api.level);
        let mut plan = crate::pipeline::StagePlan::compile(&api);
        if builtin.is_some() {
            // Tokens and consents change here: their records are durable.
            plan.durable_record = true;
        }
        Some(ApiEntry {
            metric: menshen_metrics::intern(&api.api_id),
            plan,
            id_headers: (
                http::HeaderValue::from_str(&api.api_id).ok(),
                http::HeaderValue::from_str(&api.u_api_id).ok(),
            ),
            api,
            pattern,
            upstream_base,
            request_headers,
            response_headers,
            builtin,
            schema,
            screen,
            mask,
        })
    }
}

/// One usable App_Secret with its validity.
pub struct SecretEntry {
    /// The secret (zeroized when the snapshot is dropped).
    pub secret: SecretBytes,
    /// The same secret keyed for HMAC-SM3 once, at snapshot build (wiped on
    /// drop): `hmac-sm3` requests, the common case, skip the pads.
    pub hmac_sm3: HmacSm3Key,
    /// Valid from, unix seconds.
    pub not_before: i64,
    /// Valid until, unix seconds.
    pub not_after: Option<i64>,
}

impl SecretEntry {
    /// An entry for `secret`.
    pub fn new(secret: SecretBytes, not_before: i64, not_after: Option<i64>) -> Self {
        SecretEntry {
            hmac_sm3: HmacSm3Key::new(&secret),
            secret,
            not_before,
            not_after,
        }
    }
    /// Whether usable at `now`.
    pub fn valid_at(&self, now: i64) -> bool {
        now >= self.not_before && self.not_after.is_none_or(|t| now < t)
    }
    /// Whether `tag` is `alg`'s MAC of `data` under this secret (constant time).
    pub fn verify_mac(&self, alg: MacAlg, data: &[u8], tag: &[u8]) -> bool {
        match alg {
            MacAlg::HmacSm3 => self.hmac_sm3.verify(data, tag),
            other => other.verify(&self.secret, data, tag),
        }
    }
}

/// One registered public key with its validity (KEY-2).
pub struct KeyEntry {
    /// The key; its algorithm is fixed.
    pub key: PublicKey,
    /// Valid from, unix seconds.
    pub not_before: i64,
    /// Valid until, unix seconds.
    pub not_after: Option<i64>,
}

impl KeyEntry {
    /// Whether usable at `now`.
    pub fn valid_at(&self, now: i64) -> bool {
        now >= self.not_before && self.not_after.is_none_or(|t| now < t)
    }
}

/// The bank's response-signing key.
pub struct BankSigner {
    /// `keyid` in response signatures.
    pub key_id: String,
    /// The private key (never leaves the process).
    pub key: PrivateKey,
}

/// An application party as the gateway sees it.
pub struct AppEntry {
    /// The app.
    pub app: App,
    /// Its App_Secrets (two during a rotation overlap).
    pub secrets: Vec<SecretEntry>,
    /// Its public keys (two during a rotation overlap).
    pub keys: Vec<KeyEntry>,
    /// Fingerprints of its bound client certificates (valid now).
    pub certs: HashSet<String>,
    /// API_IDs it is granted.
    pub grants: HashSet<String>,
    /// API_IDs whose grant is approved for clearing/reconciliation: their
    /// responses reach this app unmasked (CONF-3).
    pub clearing: HashSet<String>,
    /// Its allowlist (empty: any address not blocked).
    pub allow: Vec<IpNet>,
    /// Its blocklist.
    pub deny: Vec<IpNet>,
    /// `x-menshen-app-id` for the upstream, built once.
    pub app_id_header: Option<http::HeaderValue>,
    /// Its newest live encryption key (protocol §12), for response fields.
    pub enc_key: Option<Arc<crate::stages::encrypt::AppEncKey>>,
    /// Its App_ID as a metric label (MON-1), interned once here.
    pub metric: menshen_metrics::LabelId,
}

/// The compiled view.
#[derive(Default)]
pub struct Snapshot {
    /// Store change counter this was built from.
    pub version: i64,
    routes: HashMap<Method, Vec<Arc<ApiEntry>>>,
    /// The authorization server's signed endpoints, matched before the
    /// catalog (whose APIs cannot use their paths).
    builtins: Vec<Arc<ApiEntry>>,
    apps: HashMap<String, Arc<AppEntry>>,
    /// Global blocklist.
    pub global_deny: Vec<IpNet>,
    /// Flow-control rules (TRF-1), oldest first. Their counters live in the
    /// hot state, keyed by rule id, so rebuilding the snapshot never resets
    /// one.
    pub limits: Vec<LimitRule>,
    /// Risk rules for fund movements (RSK-2), oldest first; their daily
    /// sums live in the hot state, keyed by rule id.
    pub risk_rules: Vec<menshen_model::risk::RiskRule>,
    /// Which app a client-certificate fingerprint is bound to.
    pub cert_owner: HashMap<String, String>,
    /// The bank's current response-signing key.
    pub bank_signer: Option<Arc<BankSigner>>,
    /// The bank's encryption keys by key id (protocol §12).
    pub bank_decrypt: crate::stages::decrypt::BankKeys,
    /// The bank's public keys, as published at the well-known URL.
    pub bank_keys_json: bytes::Bytes,
    /// When this snapshot was compiled (MON-1: its age).
    pub built_at: Option<std::time::Instant>,
}

impl Snapshot {
    /// Compile a dump. Secrets are opened with the master key here, once.
    pub fn compile(dump: CatalogDump, cp: &ControlPlane) -> Snapshot {
        let mut routes: HashMap<Method, Vec<Arc<ApiEntry>>> = HashMap::new();
        for api in dump.apis {
            if let Some(e) = ApiEntry::compile(api, None) {
                routes.entry(e.api.method).or_default().push(Arc::new(e));
            }
        }
        for list in routes.values_mut() {
            // Most literal segments first, so `/v1/accounts/summary` wins over
            // `/v1/accounts/{id}`.
            list.sort_by_key(|e| std::cmp::Reverse(e.pattern.specificity()));
        }
        let mut grants: HashMap<String, HashSet<String>> = HashMap::new();
        let mut clearing: HashMap<String, HashSet<String>> = HashMap::new();
        for g in dump.grants {
            if g.clearing {
                clearing
                    .entry(g.app_id.clone())
                    .or_default()
                    .insert(g.api_id.clone());
            }
            grants.entry(g.app_id).or_default().insert(g.api_id);
        }
        let mut secrets: HashMap<String, Vec<SecretEntry>> = HashMap::new();
        for c in dump
            .credentials
            .iter()
            .filter(|c| c.kind == CredentialKind::Secret)
        {
            match cp.open_secret(c) {
                Some(secret) => secrets
                    .entry(c.app_id.clone())
                    .or_default()
                    .push(SecretEntry::new(secret, c.not_before, c.not_after)),
                None => {
                    tracing::error!(app_id = %c.app_id, credential = c.id, "sealed App_Secret does not open with this master key")
                }
            }
        }
        let mut keys: HashMap<String, Vec<KeyEntry>> = HashMap::new();
        let mut certs: HashMap<String, HashSet<String>> = HashMap::new();
        let mut cert_owner = HashMap::new();
        for c in &dump.credentials {
            match c.kind {
                CredentialKind::PublicKey => {
                    match c.public_pem.as_deref().map(PublicKey::from_spki_pem) {
                        Some(Ok(key)) => keys.entry(c.app_id.clone()).or_default().push(KeyEntry {
                            key,
                            not_before: c.not_before,
                            not_after: c.not_after,
                        }),
                        _ => {
                            tracing::error!(app_id = %c.app_id, credential = c.id, "stored public key does not parse")
                        }
                    }
                }
                CredentialKind::Certificate => {
                    if let Some(fp) = &c.fingerprint {
                        cert_owner.insert(fp.clone(), c.app_id.clone());
                        certs
                            .entry(c.app_id.clone())
                            .or_default()
                            .insert(fp.clone());
                    }
                }
                CredentialKind::Secret => {}
                CredentialKind::EncryptionKey => {}
            }
        }
        let bank_signer = dump
            .bank_keys
            .iter()
            .filter(|k| k.purpose == menshen_store::control::purpose::RESPONSE_SIGNING && !k.retired)
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
            .and_then(|k| match cp.open_bank_key(k) {
                Some(key) => Some(Arc::new(BankSigner { key_id: k.key_id.clone(), key })),
                None => {
                    tracing::error!(key_id = %k.key_id, "bank signing key does not open with this master key");
                    None
                }
            });
        let bank_decrypt = crate::stages::decrypt::BankKeys::compile(&dump.bank_keys, cp);
        let mut enc_keys = crate::stages::encrypt::app_keys(&dump.credentials);
        let published: Vec<serde_json::Value> = dump
            .bank_keys
            .iter()
            .map(|k| serde_json::json!({"key_id": k.key_id, "purpose": k.purpose, "alg": k.alg, "public_key_pem": k.public_pem, "retired": k.retired}))
            .collect();
        let bank_keys_json = bytes::Bytes::from(
            serde_json::to_vec(&serde_json::json!({ "keys": published })).unwrap_or_default(),
        );
        let mut global_deny = Vec::new();
        let mut allow: HashMap<String, Vec<IpNet>> = HashMap::new();
        let mut deny: HashMap<String, Vec<IpNet>> = HashMap::new();
        for r in dump.ip_rules {
            match (r.app_id, r.action) {
                (None, _) => global_deny.push(r.cidr),
                (Some(a), IpAction::Allow) => allow.entry(a).or_default().push(r.cidr),
                (Some(a), IpAction::Deny) => deny.entry(a).or_default().push(r.cidr),
            }
        }
        let apps = dump
            .apps
            .into_iter()
            .map(|app| {
                let id = app.app_id.clone();
                let entry = AppEntry {
                    secrets: secrets.remove(&id).unwrap_or_default(),
                    keys: keys.remove(&id).unwrap_or_default(),
                    certs: certs.remove(&id).unwrap_or_default(),
                    grants: grants.remove(&id).unwrap_or_default(),
                    clearing: clearing.remove(&id).unwrap_or_default(),
                    allow: allow.remove(&id).unwrap_or_default(),
                    deny: deny.remove(&id).unwrap_or_default(),
                    app_id_header: http::HeaderValue::from_str(&id).ok(),
                    enc_key: enc_keys.remove(&id),
                    metric: menshen_metrics::intern(&id),
                    app,
                };
                (id, Arc::new(entry))
            })
            .collect();
        let builtins = crate::authorizer::BUILTIN_ENDPOINTS
            .iter()
            .filter_map(|(name, m, p)| {
                ApiEntry::compile(crate::authorizer::builtin_api(name, *m, p), Some(*name))
            })
            .map(Arc::new)
            .collect();
        Snapshot {
            version: dump.version,
            routes,
            builtins,
            apps,
            global_deny,
            limits: dump.limit_rules,
            risk_rules: dump.risk_rules,
            cert_owner,
            bank_signer,
            bank_decrypt,
            bank_keys_json,
            built_at: Some(std::time::Instant::now()),
        }
    }

    /// The API serving `method` and `path`, if any.
    pub fn route(&self, method: Method, path: &str) -> Option<&Arc<ApiEntry>> {
        if path.starts_with("/oauth2/") {
            return self
                .builtins
                .iter()
                .find(|e| e.api.method == method && e.pattern.matches(path));
        }
        self.routes
            .get(&method)?
            .iter()
            .find(|e| e.pattern.matches(path))
    }

    /// Every app, by App_ID.
    pub fn apps(&self) -> impl Iterator<Item = &Arc<AppEntry>> {
        self.apps.values()
    }

    /// An app by App_ID.
    pub fn app(&self, app_id: &str) -> Option<&Arc<AppEntry>> {
        self.apps.get(app_id)
    }
}

/// Whether `ip` is inside any of `nets` (IPv4-mapped IPv6 is treated as IPv4).
pub fn ip_in(nets: &[IpNet], ip: IpAddr) -> bool {
    // AUTH-5: an IPv4 client may appear as `::ffff:a.b.c.d` (dual-stack
    // listener) and a rule may be written either way; an address matches a
    // rule in its IPv4 form or in its IPv4-mapped IPv6 form.
    let ip = canonical_ip(ip);
    match ip {
        IpAddr::V4(v4) => {
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            nets.iter().any(|n| match n {
                IpNet::V4(_) => n.contains(&ip),
                IpNet::V6(_) => n.contains(&mapped),
            })
        }
        v6 => nets.iter().any(|n| n.contains(&v6)),
    }
}

/// An address in its canonical form: IPv4-mapped IPv6 (`::ffff:a.b.c.d`)
/// becomes IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The current snapshot, swappable.
#[derive(Clone)]
pub struct SnapshotHandle {
    inner: Arc<ArcSwap<Snapshot>>,
    /// Serializes rebuilds so an older dump never replaces a newer snapshot.
    rebuild: Arc<tokio::sync::Mutex<()>>,
}

impl SnapshotHandle {
    /// Build the first snapshot from the store.
    pub async fn load(cp: &ControlPlane) -> Result<Self, StoreError> {
        let dump = cp.store.dump_catalog().await?;
        Ok(SnapshotHandle {
            inner: Arc::new(ArcSwap::from_pointee(Snapshot::compile(dump, cp))),
            rebuild: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The current snapshot (lock-free).
    pub fn current(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.inner.load()
    }

    /// Rebuild from the store now.
    pub async fn refresh(&self, cp: &ControlPlane) -> Result<(), StoreError> {
        let _one_at_a_time = self.rebuild.lock().await;
        let dump = cp.store.dump_catalog().await?;
        if dump.version > self.inner.load().version {
            let v = dump.version;
            self.inner.store(Arc::new(Snapshot::compile(dump, cp)));
            tracing::debug!(version = v, "snapshot rebuilt");
        }
        Ok(())
    }

    /// Keep the snapshot current until `shutdown` fires: rebuild at once on a
    /// local change, and poll every `every` for changes by other processes.
    pub fn spawn_refresher(
        &self,
        cp: ControlPlane,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let mut changes = cp.store.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    r = changes.changed() => { if r.is_err() { break; } }
                    _ = tick.tick() => {
                        match cp.store.version().await {
                            Ok(v) if v == me.inner.load().version => continue,
                            Ok(_) => {}
                            Err(e) => { tracing::warn!(error = %e, "store version poll failed"); continue; }
                        }
                    }
                }
                if let Err(e) = me.refresh(&cp).await {
                    tracing::warn!(error = %e, "snapshot rebuild failed; serving the previous one");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_5_a_rule_means_the_same_address_whichever_way_it_is_written() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        for rule in [
            "127.0.0.1/32",
            "::ffff:127.0.0.1/128",
            "::/0",
            "0.0.0.0/0",
            "::ffff:0:0/96",
        ] {
            let nets: Vec<IpNet> = vec![rule.parse().unwrap()];
            assert!(ip_in(&nets, v4), "{rule} should match 127.0.0.1");
            assert!(ip_in(&nets, mapped), "{rule} should match ::ffff:127.0.0.1");
        }
        let other: Vec<IpNet> = vec!["::ffff:127.0.0.2/128".parse().unwrap()];
        assert!(!ip_in(&other, v4));
        let v6only: Vec<IpNet> = vec!["2001:db8::/32".parse().unwrap()];
        assert!(!ip_in(&v6only, v4));
        assert!(ip_in(&v6only, "2001:db8::7".parse().unwrap()));
        // 0.0.0.0/0 is IPv4 only.
        let any4: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap()];
        assert!(!ip_in(&any4, "2001:db8::7".parse().unwrap()));
        assert_eq!(canonical_ip(mapped), v4);
    }
}
