//! Command-line interface: clap definitions and the commands that talk to the
//! admin API, sign calls, and decode U_API_IDs.

use std::path::PathBuf;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http::{HeaderValue, Request};
use menshen_crypto::MacAlg;
use menshen_model::{UApiId, UApiType};
use menshen_sdk::{Credentials, SignOptions};
use serde_json::{json, Value};

/// Menshen (门神): the open-banking API security gateway.
#[derive(Parser, Debug)]
#[command(
    name = "menshen",
    version,
    about,
    long_about = "Menshen (门神) sits between the internet and a bank's business systems and \
exposes APIs to application parties (应用方) as JR/T 0185-2020 requires: signed and replay-protected calls, \
App_ID/App_Secret credentials, least-privilege grants, IP lists, a \"service terminated\" tombstone, and an \
access record for every call."
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Admin API connection options.
#[derive(Args, Debug, Clone)]
pub struct AdminConn {
    /// Admin API base URL.
    #[arg(
        long,
        env = "MENSHEN_ADMIN_URL",
        default_value = "http://127.0.0.1:9080",
        global = true
    )]
    pub admin_url: String,
    /// File holding the admin token (from `menshen admin init`).
    #[arg(long, env = "MENSHEN_ADMIN_TOKEN_FILE", global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// Print raw JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node (gateway + admin API) from a config file.
    Serve {
        /// Config file (TOML).
        #[arg(long, short, env = "MENSHEN_CONFIG")]
        config: PathBuf,
    },
    /// Start a complete demo: gateway, admin API, demo bank upstream, demo app; writes DIR/demo.json.
    Demo {
        /// Directory for the demo's state (reset if it holds a previous demo).
        #[arg(long, default_value = "./menshen-demo")]
        dir: PathBuf,
        /// Gateway port (0 = any free port).
        #[arg(long, default_value_t = 8443)]
        gateway_port: u16,
        /// Admin API port (0 = any free port).
        #[arg(long, default_value_t = 9080)]
        admin_port: u16,
        /// Benchmarking only: answer A2/A3 calls before their access record
        /// is on disk (breaks DEP-2, RPO 0). bench/run.sh compares it with
        /// the durable default.
        #[arg(long, hide = true)]
        unsafe_async_audit: bool,
    },
    /// Administration of the node itself.
    Admin {
        /// What to do.
        #[command(subcommand)]
        cmd: AdminCmd,
    },
    /// Application parties (应用方).
    App {
        /// What to do.
        #[command(subcommand)]
        cmd: AppCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// The API catalog.
    Api {
        /// What to do.
        #[command(subcommand)]
        cmd: ApiCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Grants: which app may call which API (least privilege).
    Grant {
        /// What to do.
        #[command(subcommand)]
        cmd: GrantCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// IP allowlists and blocklists (IPv4/IPv6 CIDRs).
    Ip {
        /// What to do.
        #[command(subcommand)]
        cmd: IpCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// U_API_ID (统一识别码) encode/decode per Q/CMBC 003-2022 Annex A.
    Uapi {
        /// What to do.
        #[command(subcommand)]
        cmd: UapiCmd,
    },
    /// Sign and send one request through the gateway; prints status, headers and body.
    Call(CallArgs),
    /// Generate a key pair for request signing (PKCS#8 private key, mode 0600) and print the public key to register.
    Keygen {
        /// Algorithm: sm2 (default), p256, ed25519 or rsa (2048 bits).
        #[arg(long, default_value = "sm2")]
        alg: String,
        /// Private key file to write (must not exist); the public key goes to FILE.pub.
        #[arg(long)]
        out: PathBuf,
    },
    /// The tamper-evident audit log: verify, search, archive.
    Audit {
        /// What to do.
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Master key utilities.
    Masterkey {
        /// What to do.
        #[command(subcommand)]
        cmd: MasterkeyCmd,
    },
}

/// `menshen admin ...`
#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Create an admin API token; it is printed once and stored only hashed.
    Init {
        /// The node's config file.
        #[arg(long, short, env = "MENSHEN_CONFIG")]
        config: PathBuf,
        /// Name of the administrator the token is for.
        #[arg(long, default_value = "admin")]
        name: String,
        /// Also write the token to this file (mode 0600).
        #[arg(long)]
        token_out: Option<PathBuf>,
    },
}

/// `menshen app ...`
#[derive(Subcommand, Debug)]
pub enum AppCmd {
    /// Onboard an application party; prints its App_ID and App_Secret (once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// `server` or `mobile`.
        #[arg(long, default_value = "server")]
        kind: String,
        /// Contact (email) for notices.
        #[arg(long)]
        contact: Option<String>,
        /// Write the App_Secret to this file (0600) instead of printing it.
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
    /// List application parties.
    List,
    /// Show one application party with its grants.
    Show {
        /// App_ID.
        app_id: String,
    },
    /// Suspend an app: every call is refused from the next request on.
    Suspend {
        /// App_ID.
        app_id: String,
    },
    /// Reactivate a suspended app.
    Resume {
        /// App_ID.
        app_id: String,
    },
    /// Register a public key (PEM SubjectPublicKeyInfo); its algorithm is fixed from then on.
    KeyAdd {
        /// App_ID.
        app_id: String,
        /// Public key file (from `menshen keygen` or OpenSSL).
        #[arg(long)]
        public_key: PathBuf,
        /// Valid from (unix seconds; default now).
        #[arg(long)]
        not_before: Option<i64>,
        /// Valid until (unix seconds; default unlimited).
        #[arg(long)]
        not_after: Option<i64>,
    },
    /// Bind a client certificate (PEM) to an app for mutual TLS.
    CertAdd {
        /// App_ID.
        app_id: String,
        /// Certificate file.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Revoke one credential (key, certificate or secret) by its id.
    CredentialRevoke {
        /// App_ID.
        app_id: String,
        /// Credential id (see `menshen app show`).
        id: i64,
    },
    /// Require (on) or stop requiring (off) the app's client certificate on every call.
    RequireCert {
        /// App_ID.
        app_id: String,
        /// on or off.
        state: String,
    },
    /// Issue a new App_Secret (printed once).
    SecretRotate {
        /// App_ID.
        app_id: String,
        /// Seconds the old secret stays valid (0 = void at once).
        #[arg(long, default_value_t = 0)]
        grace_seconds: u32,
        /// Write the new App_Secret to this file (0600) instead of printing it.
        #[arg(long)]
        secret_out: Option<PathBuf>,
    },
}

/// `menshen api ...`
#[derive(Subcommand, Debug)]
pub enum ApiCmd {
    /// Add an API to the catalog; the platform assigns its U_API_ID.
    Create {
        /// Bank-defined API_ID.
        #[arg(long)]
        api_id: String,
        /// HTTP method.
        #[arg(long)]
        method: String,
        /// Path pattern, e.g. /v1/accounts/{account_id}/balance.
        #[arg(long)]
        path: String,
        /// Upstream base URL.
        #[arg(long)]
        upstream: String,
        /// Security level A1, A2 or A3.
        #[arg(long)]
        level: String,
        /// First-level service category (1 accounts, 2 payment, 3 wealth, 4 credit, 5 card, 6 industry, 7 international, 8 technology).
        #[arg(long)]
        category: u8,
        /// Second-level service category (1-9999).
        #[arg(long, default_value_t = 1)]
        subcategory: u16,
        /// Interface version.
        #[arg(long, default_value = "v1")]
        version: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Owner.
        #[arg(long)]
        owner: Option<String>,
        /// Integration types (server_to_server, mobile_to_server); repeatable.
        #[arg(long = "integration")]
        integrations: Vec<String>,
    },
    /// List the catalog.
    List,
    /// Show one API.
    Show {
        /// API_ID.
        api_id: String,
    },
    /// Move an API through its lifecycle (published, deprecated, terminated, offline, archived).
    Lifecycle {
        /// API_ID.
        api_id: String,
        /// New state.
        state: String,
    },
}

/// `menshen grant ...`
#[derive(Subcommand, Debug)]
pub enum GrantCmd {
    /// Allow an app to call an API.
    Add {
        /// App_ID.
        app_id: String,
        /// API_ID.
        api_id: String,
    },
    /// Withdraw a grant.
    Remove {
        /// App_ID.
        app_id: String,
        /// API_ID.
        api_id: String,
    },
    /// List grants.
    List {
        /// Only this app's.
        #[arg(long)]
        app_id: Option<String>,
    },
}

/// `menshen ip ...`
#[derive(Subcommand, Debug)]
pub enum IpCmd {
    /// Add an address or CIDR to an app's allowlist.
    Allow {
        /// Address or CIDR.
        cidr: String,
        /// App_ID.
        #[arg(long)]
        app_id: String,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
    /// Block an address or CIDR, globally or for one app.
    Deny {
        /// Address or CIDR.
        cidr: String,
        /// App_ID (omit for the global blocklist).
        #[arg(long)]
        app_id: Option<String>,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
    /// List rules.
    List,
    /// Remove a rule by id.
    Remove {
        /// Rule id.
        id: i64,
    },
}

/// `menshen uapi ...`
#[derive(Subcommand, Debug)]
pub enum UapiCmd {
    /// Explain each field of a U_API_ID.
    Decode {
        /// The 24-character code.
        code: String,
    },
    /// Build a U_API_ID from its fields.
    Encode {
        /// First 6 characters of the institution code.
        #[arg(long)]
        institution: String,
        /// Level: A1, A2 or A3.
        #[arg(long)]
        level: String,
        /// First-level category (1-99).
        #[arg(long)]
        category: u8,
        /// Second-level category (1-9999).
        #[arg(long)]
        subcategory: u16,
        /// Sequence (1-999999).
        #[arg(long)]
        sequence: u32,
        /// Prefix.
        #[arg(long, default_value = "0P")]
        prefix: String,
    },
}

/// `menshen audit ...`
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum AuditCmd {
    /// Verify a log directory (or a copy) offline: chain, checkpoint
    /// signatures, continuity. Needs no database and no running gateway.
    Verify {
        /// The audit directory (holds `segments/` and `checkpoints.jsonl`).
        dir: PathBuf,
        /// The bank's audit public key (PEM); repeat for rotated keys.
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<PathBuf>,
    },
    /// Search the audit index through the admin API.
    Search {
        /// Transaction serial number.
        #[arg(long)]
        txn_id: Option<String>,
        /// App_ID.
        #[arg(long)]
        app_id: Option<String>,
        /// API_ID.
        #[arg(long)]
        api_id: Option<String>,
        /// End user.
        #[arg(long)]
        user_id: Option<String>,
        /// success, failure or unknown.
        #[arg(long)]
        result: Option<String>,
        /// From (RFC 3339, inclusive).
        #[arg(long)]
        from: Option<String>,
        /// To (RFC 3339, exclusive).
        #[arg(long)]
        to: Option<String>,
        /// access or admin.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Move closed, compressed segments older than `audit.archive_after_days`
    /// to `archive/` (they stay verifiable; nothing is deleted).
    Archive {
        /// The node's config file.
        #[arg(long, short, env = "MENSHEN_CONFIG")]
        config: PathBuf,
        /// Only list what would move.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `menshen masterkey ...`
#[derive(Subcommand, Debug)]
pub enum MasterkeyCmd {
    /// Write a new random master key to FILE (mode 0600).
    Generate {
        /// Output file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `menshen call ...`
#[derive(Args, Debug)]
pub struct CallArgs {
    /// App_ID.
    #[arg(long)]
    pub app_id: String,
    /// File holding the App_Secret (A1 APIs).
    #[arg(long, required_unless_present = "key", conflicts_with = "key")]
    pub secret_file: Option<PathBuf>,
    /// PKCS#8 private key registered for the app (A1-A3 APIs).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The bank's response-signing public key (PEM): verify the response
    /// signature and refuse an unsigned or wrongly signed response.
    #[arg(long)]
    pub bank_key: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "cert_key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long)]
    pub cert_key: Option<PathBuf>,
    /// CA certificate (PEM) the gateway's certificate chains to.
    #[arg(long)]
    pub ca: PathBuf,
    /// JSON body.
    #[arg(long)]
    pub data: Option<String>,
    /// MAC algorithm: hmac-sm3 or hmac-sha256.
    #[arg(long, default_value = "hmac-sm3")]
    pub alg: String,
    /// Extra header `Name: value` (repeatable; covered by the signature).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Print the signature base to stderr.
    #[arg(long)]
    pub verbose: bool,
    /// HTTP method.
    pub method: String,
    /// Full URL, e.g. https://127.0.0.1:8443/v1/products.
    pub url: String,
}

/// A small admin API client.
pub struct AdminClient {
    http: menshen_sdk::HttpClient,
    base: String,
    token: zeroize::Zeroizing<String>,
    /// Raw JSON output.
    pub json: bool,
}

impl AdminClient {
    /// Connect per the options.
    pub fn new(conn: &AdminConn) -> anyhow::Result<Self> {
        let token = match (&conn.admin_token_file, std::env::var("MENSHEN_ADMIN_TOKEN")) {
            (_, Ok(t)) if !t.is_empty() => zeroize::Zeroizing::new(t),
            (Some(f), _) => zeroize::Zeroizing::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("--admin-token-file {}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            _ => bail!("no admin token: pass --admin-token-file FILE, or set MENSHEN_ADMIN_TOKEN_FILE or MENSHEN_ADMIN_TOKEN"),
        };
        Ok(AdminClient {
            http: menshen_sdk::http_client(None)?,
            base: conn.admin_url.trim_end_matches('/').to_string(),
            token,
            json: conn.json,
        })
    }

    /// Call the admin API; returns the JSON body, or an error carrying the
    /// API's message (which names the field).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {}", self.token.as_str()))?,
            );
        if body.is_some() {
            b = b.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = b.body(Bytes::from(body.map(|v| v.to_string()).unwrap_or_default()))?;
        let resp = menshen_sdk::send(&self.http, req)
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let v: Value = if resp.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&resp.body)))
        };
        if resp.status >= 400 {
            let msg = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("request failed");
            bail!("{} ({})", msg, resp.status);
        }
        Ok(v)
    }
}

fn print_json(v: &Value) {
    crate::out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn table(rows: &Value, cols: &[&str]) {
    let empty = vec![];
    let rows = rows.as_array().unwrap_or(&empty);
    let cell = |r: &Value, c: &str| -> String {
        match r.get(c) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "-".into(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            Some(v) => v.to_string(),
        }
    };
    let widths: Vec<usize> = cols
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).chars().count())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |vals: Vec<String>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    crate::out!("{}", line(cols.iter().map(|c| c.to_uppercase()).collect()));
    for r in rows {
        crate::out!("{}", line(cols.iter().map(|c| cell(r, c)).collect()));
    }
}

fn out(c: &AdminClient, v: &Value, cols: &[&str]) {
    if c.json || !v.is_array() {
        print_json(v)
    } else {
        table(v, cols)
    }
}

fn emit_secret(v: &mut Value, secret_out: &Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(path) = secret_out {
        let s = v
            .get("app_secret")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        crate::pki::write_private(path, s.as_bytes())?;
        v["app_secret"] = json!(format!("(written to {})", path.display()));
    }
    Ok(())
}

/// `menshen app ...`
pub async fn app(cmd: AppCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        AppCmd::Create {
            name,
            kind,
            contact,
            secret_out,
        } => {
            let mut v = c
                .call(
                    "POST",
                    "/v1/apps",
                    Some(json!({"name": name, "kind": kind, "contact": contact})),
                )
                .await?;
            emit_secret(&mut v, &secret_out)?;
            print_json(&v);
        }
        AppCmd::List => out(
            &c,
            &c.call("GET", "/v1/apps", None).await?,
            &["app_id", "name", "kind", "status", "created_at"],
        ),
        AppCmd::Show { app_id } => {
            let mut v = c.call("GET", &format!("/v1/apps/{app_id}"), None).await?;
            v["credentials"] = c
                .call("GET", &format!("/v1/apps/{app_id}/credentials"), None)
                .await?;
            print_json(&v)
        }
        AppCmd::KeyAdd {
            app_id,
            public_key,
            not_before,
            not_after,
        } => {
            let pem = std::fs::read_to_string(&public_key)
                .with_context(|| format!("--public-key {}", public_key.display()))?;
            print_json(
                &c.call("POST", &format!("/v1/apps/{app_id}/keys"), Some(json!({"public_key_pem": pem, "not_before": not_before, "not_after": not_after})))
                    .await?,
            )
        }
        AppCmd::CertAdd { app_id, cert } => {
            let pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("--cert {}", cert.display()))?;
            print_json(
                &c.call(
                    "POST",
                    &format!("/v1/apps/{app_id}/certificates"),
                    Some(json!({"certificate_pem": pem})),
                )
                .await?,
            )
        }
        AppCmd::CredentialRevoke { app_id, id } => {
            c.call(
                "DELETE",
                &format!("/v1/apps/{app_id}/credentials/{id}"),
                None,
            )
            .await?;
            crate::out!("credential {id} of {app_id} revoked");
        }
        AppCmd::RequireCert { app_id, state } => {
            let on = match state.as_str() {
                "on" => true,
                "off" => false,
                _ => bail!("STATE: must be `on` or `off`"),
            };
            print_json(
                &c.call(
                    "POST",
                    &format!("/v1/apps/{app_id}/require-client-cert"),
                    Some(json!({"required": on})),
                )
                .await?,
            )
        }
        AppCmd::Suspend { app_id } => print_json(
            &c.call("POST", &format!("/v1/apps/{app_id}/suspend"), None)
                .await?,
        ),
        AppCmd::Resume { app_id } => print_json(
            &c.call("POST", &format!("/v1/apps/{app_id}/resume"), None)
                .await?,
        ),
        AppCmd::SecretRotate {
            app_id,
            grace_seconds,
            secret_out,
        } => {
            let mut v = c
                .call(
                    "POST",
                    &format!("/v1/apps/{app_id}/secret-rotate"),
                    Some(json!({"grace_seconds": grace_seconds})),
                )
                .await?;
            emit_secret(&mut v, &secret_out)?;
            print_json(&v);
        }
    }
    Ok(())
}

/// `menshen api ...`
pub async fn api(cmd: ApiCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        ApiCmd::Create {
            api_id,
            method,
            path,
            upstream,
            level,
            category,
            subcategory,
            version,
            name,
            owner,
            integrations,
        } => {
            let body = json!({
                "api_id": api_id, "method": method.to_ascii_uppercase(), "path": path, "upstream": upstream,
                "level": level.to_ascii_uppercase(), "category": category, "subcategory": subcategory,
                "version": version, "name": name, "owner": owner, "integrations": integrations,
            });
            print_json(&c.call("POST", "/v1/apis", Some(body)).await?);
        }
        ApiCmd::List => out(
            &c,
            &c.call("GET", "/v1/apis", None).await?,
            &[
                "api_id",
                "u_api_id",
                "level",
                "method",
                "path",
                "lifecycle",
                "upstream",
            ],
        ),
        ApiCmd::Show { api_id } => {
            print_json(&c.call("GET", &format!("/v1/apis/{api_id}"), None).await?)
        }
        ApiCmd::Lifecycle { api_id, state } => print_json(
            &c.call(
                "POST",
                &format!("/v1/apis/{api_id}/lifecycle"),
                Some(json!({"state": state})),
            )
            .await?,
        ),
    }
    Ok(())
}

/// `menshen grant ...`
pub async fn grant(cmd: GrantCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        GrantCmd::Add { app_id, api_id } => print_json(
            &c.call(
                "POST",
                "/v1/grants",
                Some(json!({"app_id": app_id, "api_id": api_id})),
            )
            .await?,
        ),
        GrantCmd::Remove { app_id, api_id } => {
            c.call("DELETE", &format!("/v1/grants/{app_id}/{api_id}"), None)
                .await?;
            crate::out!("grant of {api_id} to {app_id} removed");
        }
        GrantCmd::List { app_id } => {
            let q = app_id.map(|a| format!("?app_id={a}")).unwrap_or_default();
            out(
                &c,
                &c.call("GET", &format!("/v1/grants{q}"), None).await?,
                &["app_id", "api_id", "created_at"],
            );
        }
    }
    Ok(())
}

/// `menshen ip ...`
pub async fn ip(cmd: IpCmd, conn: AdminConn) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    match cmd {
        IpCmd::Allow { cidr, app_id, note } => print_json(
            &c.call(
                "POST",
                "/v1/ip-rules",
                Some(json!({"app_id": app_id, "action": "allow", "cidr": cidr, "note": note})),
            )
            .await?,
        ),
        IpCmd::Deny { cidr, app_id, note } => print_json(
            &c.call(
                "POST",
                "/v1/ip-rules",
                Some(json!({"app_id": app_id, "action": "deny", "cidr": cidr, "note": note})),
            )
            .await?,
        ),
        IpCmd::List => out(
            &c,
            &c.call("GET", "/v1/ip-rules", None).await?,
            &["id", "app_id", "action", "cidr", "note"],
        ),
        IpCmd::Remove { id } => {
            c.call("DELETE", &format!("/v1/ip-rules/{id}"), None)
                .await?;
            crate::out!("IP rule {id} removed");
        }
    }
    Ok(())
}

/// `menshen uapi ...`
pub fn uapi(cmd: UapiCmd) -> anyhow::Result<()> {
    match cmd {
        UapiCmd::Decode { code } => {
            let id = UApiId::decode(code.trim()).map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::out!("{}", id.explain());
        }
        UapiCmd::Encode {
            institution,
            level,
            category,
            subcategory,
            sequence,
            prefix,
        } => {
            let level = menshen_model::Level::parse(&level)
                .ok_or_else(|| anyhow::anyhow!("--level: must be A1, A2 or A3"))?;
            let id = UApiId::new(
                &prefix,
                &institution,
                UApiType::for_level(level),
                category,
                subcategory,
                sequence,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::out!("{id}");
        }
    }
    Ok(())
}

/// `menshen call ...`
pub async fn call(a: CallArgs) -> anyhow::Result<i32> {
    let creds = match (&a.secret_file, &a.key) {
        (_, Some(k)) => Credentials::key_pair_from_file(&a.app_id, k)
            .with_context(|| format!("--key {}", k.display()))?,
        (Some(f), None) => {
            let alg = MacAlg::from_name(&a.alg)
                .ok_or_else(|| anyhow::anyhow!("--alg: must be hmac-sm3 or hmac-sha256"))?;
            Credentials::hmac_from_file(&a.app_id, f, alg)
                .with_context(|| format!("--secret-file {}", f.display()))?
        }
        (None, None) => bail!("give --secret-file or --key"),
    };
    let ca = std::fs::read(&a.ca).with_context(|| format!("--ca {}", a.ca.display()))?;
    let identity = match (&a.cert, &a.cert_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).with_context(|| format!("--cert {}", c.display()))?,
            zeroize::Zeroizing::new(
                std::fs::read(k).with_context(|| format!("--cert-key {}", k.display()))?,
            ),
        )),
        _ => None,
    };
    let http = menshen_sdk::http_client_with_identity(
        Some(&ca),
        identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
    )?;
    let bank_keys = match &a.bank_key {
        Some(p) => vec![menshen_crypto::PublicKey::from_spki_pem(
            &std::fs::read_to_string(p).with_context(|| format!("--bank-key {}", p.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("--bank-key {}: {e}", p.display()))?],
        None => vec![],
    };
    let method =
        http::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes()).context("METHOD")?;
    let body = match &a.data {
        Some(d) => {
            serde_json::from_str::<Value>(d).context("--data: not valid JSON")?;
            Bytes::from(d.clone())
        }
        None => Bytes::new(),
    };
    let mut b = Request::builder().method(method).uri(&a.url);
    if a.data.is_some() {
        b = b.header(http::header::CONTENT_TYPE, "application/json");
    }
    let mut extra = Vec::new();
    for h in &a.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--header `{h}`: use `Name: value`"))?;
        let n = n.trim().to_ascii_lowercase();
        b = b.header(n.as_str(), v.trim());
        extra.push(n);
    }
    let mut req = b.body(body).with_context(|| format!("URL {}", a.url))?;
    let opts = SignOptions {
        extra_components: extra,
        ..Default::default()
    };
    menshen_sdk::sign_request(&mut req, &creds, &opts)?;
    if a.verbose {
        for (k, v) in req.headers() {
            eprintln!("> {k}: {}", v.to_str().unwrap_or("?"));
        }
    }
    let sent_headers = req.headers().clone();
    let resp = menshen_sdk::send(&http, req).await?;
    let verdict = (!bank_keys.is_empty())
        .then(|| menshen_sdk::verify_response(&resp, &sent_headers, &bank_keys));
    crate::out!("HTTP {}", resp.status);
    for (k, v) in &resp.headers {
        crate::out!("{k}: {}", v.to_str().unwrap_or("?"));
    }
    crate::out!();
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(v) => print_json(&v),
        Err(_) => crate::out!("{}", String::from_utf8_lossy(&resp.body)),
    }
    match verdict {
        Some(Ok(())) => eprintln!("response signature: verified with the bank's key"),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
        None => {}
    }
    Ok(if resp.status < 400 { 0 } else { 1 })
}

