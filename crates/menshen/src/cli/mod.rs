//! Command-line interface: clap definitions and the commands that talk to the
//! admin API, sign calls, and decode U_API_IDs.
//!
//! By role: this file holds the arguments; `client` the admin API client,
//! `render` the output (JSON or tables), and one file per command group
//! (`app`, `api`, `grant`, `ip`, `uapi`, `call`, `audit`, `customer` for
//! customers, consents and TOTP codes). `admin init`,
//! `masterkey`, `serve` and `demo` run in `main.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod api;
mod app;
mod audit;
mod authorize;
mod call;
mod client;
mod customer;
mod grant;
mod ip;
mod limit;
pub mod openapi_import;
mod render;
mod risk;
mod stats;
mod uapi;

pub use api::api;
pub use app::app;
pub use audit::{audit_archive, audit_search, audit_verify};
pub use authorize::authorize;
pub use call::call;
pub use client::AdminClient;
pub use customer::{consent, customer, totp};
pub use grant::grant;
pub use ip::ip;
pub use limit::limit;
pub use risk::{alert, baseline, review, risk, AlertCmd, BaselineCmd, ReviewCmd, RiskCmd};
pub use stats::{stats, StatsArgs};
pub use uapi::uapi;

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
    /// CA certificate (PEM) that signed the admin API's TLS certificate
    /// (`[admin.tls]`); needed for an `https://` admin URL.
    #[arg(long, env = "MENSHEN_ADMIN_CA", global = true)]
    pub admin_ca: Option<PathBuf>,
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
        /// Token profile of the authorization server: cmbc (default: one call
        /// per token), zjrcb or standard (reusable tokens; bench/run.sh uses zjrcb).
        #[arg(long)]
        token_profile: Option<String>,
        /// Several nodes on PostgreSQL and Redis (started locally under
        /// --dir; Debian's packages, installed if missing) instead of the
        /// embedded SQLite node.
        #[arg(long)]
        cluster: bool,
        /// Nodes of a --cluster demo (2 to 9).
        #[arg(long, default_value_t = 3, requires = "cluster")]
        nodes: usize,
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
    /// Flow-control rules (TRF-1): at most N calls per second, minute or day
    /// (Asia/Shanghai) for an app, an API, both, or all calls.
    Limit {
        /// What to do.
        #[command(subcommand)]
        cmd: LimitCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Risk rules for fund movements (RSK-2): per app, amount per
    /// transaction and per day, counterparties, account types, unusual
    /// amounts; alert, reject or hold.
    Risk {
        /// What to do.
        #[command(subcommand)]
        cmd: RiskCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Calls held by a risk rule for a bank officer's review (RSK-1).
    Review {
        /// What to do.
        #[command(subcommand)]
        cmd: ReviewCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Alerts to operators (MON-2): list, acknowledge, resolve.
    Alert {
        /// What to do.
        #[command(subcommand)]
        cmd: AlertCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Learned baselines (MON-3): what normal looks like for an app.
    Baseline {
        /// What to do.
        #[command(subcommand)]
        cmd: BaselineCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Per app or per API: calls, success rate, TPS, p50/p99 latency over the
    /// last minute, hour and day (MON-1); `--watch` redraws.
    Stats(StatsArgs),
    /// Bank customers in the built-in directory (USR-1): enrol, list.
    Customer {
        /// What to do.
        #[command(subcommand)]
        cmd: CustomerCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Customers' consents to apps (USR-6): list, revoke.
    Consent {
        /// What to do.
        #[command(subcommand)]
        cmd: ConsentCmd,
        /// Admin API connection.
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Print the current 6-digit TOTP code (RFC 6238) of the base32 secret in FILE (no admin connection needed).
    Totp {
        /// File holding the base32 secret (as `customer add --totp-file` writes it) or an otpauth:// URI.
        file: PathBuf,
    },
    /// U_API_ID (统一识别码) encode/decode per Q/CMBC 003-2022 Annex A.
    Uapi {
        /// What to do.
        #[command(subcommand)]
        cmd: UapiCmd,
    },
    /// Sign and send one request through the gateway; prints status, headers and body.
    Call(CallArgs),
    /// Authorize a customer for an app (PAR + PKCE, the customer approves in a browser,
    /// the code comes back to the app's loopback redirect URI) and print the access token.
    Authorize(AuthorizeArgs),
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
        /// The app's notification URL (应用方通知地址): https:// where the bank POSTs signed notices (credentials close to expiry, suspension).
        #[arg(long)]
        notify_url: Option<String>,
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
    /// Blacklist an app (TRF-3): every call refused like a suspension; the reason is kept in its history.
    Blacklist {
        /// App_ID.
        app_id: String,
        /// Why (risk control's record).
        #[arg(long)]
        reason: String,
    },
    /// Take an app off the blacklist (it is active again); the reason is kept in its history.
    Unblacklist {
        /// App_ID.
        app_id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Blacklist many apps from a file: CSV lines `app_id,reason` (optional header), or a JSON array of {"app_id","reason"}; all or nothing, the bad line named.
    BlacklistImport {
        /// The CSV or JSON file (`.json`: JSON; anything else: CSV).
        file: PathBuf,
    },
    /// The blacklist history of one app, or (without APP_ID) the apps blacklisted now and the whole history.
    BlacklistHistory {
        /// App_ID.
        app_id: Option<String>,
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
    /// Register the app's SM2 encryption key (protocol §12.5): the gateway
    /// encrypts response fields for it. Never one of its signing keys.
    EncKeyAdd {
        /// App_ID.
        app_id: String,
        /// Public key file (PEM SubjectPublicKeyInfo of an SM2 key).
        #[arg(long)]
        public_key: PathBuf,
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
    /// Set the app's notification URL (应用方通知地址, https://), or clear it with --clear.
    NotifyUrl {
        /// App_ID.
        app_id: String,
        /// The URL (https://; plain http:// to loopback only where the node allows it).
        url: Option<String>,
        /// Remove the URL: the app gets no notices.
        #[arg(long, conflicts_with = "url")]
        clear: bool,
    },
    /// The notices sent to an app (credential expiry, suspension) and their delivery state.
    Notices {
        /// App_ID.
        app_id: String,
        /// Only those in this state (pending, delivered, failed).
        #[arg(long)]
        state: Option<String>,
    },
    /// Require (on) or stop requiring (off) the app's client certificate on every call.
    RequireCert {
        /// App_ID.
        app_id: String,
        /// on or off.
        state: String,
    },
    /// Register the app's redirect URIs (replacing the previous ones; exact match at /oauth2/authorize); without URIs, show them.
    RedirectUris {
        /// App_ID.
        app_id: String,
        /// Absolute https:// URIs (http://127.0.0.1 or http://localhost for development), no fragment.
        uris: Vec<String>,
        /// Remove every redirect URI of the app.
        #[arg(long, conflicts_with = "uris")]
        clear: bool,
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

/// `menshen customer ...`
#[derive(Subcommand, Debug)]
pub enum CustomerCmd {
    /// Enrol a bank customer with the accounts they own; the password is stored only as an argon2id hash.
    Add {
        /// Login name (3-64 printable characters, no spaces).
        #[arg(long)]
        username: String,
        /// Name shown on the bank's pages.
        #[arg(long)]
        name: String,
        /// File holding the password (at least 8 characters; one trailing line break is ignored).
        #[arg(long)]
        password_file: PathBuf,
        /// An account number the customer owns (6-32 digits); repeatable.
        #[arg(long = "account", required = true)]
        accounts: Vec<String>,
        /// Enrol a TOTP second factor (needed for A3 scopes); its secret is shown once.
        #[arg(long)]
        totp: bool,
        /// Write the TOTP secret (base32) to this file, mode 0600 (implies --totp).
        #[arg(long)]
        totp_file: Option<PathBuf>,
        /// Print the TOTP secret and its otpauth:// URI (implies --totp).
        #[arg(long)]
        show_totp: bool,
    },
    /// List customers.
    List,
}

/// `menshen consent ...`
#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// List consents, optionally of one app and/or one customer.
    List {
        /// Only this app's (App_ID).
        #[arg(long)]
        app: Option<String>,
        /// Only this customer's (user_id; also as agent).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a consent for the bank: its tokens are refused from the next call.
    Revoke {
        /// Consent id (CN...).
        consent_id: String,
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
    /// Import APIs with their query and body schemas from an OpenAPI 3 document (YAML or JSON); an API that exists gets the new schema (LVL-5).
    Import {
        /// The OpenAPI document (openapi.yaml or .json).
        file: PathBuf,
        /// Upstream base URL, where an operation has no x-menshen-upstream.
        #[arg(long)]
        upstream: Option<String>,
        /// Security level, where an operation has no x-menshen-level (default A1).
        #[arg(long)]
        level: Option<String>,
        /// First-level category, where an operation has no x-menshen-category.
        #[arg(long)]
        category: Option<u8>,
        /// Second-level category, where an operation has no x-menshen-subcategory (default 1).
        #[arg(long)]
        subcategory: Option<u16>,
        /// Interface version of the imported APIs.
        #[arg(long, default_value = "v1")]
        version: String,
    },
    /// Set an API's attack screening mode: off, detect or block (ATK-1).
    Screening {
        /// API_ID.
        api_id: String,
        /// off, detect or block.
        mode: String,
    },
    /// Change an API's schema, screening or response masking from a JSON file ({"schema":..., "screening":..., "response_mask":...}).
    Controls {
        /// API_ID.
        api_id: String,
        /// The JSON file.
        #[arg(long)]
        file: PathBuf,
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
    /// Approve (on) or withdraw (off) a grant for clearing/reconciliation: the app then sees the API's responses unmasked (CONF-3); recorded with who and when.
    Clearing {
        /// App_ID.
        app_id: String,
        /// API_ID.
        api_id: String,
        /// on or off.
        state: String,
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

/// `menshen limit ...`
#[derive(Subcommand, Debug)]
pub enum LimitCmd {
    /// Add a rule: at most MAX calls per window (or --concurrent N in flight); every matching call counts.
    Set {
        /// App_ID whose calls count (omit: every app's).
        #[arg(long)]
        app: Option<String>,
        /// API_ID whose calls count (omit: every API's).
        #[arg(long)]
        api: Option<String>,
        /// second, minute, day or month (day and month: the Asia/Shanghai calendar).
        #[arg(long, value_parser = ["second", "minute", "day", "month"], required_unless_present = "concurrent", conflicts_with = "concurrent")]
        window: Option<String>,
        /// Most calls per window (at least 1).
        #[arg(
            long,
            required_unless_present = "concurrent",
            conflicts_with = "concurrent"
        )]
        max: Option<u64>,
        /// Instead of a window: at most N calls in flight at once.
        #[arg(long)]
        concurrent: Option<u64>,
        /// One counter for all matching calls (all), or one per client ip, app, api or customer (the consent token's user).
        #[arg(long, default_value = "all", value_parser = ["all", "ip", "app", "api", "customer"])]
        per: String,
        /// reject (429 RATE_LIMITED), alert (let through, recorded) or pause (refuse and pause the app for --pause-secs).
        #[arg(long, default_value = "reject", value_parser = ["reject", "alert", "pause"])]
        action: String,
        /// How long a pause rule pauses the app (seconds).
        #[arg(long)]
        pause_secs: Option<u64>,
    },
    /// List rules.
    List,
    /// Remove a rule by id.
    Remove {
        /// Rule id.
        id: i64,
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
    /// Verify log directories (or copies) offline: chain, checkpoint
    /// signatures, continuity. Needs no database and no running gateway.
    /// Several directories: one per node of a cluster, each node's chain
    /// verified on its own; fails if any is broken or two claim one node id.
    Verify {
        /// The audit directories (each holds `segments/` and
        /// `checkpoints.jsonl`), one per node.
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
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
        /// Only this node's records (8 hex characters).
        #[arg(long)]
        node: Option<String>,
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
    /// A customer's access token (`menshen authorize`): sent as
    /// `Authorization: Bearer`, covered by the signature.
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the customer's access token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Encrypt this request body field (a JSON Pointer; repeat the flag)
    /// for the bank's encryption key, which is read from the gateway's
    /// `/.well-known/menshen/keys` (field envelopes, protocol §12).
    #[arg(long = "encrypt")]
    pub encrypt: Vec<String>,
    /// Decrypt this response body field (a JSON Pointer; repeat the flag)
    /// with `--enc-key`, after the bank's signature verified.
    #[arg(long = "decrypt", requires_all = ["enc_key", "bank_key"])]
    pub decrypt: Vec<String>,
    /// The app's encryption private key (PKCS#8 PEM, SM2) for `--decrypt`:
    /// the key registered with `menshen app enc-key-add`, never a signing key.
    #[arg(long)]
    pub enc_key: Option<PathBuf>,
    /// Print the signature base to stderr.
    #[arg(long)]
    pub verbose: bool,
    /// HTTP method.
    pub method: String,
    /// Full URL, e.g. https://127.0.0.1:8443/v1/products.
    pub url: String,
}

/// `menshen authorize ...`
#[derive(clap::Args, Debug)]
pub struct AuthorizeArgs {
    /// App_ID.
    #[arg(long)]
    pub app_id: String,
    /// File holding the App_Secret.
    #[arg(long, required_unless_present = "key", conflicts_with = "key")]
    pub secret_file: Option<PathBuf>,
    /// PKCS#8 private key registered for the app.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The bank's response-signing public key (PEM): the AS's answers must verify.
    #[arg(long)]
    pub bank_key: Option<PathBuf>,
    /// CA certificate (PEM) the gateway's certificate chains to.
    #[arg(long)]
    pub ca: PathBuf,
    /// The app's registered redirect URI; must be http://127.0.0.1:PORT/PATH
    /// (this command listens there for the customer's browser).
    #[arg(long)]
    pub redirect_uri: String,
    /// API_IDs the consent should cover (repeatable).
    #[arg(long = "scope", required = true)]
    pub scope: Vec<String>,
    /// `once`, a number of calls, or `unlimited` (the bank's default).
    #[arg(long)]
    pub use_limit: Option<String>,
    /// How long to wait for the customer, seconds.
    #[arg(long, default_value_t = 300)]
    pub wait_secs: u64,
    /// Write the access token to this file (0600) instead of printing it.
    #[arg(long)]
    pub token_out: Option<PathBuf>,
    /// The gateway's base URL, e.g. https://127.0.0.1:8443.
    pub gateway: String,
}
