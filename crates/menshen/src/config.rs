//! The node's config file (TOML). Unknown keys are refused; every error names
//! the field and the fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use menshen_gateway::GatewayConfig;
use serde::{Deserialize, Serialize};

/// Whole config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory for the SQLite store and the audit log.
    pub data_dir: PathBuf,
    /// Master key file (mode 0600). Ignored when `MENSHEN_MASTER_KEY` is set.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// This node's id in transaction serial numbers (8 hex characters); random if unset.
    #[serde(default)]
    pub node_id: Option<String>,
    /// Level profile: `three-level` (default) or `two-level` (LVL-2).
    #[serde(default)]
    pub level_profile: Option<menshen_model::LevelProfile>,
    /// U_API_ID settings.
    pub uapi: UApiSection,
    /// Data plane.
    pub gateway: GatewayConfig,
    /// Admin API.
    pub admin: AdminSection,
    /// Audit writer.
    #[serde(default)]
    pub audit: AuditSection,
    /// Customer authorization (issue 11).
    #[serde(default)]
    pub oauth: OAuthSection,
    /// Shared hot state (issue 12); absent: in-process.
    #[serde(default)]
    pub hot_state: HotStateSection,
    /// The control-plane store (issue 12); absent: SQLite in `data_dir`.
    #[serde(default)]
    pub store: StoreSection,
    /// Alerts to operators (MON-2): rules, webhooks, email.
    #[serde(default)]
    pub alerts: crate::node::alerts::AlertsConfig,
    /// Cluster-wide statistics (MON-1): how often this node publishes.
    #[serde(default)]
    pub stats: StatsSection,
    /// Tracing (issue 14 item 7): OpenTelemetry export, off by default.
    #[serde(default)]
    pub tracing: TracingSection,
}

/// `[stats]`: with `store.url` (a cluster), every node publishes its
/// statistics windows to the shared store every `publish_secs`, and the
/// admin API's `/v1/stats/...` answers the figures summed across nodes
/// (another node's calls show up at most `publish_secs` late). Each node
/// also registers its admin API URL in the node registry again every
/// `publish_secs` (a registry wiped or restored learns it again). Ignored
/// on the embedded store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsSection {
    /// Seconds between two publications (default 5, 1 to 300).
    #[serde(default = "default_publish_secs")]
    pub publish_secs: u64,
}

impl Default for StatsSection {
    fn default() -> Self {
        StatsSection {
            publish_secs: default_publish_secs(),
        }
    }
}

fn default_publish_secs() -> u64 {
    5
}

/// `[tracing]`: W3C Trace Context is always on; `[tracing.otlp]` adds
/// OpenTelemetry export of one span per call (off when absent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSection {
    /// OTLP/HTTP (protobuf) export; absent: nothing is exported.
    #[serde(default)]
    pub otlp: Option<OtlpSection>,
}

/// `[tracing.otlp]`: where and how much to export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpSection {
    /// The collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`
    /// (spans are POSTed to `/v1/traces` under it, unless the URL already
    /// ends with that path). Plain `http://`: run the collector (or an agent
    /// forwarding to it) on the host or a trusted network.
    pub endpoint: String,
    /// `service.name` of the spans (default `menshen`).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of traces exported, 0.0 to 1.0 (default 1.0), decided on the
    /// trace id, so every node keeps or drops the same traces.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// Spans waiting for export at most (default 2048); beyond it new
    /// spans are dropped, never waited for.
    #[serde(default = "default_otlp_queue")]
    pub queue: usize,
    /// One export request's timeout, milliseconds (default 5000).
    #[serde(default = "default_otlp_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_service_name() -> String {
    "menshen".into()
}
fn default_sample_ratio() -> f64 {
    1.0
}
fn default_otlp_queue() -> usize {
    2048
}
fn default_otlp_timeout_ms() -> u64 {
    5000
}