/// `menshen audit verify`.
pub fn audit_verify(dir: &std::path::Path, keys: &[PathBuf]) -> anyhow::Result<i32> {
    let mut pks = Vec::new();
    for k in keys {
        let pem =
            std::fs::read_to_string(k).with_context(|| format!("--public-key {}", k.display()))?;
        pks.push(
            menshen_crypto::PublicKey::from_spki_pem(&pem)
                .map_err(|e| anyhow::anyhow!("--public-key {}: {e}", k.display()))?,
        );
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("verifying {bar:40} {pos}/{len} segments")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let r = menshen_audit::verify::verify_dir(dir, &pks, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    match r {
        Ok(rep) => {
            crate::out!(
                "OK: {} records in {} segments, {} signed checkpoints; chain head {}",
                rep.records,
                rep.segments,
                rep.checkpoints,
                rep.head
            );
            Ok(0)
        }
        Err(e) => {
            crate::out!("FAILED at {}: {}", e.place, e.problem);
            Ok(1)
        }
    }
}

/// `menshen audit search`.
#[allow(clippy::too_many_arguments)]
pub async fn audit_search(
    q: Vec<(&str, Option<String>)>,
    limit: u32,
    conn: AdminConn,
) -> anyhow::Result<()> {
    let c = AdminClient::new(&conn)?;
    let mut qs: Vec<String> = q
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", urlencode(&v))))
        .collect();
    qs.push(format!("limit={limit}"));
    let v = c
        .call("GET", &format!("/v1/audit?{}", qs.join("&")), None)
        .await?;
    if c.json {
        print_json(&v);
        return Ok(());
    }
    let flat: Vec<Value> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    // The record from the log; its indexed key fields if the
                    // log could not be read (the row says why).
                    let rec = if r["record"].is_object() {
                        &r["record"]
                    } else {
                        &r["indexed"]
                    };
                    json!({
                        "seq": r["seq"], "time": rec["timestamp"], "kind": rec["kind"],
                        "txn_id": rec["txn_id"], "app_id": rec.get("app_id").cloned().unwrap_or(rec["actor"].clone()),
                        "api_id": rec["api_id"], "result": rec.get("result").cloned().unwrap_or(rec["action"].clone()),
                        "status": rec["status"], "code": rec["code"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &json!(flat),
        &[
            "seq", "time", "kind", "txn_id", "app_id", "api_id", "result", "status", "code",
        ],
    );
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `menshen audit archive`.
pub fn audit_archive(cfg: &crate::config::Config, dry_run: bool) -> anyhow::Result<()> {
    let dir = cfg.data_dir.join("audit");
    let seg_dir = dir.join("segments");
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive)?;
    let cutoff = std::time::SystemTime::now()
        - std::time::Duration::from_secs(u64::from(cfg.audit.archive_after_days) * 86_400);
    let mut moved = 0;
    for e in std::fs::read_dir(&seg_dir).with_context(|| format!("{}", seg_dir.display()))? {
        let p = e?.path();
        // Only closed segments: compressed ones (the active one is plain).
        if !p.to_string_lossy().ends_with(".jsonl.zst") {
            continue;
        }
        let modified = std::fs::metadata(&p)?.modified()?;
        if modified > cutoff {
            continue;
        }
        let to = archive.join(p.file_name().unwrap_or_default());
        if dry_run {
            crate::out!("would archive {} -> {}", p.display(), to.display());
        } else {
            std::fs::rename(&p, &to)?;
            crate::out!("archived {}", to.display());
        }
        moved += 1;
    }
    crate::out!(
        "{moved} segment(s) {}; nothing is ever deleted by Menshen before retention ({} days)",
        if dry_run { "to archive" } else { "archived" },
        cfg.audit.retention_days
    );
    Ok(())
}