/// `[store]`: where the control-plane store (apps, credentials, APIs,
/// grants, rules, customers, consents, the audit index) lives. Without
/// `url`: the embedded SQLite file `data_dir/menshen.db`, for one node.
/// With `url = "postgres://..."`: PostgreSQL, shared by every node of a
/// cluster (each node then needs its own `node_id`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (plain TCP or a unix
    /// socket directory as `host=/run/postgresql`). No `sslmode`: see `tls`.
    #[serde(default)]
    pub url: Option<String>,
    /// Pooled connections per node (default 16; the change listener has one
    /// more).
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// TLS to PostgreSQL: `verify-full` (the certificate must chain to
    /// `ca_file` and name the url's host), `require` (encrypted, certificate
    /// not checked) or `disable`. Default: `verify-full`, or `disable` when
    /// the url's host is loopback, `localhost` or a unix socket.
    #[serde(default)]
    pub tls: Option<menshen_store::postgres::tls::PgTlsMode>,
    /// CA certificate (PEM) that issued the database server's certificate
    /// (required with `verify-full`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for certificate authentication
    /// (`hostssl ... cert` in `pg_hba.conf`); with `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert` (mode 0600).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

impl StoreSection {
    /// The TLS settings for the PostgreSQL store.
    pub fn pg_tls(&self) -> menshen_store::postgres::tls::PgTls {
        menshen_store::postgres::tls::PgTls {
            mode: self.tls,
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

/// `[hot_state]`: where nonces, one-time codes and tokens, use counters and
/// flow-control counters live (issue 12; INT-4 across nodes). One of `url`
/// (one server), `sentinel` or `cluster`; none: in this process, for one
/// node only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotStateSection {
    /// `redis://[:PASSWORD@]HOST:PORT/DB` or `rediss://...` (TLS), shared
    /// by every node.
    #[serde(default)]
    pub url: Option<String>,
    /// Redis Sentinel: `{ master = "NAME", urls = ["redis://HOST:26379",
    /// ...], db = 0 }`; the urls' scheme, user and password apply to the
    /// data nodes too.
    #[serde(default)]
    pub sentinel: Option<SentinelSection>,
    /// Redis Cluster: some of its masters, `["redis://HOST:PORT", ...]`.
    #[serde(default)]
    pub cluster: Option<Vec<String>>,
    /// Prefix of every Redis key (default `menshen:`).
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// CA certificate (PEM) of `rediss://` servers with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for `rediss://` servers that ask for one
    /// (`tls-auth-clients yes`); with `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert` (mode 0600).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// `[hot_state] sentinel`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelSection {
    /// The master's name in the sentinels' `sentinel monitor NAME ...`.
    pub master: String,
    /// The sentinels.
    pub urls: Vec<String>,
    /// The data nodes' database (default 0).
    #[serde(default)]
    pub db: i64,
}

impl HotStateSection {
    /// The Redis settings, or `None` for the in-process hot state. Errors
    /// name the field.
    pub fn redis(&self) -> anyhow::Result<Option<menshen_store::RedisHotConfig>> {
        use menshen_store::redis_hot::RedisServers;
        let servers = match (&self.url, &self.sentinel, &self.cluster) {
            (None, None, None) => {
                if self.key_prefix.is_some()
                    || self.ca_file.is_some()
                    || self.client_cert.is_some()
                    || self.client_key.is_some()
                {
                    bail!("hot_state.url: not set (nor sentinel, nor cluster), so hot_state.key_prefix / ca_file / client_cert / client_key have nothing to apply to; set url = \"redis://HOST:PORT/DB\" or remove them");
                }
                return Ok(None);
            }
            (Some(u), None, None) => RedisServers::Single(u.clone()),
            (None, Some(s), None) => RedisServers::Sentinel {
                master: s.master.clone(),
                urls: s.urls.clone(),
                db: s.db,
            },
            (None, None, Some(c)) => RedisServers::Cluster(c.clone()),
            _ => bail!("hot_state.url / hot_state.sentinel / hot_state.cluster: set exactly one (one server, a Sentinel-watched master, or a Redis Cluster)"),
        };
        let cfg = menshen_store::RedisHotConfig {
            servers,
            key_prefix: (self.key_prefix.clone())
                .unwrap_or_else(|| menshen_store::redis_hot::DEFAULT_KEY_PREFIX.into()),
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        menshen_store::redis_hot::check_config(&cfg)
            .map_err(|e| anyhow::anyhow!("hot_state.{e}"))?;
        Ok(Some(cfg))
    }
}

/// `[oauth]`: the authorization server (issue 11, `docs/authorization.md`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSection {
    /// The gateway's public https base URL (`https://api.bank.example`): the
    /// `issuer` and the base of the endpoint URLs. Default: `https://` and
    /// the first `gateway.listen` address.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `cmbc` (default: <= 300 s, one call), `zjrcb` (2 h, one live token per
    /// app and customer) or `standard` (10 min, refresh tokens).
    #[serde(default)]
    pub token_profile: Option<menshen_model::TokenProfile>,
    /// Failed logins in a row before a customer is locked (default 5).
    #[serde(default)]
    pub lock_after: Option<u32>,
    /// How long a lock lasts, seconds (default 900).
    #[serde(default)]
    pub lock_secs: Option<i64>,
    /// `[oauth.directory]`: the bank's own identity service for customer
    /// logins (USR-1; the JSON contract is in `menshen-oauth`'s docs).
    /// Absent: the built-in customer directory of the store.
    #[serde(default)]
    pub directory: Option<DirectorySection>,
}

/// `[oauth.directory]`: customer logins checked by the bank's identity
/// service over HTTPS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySection {
    /// Base URL, `https://...`.
    pub url: String,
    /// CA certificate (PEM) that issued the service's certificate.
    pub ca_file: PathBuf,
    /// File holding the bearer token the service expects (mode 0600), if any.
    #[serde(default)]
    pub service_token_file: Option<PathBuf>,
    /// Whole-exchange timeout, milliseconds (default 5000); a login fails
    /// closed past it.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// `[uapi]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UApiSection {
    /// `0P` (default) or `OP`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// First 6 characters of the bank's JR/T 0124 institution code.
    pub institution: String,
}

fn default_prefix() -> String {
    "0P".into()
}

/// `[admin]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the admin API (keep it on a management network or loopback).
    pub listen: SocketAddr,
    /// Serve the admin API over TLS (`[admin.tls]`: `cert`, `key`).
    #[serde(default)]
    pub tls: Option<AdminTls>,
    /// ADM-1: a non-loopback `listen` without `[admin.tls]` is refused at
    /// start-up unless this is `true` (e.g. behind a TLS-terminating proxy
    /// on a management network); the admin token would cross the network
    /// in clear.
    #[serde(default)]
    pub allow_plaintext_non_loopback: bool,
    /// TLS handshake and each request head must arrive within this (ms);
    /// also closes a keep-alive connection that sends no next request.
    #[serde(default = "default_admin_header_ms")]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight is closed after this (ms); a
    /// request body must arrive within it.
    #[serde(default = "default_admin_idle_ms")]
    pub idle_timeout_ms: u64,
    /// The store must answer an admin token look-up, and a read (GET) must
    /// be served, within this (ms); else 503 `STORE_UNAVAILABLE`, so a
    /// database that accepts connections but never answers does not hold
    /// requests open. Changes past their token wait for the store's answer
    /// (their outcome and audit record must be known).
    #[serde(default = "default_admin_store_ms")]
    pub store_timeout_ms: u64,
    /// SHA-256 (64 hex characters) of a read-only scrape token for
    /// `/metrics` (MON-1), e.g. `printf %s "$TOKEN" | sha256sum`. The token
    /// opens `/metrics` only; an admin token opens it too.
    #[serde(default)]
    pub metrics_token_sha256: Option<String>,
    /// The URL other nodes reach this admin API at (issue 12 item 8: a
    /// search on any node shows the bodies of this node's audit records by
    /// fetching them from here). Default: `http(s)://` and the bound
    /// `listen` address (not usable when it is 0.0.0.0 or [::]).
    #[serde(default)]
    pub advertise_url: Option<String>,
    /// CA certificate (PEM) that signed the other nodes' admin API
    /// certificates, for fetching their audit records over https.
    #[serde(default)]
    pub peer_ca_file: Option<PathBuf>,
}

impl Default for AdminSection {
    /// Loopback port 9080, plain HTTP, default timeouts.
    fn default() -> Self {
        AdminSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 9080)),
            tls: None,
            allow_plaintext_non_loopback: false,
            header_read_timeout_ms: default_admin_header_ms(),
            idle_timeout_ms: default_admin_idle_ms(),
            store_timeout_ms: default_admin_store_ms(),
            metrics_token_sha256: None,
            advertise_url: None,
            peer_ca_file: None,
        }
    }
}

impl AdminSection {
    /// ADM-1: refuse a plain-HTTP admin API on a non-loopback address unless
    /// explicitly allowed; the error names the settings and the fix. `true`
    /// when it is allowed that way (the node then warns at start-up).
    pub fn check_exposure(&self) -> anyhow::Result<bool> {
        if self.listen.ip().is_loopback() || self.tls.is_some() {
            return Ok(false);
        }
        if self.allow_plaintext_non_loopback {
            return Ok(true);
        }
        bail!(
            "admin.listen: {} is not a loopback address and admin.tls is not configured, so admin tokens would cross the network in clear; \
             configure [admin.tls] cert = \"...\" and key = \"...\", or listen on 127.0.0.1 / [::1], \
             or (behind a TLS-terminating proxy on a management network) set admin.allow_plaintext_non_loopback = true",
            self.listen
        )
    }
}

/// `[admin.tls]`: the admin API's certificate chain and private key (PEM).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    /// Certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key (PEM, PKCS#8 / SEC1 / PKCS#1).
    pub key: PathBuf,
}

fn default_admin_header_ms() -> u64 {
    10_000
}
fn default_admin_idle_ms() -> u64 {
    60_000
}
fn default_admin_store_ms() -> u64 {
    30_000
}

/// `[audit]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Records queued before callers wait (back-pressure).
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Rotate the active segment at this size (MiB).
    #[serde(default = "default_segment_mb")]
    pub segment_max_mb: u64,
    /// Rotate the active segment at this age (hours).
    #[serde(default = "default_segment_hours")]
    pub segment_max_hours: u64,
    /// Compress closed segments (zstd).
    #[serde(default = "default_true")]
    pub compress: bool,
    /// `menshen audit archive` moves closed segments older than this to `archive/`.
    #[serde(default = "default_archive_days")]
    pub archive_after_days: u32,
    /// Nothing is deleted before this many days (AUD-2: at least a year).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            queue: default_queue(),
            segment_max_mb: default_segment_mb(),
            segment_max_hours: default_segment_hours(),
            compress: true,
            archive_after_days: default_archive_days(),
            retention_days: default_retention_days(),
        }
    }
}

fn default_segment_mb() -> u64 {
    64
}
fn default_segment_hours() -> u64 {
    24
}
fn default_true() -> bool {
    true
}
fn default_archive_days() -> u32 {
    30
}
fn default_retention_days() -> u32 {
    400
}

fn default_queue() -> usize {
    65_536
}

impl Config {
    /// Read and validate a config file. Relative paths are taken relative to
    /// the file's directory.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut c: Config = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "config file {}: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut c.data_dir);
        if let Some(p) = c.master_key_file.as_mut() {
            abs(p);
        }
        abs(&mut c.gateway.tls_cert);
        abs(&mut c.gateway.tls_key);
        if let Some(p) = c.gateway.upstream_ca.as_mut() {
            abs(p);
        }
        if let Some(p) = c.admin.peer_ca_file.as_mut() {
            abs(p);
        }
        if let Some(t) = c.admin.tls.as_mut() {
            abs(&mut t.cert);
            abs(&mut t.key);
        }
        for p in [
            &mut c.hot_state.ca_file,
            &mut c.hot_state.client_cert,
            &mut c.hot_state.client_key,
            &mut c.store.ca_file,
            &mut c.store.client_cert,
            &mut c.store.client_key,
        ]
        .into_iter()
        .flatten()
        {
            abs(p);
        }
        if let Some(d) = c.oauth.directory.as_mut() {
            abs(&mut d.ca_file);
            if let Some(f) = d.service_token_file.as_mut() {
                abs(f);
            }
        }
        c.validate()
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        Ok(c)
    }

    /// Check values; names the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.gateway.validate().map_err(anyhow::Error::msg)?;
        menshen_store::UApiConfig {
            prefix: self.uapi.prefix.clone(),
            institution: self.uapi.institution.clone(),
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(n) = &self.node_id {
            if n.len() != 8 || !n.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("node_id: must be 8 hex characters, e.g. \"0a1b2c3d\" (or leave it out for a random one)");
            }
        }
        if self.admin.header_read_timeout_ms == 0 || self.admin.idle_timeout_ms == 0 {
            bail!("admin.header_read_timeout_ms / admin.idle_timeout_ms: must be > 0 (defaults 10000 and 60000)");
        }
        if self.admin.store_timeout_ms == 0 {
            bail!("admin.store_timeout_ms: must be > 0 (default 30000)");
        }
        self.admin.check_exposure()?;
        if let Some(u) = &self.admin.advertise_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("admin.advertise_url: must start with http:// or https:// (e.g. \"https://node1.bank.example:9080\"): the URL other nodes reach this admin API at");
            }
        }
        self.alerts.validate()?;
        if self.audit.queue < 16 {
            bail!("audit.queue: must be at least 16");
        }
        if self.audit.segment_max_mb == 0 || self.audit.segment_max_hours == 0 {
            bail!("audit.segment_max_mb / audit.segment_max_hours: must be > 0");
        }
        if self.audit.retention_days < 366 {
            bail!("audit.retention_days: must be at least 366 (logs are kept at least a year, AUD-2); default 400");
        }
        if let Some(url) = &self.store.url {
            let pg = menshen_store::postgres::check_url(url)
                .map_err(|e| anyhow::anyhow!("store.url: {e}"))?;
            self.store
                .pg_tls()
                .check(&pg)
                .map_err(|e| anyhow::anyhow!("store.{e}"))?;
            if self.node_id.is_none() {
                bail!("node_id: required with store.url (every node indexes its own audit chain under it in the shared database); set 8 hex characters, different on every node, e.g. node_id = \"0a1b2c3d\"");
            }
        } else if self.store.pool_size.is_some()
            || self.store.tls.is_some()
            || self.store.ca_file.is_some()
            || self.store.client_cert.is_some()
            || self.store.client_key.is_some()
        {
            bail!("store.url: not set, so store.pool_size / tls / ca_file / client_cert / client_key have nothing to apply to; set url = \"postgres://USER@HOST:5432/DB\" or remove them");
        }
        if self.store.pool_size == Some(0) {
            bail!("store.pool_size: must be at least 1 (default 16)");
        }
        if !(1..=300).contains(&self.stats.publish_secs) {
            bail!("stats.publish_secs: must be 1 to 300 (default 5)");
        }
        if let Some(o) = &self.tracing.otlp {
            if !o.endpoint.starts_with("http://") || o.endpoint.len() <= "http://".len() {
                bail!("tracing.otlp.endpoint: must be an http:// URL of the collector's OTLP/HTTP receiver, e.g. \"http://127.0.0.1:4318\" (https is not supported: run the collector or an agent on the host); or remove [tracing.otlp]");
            }
            if o.endpoint.parse::<http::Uri>().is_err() {
                bail!("tracing.otlp.endpoint: not a valid URL, e.g. \"http://127.0.0.1:4318\"");
            }
            if !(0.0..=1.0).contains(&o.sample_ratio) {
                bail!("tracing.otlp.sample_ratio: must be 0.0 to 1.0 (default 1.0)");
            }
            if o.service_name.trim().is_empty() {
                bail!("tracing.otlp.service_name: must not be empty (default \"menshen\")");
            }
            if o.queue == 0 || o.timeout_ms == 0 {
                bail!("tracing.otlp.queue / tracing.otlp.timeout_ms: must be > 0 (defaults 2048 and 5000)");
            }
        }
        self.hot_state.redis()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("menshen.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    const GOOD: &str = r#"
data_dir = "data"
[uapi]
institution = "C10305"
[gateway]
listen = ["127.0.0.1:8443"]
tls_cert = "tls/server.pem"
tls_key = "tls/server.key"
[admin]
listen = "127.0.0.1:9080"
"#;

    #[test]
    fn good_config_loads_with_relative_paths() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), GOOD)).unwrap();
        assert_eq!(c.data_dir, d.path().join("data"));
        assert_eq!(c.gateway.replay_window_secs, 300);
    }

    /// ADM-1: the admin section's defaults, TLS paths taken relative to the
    /// file, and an explicit opt-in for plain HTTP off loopback.
    #[test]
    fn adm_1_admin_section_defaults_tls_paths_and_plaintext_opt_in() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), GOOD)).unwrap();
        assert_eq!(c.admin.header_read_timeout_ms, 10_000);
        assert_eq!(c.admin.idle_timeout_ms, 60_000);
        assert!(c.admin.tls.is_none());
        let tls = GOOD.replace(
            "listen = \"127.0.0.1:9080\"",
            "listen = \"0.0.0.0:9080\"\n[admin.tls]\ncert = \"tls/admin.pem\"\nkey = \"tls/admin.key\"",
        );
        let c = Config::load(&write(d.path(), &tls)).unwrap();
        let t = c.admin.tls.unwrap();
        assert_eq!(t.cert, d.path().join("tls/admin.pem"));
        assert_eq!(t.key, d.path().join("tls/admin.key"));
        let opted = GOOD.replace(
            "listen = \"127.0.0.1:9080\"",
            "listen = \"0.0.0.0:9080\"\nallow_plaintext_non_loopback = true",
        );
        assert!(Config::load(&write(d.path(), &opted)).is_ok());
    }

    /// Issue 12 (INT-4 across nodes): `[hot_state]` selects Redis; absent,
    /// the hot state is in-process.
    #[test]
    fn int_4_hot_state_section_selects_redis() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), GOOD)).unwrap();
        assert!(c.hot_state.url.is_none());
        let redis = format!(
            "{GOOD}[hot_state]\nurl = \"rediss://redis.bank.example:6380/0\"\nkey_prefix = \"bank1:\"\nca_file = \"tls/redis-ca.pem\"\n"
        );
        let c = Config::load(&write(d.path(), &redis)).unwrap();
        assert_eq!(c.hot_state.key_prefix.as_deref(), Some("bank1:"));
        assert_eq!(c.hot_state.ca_file, Some(d.path().join("tls/redis-ca.pem")));
    }

    /// Issue 12 (DEP-2): `[store] url` selects PostgreSQL and needs a
    /// `node_id`; a bad URL names `store.url` and says what to write.
    #[test]
    fn dep_2_store_section_selects_postgres_and_bad_urls_name_the_field() {
        let d = tempfile::tempdir().unwrap();
        let c = Config::load(&write(d.path(), GOOD)).unwrap();
        assert!(c.store.url.is_none(), "SQLite by default");
        let with = |body: &str| {
            GOOD.replace("data_dir = \"data\"", &format!("data_dir = \"data\"\n{body}"))
                + "[store]\nurl = \"postgres://menshen@db.bank.example:5432/menshen\"\npool_size = 8\nca_file = \"tls/pg-ca.pem\"\n"
        };
        let c = Config::load(&write(d.path(), &with("node_id = \"0a000001\""))).unwrap();
        assert_eq!(c.store.pool_size, Some(8));
        assert_eq!(c.store.ca_file, Some(d.path().join("tls/pg-ca.pem")));
        let e = Config::load(&write(d.path(), &with("")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("node_id: required with store.url"), "{e}");
        for (url, says) in [
            ("mysql://db/menshen", "must start with postgres://"),
            (
                "postgres://menshen@db.bank.example:5432",
                "names no database",
            ),
            (
                "postgres://db/menshen?sslmode=require",
                "sslmode in the url is not used",
            ),
            ("postgres://db/menshen?bogus=1", "is not a PostgreSQL URL"),
        ] {
            let body = GOOD.replace(
                "data_dir = \"data\"",
                "data_dir = \"data\"\nnode_id = \"0a000001\"",
            ) + &format!("[store]\nurl = \"{url}\"\nca_file = \"ca.pem\"\n");
            let e = Config::load(&write(d.path(), &body))
                .unwrap_err()
                .to_string();
            assert!(e.contains("store.url: ") && e.contains(says), "{url}: {e}");
        }
    }

    /// DEP-2, CONF-2 (transport): `[store] tls` defaults to verify-full off
    /// loopback; every invalid combination names the field and the fix.
    #[test]
    fn dep_2_store_tls_defaults_and_invalid_combinations() {
        let d = tempfile::tempdir().unwrap();
        let body = |store: &str| {
            GOOD.replace(
                "data_dir = \"data\"",
                "data_dir = \"data\"\nnode_id = \"0a000001\"",
            ) + "[store]\n"
                + store
        };
        let c = Config::load(&write(
            d.path(),
            &body("url = \"postgres://m@db.bank.example/m\"\ntls = \"verify-full\"\nca_file = \"tls/ca.pem\"\nclient_cert = \"tls/c.pem\"\nclient_key = \"tls/c.key\"\n"),
        ))
        .unwrap();
        let tls = c.store.pg_tls();
        assert_eq!(tls.client_key, Some(d.path().join("tls/c.key")));
        assert!(Config::load(&write(
            d.path(),
            &body("url = \"postgres://m@127.0.0.1:5432/m\"\n")
        ))
        .is_ok());
        assert!(Config::load(&write(
            d.path(),
            &body("url = \"postgres://m@db.bank.example/m\"\ntls = \"disable\"\n")
        ))
        .is_ok());
        for (store, says) in [
            ("url = \"postgres://m@db.bank.example/m\"\n", "store.ca_file: required: tls is not set, so it is \"verify-full\""),
            ("url = \"postgres://m@db.bank.example/m\"\ntls = \"require\"\nca_file = \"ca.pem\"\n", "store.ca_file: set, but tls = \"require\""),
            ("url = \"postgres://m@db.bank.example/m\"\ntls = \"disable\"\nclient_cert = \"c.pem\"\nclient_key = \"c.key\"\n", "store.client_cert: set, but tls = \"disable\""),
            ("url = \"postgres://m@db.bank.example/m\"\nca_file = \"ca.pem\"\nclient_key = \"c.key\"\n", "store.client_cert: required with client_key"),
            ("url = \"postgres://m@db.bank.example/m\"\ntls = \"verify-ca\"\n", "unknown variant `verify-ca`"),
            ("tls = \"verify-full\"\n", "store.url: not set"),
        ] {
            let e = Config::load(&write(d.path(), &body(store)))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{store}: {e}");
        }
    }

    /// DEP-2: `[hot_state]` takes one server, a Sentinel-watched master or a
    /// Redis Cluster, with TLS files; wrong combinations name the field.
    #[test]
    fn dep_2_hot_state_sentinel_cluster_and_tls_settings() {
        use menshen_store::redis_hot::RedisServers;
        let d = tempfile::tempdir().unwrap();
        let with = |hot: &str| format!("{GOOD}[hot_state]\n{hot}");
        let c = Config::load(&write(
            d.path(),
            &with("sentinel = { master = \"menshen\", urls = [\"rediss://:pw@10.0.0.1:26379\", \"rediss://:pw@10.0.0.2:26379\"], db = 2 }\nca_file = \"tls/ca.pem\"\nclient_cert = \"tls/c.pem\"\nclient_key = \"tls/c.key\"\n"),
        ))
        .unwrap();
        let r = c.hot_state.redis().unwrap().unwrap();
        assert!(
            matches!(&r.servers, RedisServers::Sentinel { master, urls, db: 2 } if master == "menshen" && urls.len() == 2)
        );
        assert_eq!(r.client_cert, Some(d.path().join("tls/c.pem")));
        let c = Config::load(&write(
            d.path(),
            &with("cluster = [\"redis://10.0.0.1:6379\", \"redis://10.0.0.2:6379\"]\n"),
        ))
        .unwrap();
        assert!(
            matches!(c.hot_state.redis().unwrap().unwrap().servers, RedisServers::Cluster(u) if u.len() == 2)
        );
        for (hot, says) in [
            (
                "url = \"redis://a:6379/0\"\ncluster = [\"redis://b:6379\"]\n",
                "set exactly one",
            ),
            (
                "sentinel = { master = \"\", urls = [\"redis://a:26379\"] }\n",
                "hot_state.sentinel.master: empty",
            ),
            (
                "sentinel = { master = \"m\", urls = [] }\n",
                "hot_state.sentinel.urls: empty",
            ),
            (
                "sentinel = { master = \"m\", urls = [\"redis://a:26379/3\"] }\n",
                "hot_state.sentinel.urls: a sentinel has no databases",
            ),
            (
                "cluster = [\"redis://a:6379\", \"rediss://b:6379\"]\n",
                "hot_state.cluster: the urls differ",
            ),
            (
                "cluster = [\"redis://a:6379\"]\nkey_prefix = \"{x}\"\n",
                "hot_state.key_prefix: must not contain",
            ),
            (
                "url = \"redis://a:6379/0\"\nclient_cert = \"c.pem\"\nclient_key = \"c.key\"\n",
                "hot_state.client_cert: is set but the urls are not rediss://",
            ),
            (
                "url = \"rediss://a:6379/0\"\nclient_cert = \"c.pem\"\n",
                "hot_state.client_key: required with client_cert",
            ),
            (
                "url = \"rediss://a:6379/0#insecure\"\n",
                "#insecure turns off",
            ),
        ] {
            let e = Config::load(&write(d.path(), &with(hot)))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{hot}: {e}");
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let d = tempfile::tempdir().unwrap();
        for (edit, field) in [
            (GOOD.replace("C10305", "c1"), "uapi.institution"),
            (GOOD.replace("[admin]", "bogus = 1\n[admin]"), "bogus"),
            (
                GOOD.replace("listen = [\"127.0.0.1:8443\"]", "listen = [\"nope\"]"),
                "listen",
            ),
            (
                GOOD.replace("[gateway]", "[gateway]\nreplay_window_secs = 0"),
                "replay_window_secs",
            ),
            (
                GOOD.replace(
                    "data_dir = \"data\"",
                    "data_dir = \"data\"\nnode_id = \"xyz\"",
                ),
                "node_id",
            ),
            (
                GOOD.replace("127.0.0.1:9080", "0.0.0.0:9080"),
                "admin.allow_plaintext_non_loopback",
            ),
            (
                GOOD.replace("[admin]", "[admin]\nheader_read_timeout_ms = 0"),
                "admin.header_read_timeout_ms",
            ),
            (
                format!("{GOOD}[hot_state]\nurl = \"localhost:6379\"\n"),
                "hot_state.url",
            ),
            (
                format!("{GOOD}[hot_state]\nkey_prefix = \"bank1:\"\n"),
                "hot_state.url",
            ),
        ] {
            let e = Config::load(&write(d.path(), &edit))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}
