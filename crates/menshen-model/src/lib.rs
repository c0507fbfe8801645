//! Domain types of Menshen: application parties, credentials, the API catalog,
//! grants and IP rules, with their validation. No I/O here.
#![forbid(unsafe_code)]

pub mod path;
pub mod uapi;

use serde::{Deserialize, Serialize};

pub use path::{PathPattern, PathPatternError};
pub use uapi::{UApiId, UApiIdError, UApiType};

/// A validation failure that names the offending field and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field (JSON name) that is wrong.
    pub field: String,
    /// What is wrong and what to do instead.
    pub message: String,
}

impl ValidationError {
    /// Build one.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Security level of an API (LVL-2): A1 public product information, A2 account
/// information, A3 funds movement and service signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Public product information, read-only.
    A1,
    /// Account information.
    A2,
    /// Funds movement, service signing.
    A3,
}

impl Level {
    /// Parse `A1`/`A2`/`A3` (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_uppercase().as_str() {
            "A1" => Some(Level::A1),
            "A2" => Some(Level::A2),
            "A3" => Some(Level::A3),
            _ => None,
        }
    }
    /// `A1`, `A2` or `A3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::A1 => "A1",
            Level::A2 => "A2",
            Level::A3 => "A3",
        }
    }
}

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $var),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The wire name.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
            /// Parse the wire name.
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some($name::$var),)+ _ => None } }
            /// The accepted names, for error messages.
            pub fn names() -> String { [$($s),+].join(", ") }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

str_enum!(
    /// Kind of application party (ONB-5): a server application, or a mobile app
    /// that may call only A1 APIs (LVL-4).
    AppKind { Server = "server", Mobile = "mobile" }
);

str_enum!(
    /// Status of an application party, checked on every call (AUTH-4).
    AppStatus {
        /// May call the APIs it is granted.
        Active = "active",
        /// Temporarily cut off.
        Suspended = "suspended",
        /// Blacklisted by risk control (TRF-3).
        Blacklisted = "blacklisted",
        /// Left the platform; all credentials void (EXIT-1).
        Exited = "exited"
    }
);

str_enum!(
    /// API lifecycle (CHG-2).
    Lifecycle {
        /// Being defined; not callable.
        Draft = "draft",
        /// Live.
        Published = "published",
        /// Live, announced for retirement.
        Deprecated = "deprecated",
        /// Answers the "service terminated" tombstone (挡板) without calling the upstream.
        Terminated = "terminated",
        /// Gone; unknown to the gateway.
        Offline = "offline",
        /// Kept for records only.
        Archived = "archived"
    }
);

str_enum!(
    /// HTTP method an API answers.
    Method { Get = "GET", Post = "POST", Put = "PUT", Patch = "PATCH", Delete = "DELETE" }
);

str_enum!(
    /// Integration type of an API (LVL-4).
    Integration { ServerToServer = "server_to_server", MobileToServer = "mobile_to_server" }
);

str_enum!(
    /// Kind of a credential bound to an App_ID (AUTH-1).
    CredentialKind { Secret = "secret", PublicKey = "public_key", Certificate = "certificate" }
);

str_enum!(
    /// How a request may authenticate to an API (AUTH-1, LVL-3).
    AuthMethod {
        /// App_ID + App_Secret with an HMAC signature (A1 only).
        Secret = "secret",
        /// App_ID + registered key pair (SM2, P-256, Ed25519, RSA).
        KeyPair = "key_pair",
        /// A client certificate bound to the App_ID (mutual TLS), plus a signature.
        Certificate = "certificate"
    }
);

str_enum!(
    /// Level profile (LVL-2): three levels (default), or two levels where A2
    /// also covers funds movement (JR/T 0185-2020, Q/GXGB 0003-2020).
    LevelProfile { ThreeLevel = "three-level", TwoLevel = "two-level" }
);

str_enum!(
    /// How much of each message the audit log keeps (AUD-4: minimum necessary).
    MessageRetention {
        /// Only the access record.
        None = "none",
        /// Plus request and response headers.
        Headers = "headers",
        /// Plus headers and (masked) bodies.
        Bodies = "bodies"
    }
);

// The enum comes from `str_enum!`, which cannot attach `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for MessageRetention {
    fn default() -> Self {
        MessageRetention::None
    }
}

/// The controls an API runs beyond its level's minimum (LVL-3). A level
/// compiles into a minimum; an API can add controls, never drop below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiControls {
    /// Accepted authentication methods.
    pub auth: Vec<AuthMethod>,
    /// Whether the bank signs responses.
    pub sign_responses: bool,
    /// Message parts kept in the audit log (AUD-4).
    #[serde(default)]
    pub audit_messages: MessageRetention,
    /// Extra JSON field names whose values are removed before logging (AUD-5),
    /// beside the built-in detectors.
    #[serde(default)]
    pub mask_fields: Vec<String>,
    /// Request headers passed to the upstream beside the gateway's default
    /// list (CONF-5: anything not listed stays at the gateway).
    #[serde(default)]
    pub forward_request_headers: Vec<String>,
    /// Upstream response headers passed to the app beside the default list.
    #[serde(default)]
    pub forward_response_headers: Vec<String>,
}

impl ApiControls {
    /// The minimum (and default) controls of a level.
    pub fn minimum(level: Level) -> ApiControls {
        match level {
            Level::A1 => ApiControls {
                auth: vec![
                    AuthMethod::Secret,
                    AuthMethod::KeyPair,
                    AuthMethod::Certificate,
                ],
                sign_responses: false,
                audit_messages: MessageRetention::None,
                mask_fields: vec![],
                forward_request_headers: vec![],
                forward_response_headers: vec![],
            },
            Level::A2 | Level::A3 => ApiControls {
                auth: vec![AuthMethod::KeyPair, AuthMethod::Certificate],
                sign_responses: true,
                audit_messages: MessageRetention::None,
                mask_fields: vec![],
                forward_request_headers: vec![],
                forward_response_headers: vec![],
            },
        }
    }

    /// Refuse a configuration below the level's minimum, naming the control.
    pub fn validate_for(&self, level: Level) -> Result<(), ValidationError> {
        if self.auth.is_empty() {
            return Err(ValidationError::new(
                "controls.auth",
                "must name at least one method (A1 needs at least a MAC: `secret`)",
            ));
        }
        if level >= Level::A2 {
            if self.auth.contains(&AuthMethod::Secret) {
                return Err(ValidationError::new(
                    "controls.auth",
                    format!("{} APIs need a key pair or a bound client certificate; `secret` (MAC only) is below the minimum (missing control: key-pair or certificate authentication)", level.as_str()),
                ));
            }
            if !self.sign_responses {
                return Err(ValidationError::new(
                    "controls.sign_responses",
                    format!("{} APIs must have signed responses (missing control: bank response signature)", level.as_str()),
                ));
            }
        }
        Ok(())
    }
}

/// Optional overrides of an API's controls at creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiControls {
    /// Accepted authentication methods.
    #[serde(default)]
    pub auth: Option<Vec<AuthMethod>>,
    /// Whether the bank signs responses.
    #[serde(default)]
    pub sign_responses: Option<bool>,
    /// Message parts kept in the audit log.
    #[serde(default)]
    pub audit_messages: Option<MessageRetention>,
    /// Extra JSON field names to remove before logging.
    #[serde(default)]
    pub mask_fields: Option<Vec<String>>,
    /// Extra request headers passed to the upstream (lower-case names).
    #[serde(default)]
    pub forward_request_headers: Option<Vec<String>>,
    /// Extra upstream response headers passed to the app (lower-case names).
    #[serde(default)]
    pub forward_response_headers: Option<Vec<String>>,
}

/// Headers that no API may forward: credentials, cookies, routing and
/// method overrides that upstream frameworks act on, and the gateway's own
/// namespace (CONF-5).
pub const NEVER_FORWARDED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
    "signature",
    "signature-input",
];

/// Whether an API may let header `name` (lower case) through: never one of
/// [`NEVER_FORWARDED_HEADERS`] nor one of the gateway's own `x-menshen-*`.
pub fn forwardable_header(name: &str) -> bool {
    !NEVER_FORWARDED_HEADERS.contains(&name) && !name.starts_with("x-menshen-")
}

fn header_list(field: &str, v: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut out = Vec::with_capacity(v.len());
    for h in v {
        let n = h.trim().to_ascii_lowercase();
        let token = !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token {
            return Err(ValidationError::new(
                field,
                format!("`{h}` is not a header name (letters, digits, `-`, `_`; 1-64 characters)"),
            ));
        }
        if !forwardable_header(&n) {
            return Err(ValidationError::new(
                field,
                format!("`{n}` is never forwarded: the gateway sets or strips it itself"),
            ));
        }
        out.push(n);
    }
    Ok(out)
}

impl NewApiControls {
    /// Apply the overrides to the level's minimum and validate the result.
    pub fn resolve(&self, level: Level) -> Result<ApiControls, ValidationError> {
        let mut c = ApiControls::minimum(level);
        if let Some(a) = &self.auth {
            c.auth = a.clone();
        }
        if let Some(s) = self.sign_responses {
            c.sign_responses = s;
        }
        if let Some(m) = self.audit_messages {
            c.audit_messages = m;
        }
        if let Some(f) = &self.mask_fields {
            if f.iter().any(|x| x.is_empty() || x.len() > 64) {
                return Err(ValidationError::new(
                    "controls.mask_fields",
                    "field names must be 1-64 characters",
                ));
            }
            c.mask_fields = f.clone();
        }
        if let Some(h) = &self.forward_request_headers {
            c.forward_request_headers = header_list("controls.forward_request_headers", h)?;
        }
        if let Some(h) = &self.forward_response_headers {
            c.forward_response_headers = header_list("controls.forward_response_headers", h)?;
        }
        c.validate_for(level)?;
        Ok(c)
    }
}

str_enum!(
    /// Whether an IP rule allows or blocks (AUTH-5).
    IpAction { Allow = "allow", Deny = "deny" }
);

/// An application party (应用方).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Immutable App_ID (应用唯一标识), issued by the platform (ONB-2).
    pub app_id: String,
    /// Display name.
    pub name: String,
    /// Server or mobile (ONB-5).
    pub kind: AppKind,
    /// Status (AUTH-4).
    pub status: AppStatus,
    /// Whether every call must come over mutual TLS with one of the app's
    /// registered client certificates.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Contact for notices.
    pub contact: Option<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// Input to create an application party.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// Display name, 1-128 characters.
    pub name: String,
    /// `server` or `mobile`.
    pub kind: AppKind,
    /// Optional contact (email).
    #[serde(default)]
    pub contact: Option<String>,
}

impl NewApp {
    /// Check every field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let n = self.name.trim();
        if n.is_empty() || n.chars().count() > 128 {
            return Err(ValidationError::new(
                "name",
                "must be 1-128 characters (the application party's display name)",
            ));
        }
        if n.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "name",
                "must not contain control characters",
            ));
        }
        if let Some(c) = &self.contact {
            if c.len() > 256 || c.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "contact",
                    "must be at most 256 printable characters",
                ));
            }
        }
        Ok(())
    }
}

/// An API in the catalog (LVL-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Api {
    /// Bank-defined unique API_ID (接口唯一标识).
    pub api_id: String,
    /// Interface version, e.g. `v1`.
    pub version: String,
    /// Display name.
    pub name: String,
    /// HTTP method.
    pub method: Method,
    /// Path pattern, e.g. `/v1/accounts/{account_id}/balance`.
    pub path: String,
    /// Upstream base URL (`http://` or `https://`).
    pub upstream: String,
    /// Security level.
    pub level: Level,
    /// Integration types offered.
    pub integrations: Vec<Integration>,
    /// Owning department or team.
    pub owner: String,
    /// Lifecycle state (CHG-2).
    pub lifecycle: Lifecycle,
    /// Controls beyond the level's minimum (LVL-3).
    pub controls: ApiControls,
    /// Platform-assigned U_API_ID (UID-2).
    pub u_api_id: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// Input to create an API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewApi {
    /// Bank-defined API_ID: 1-64 of `A-Z a-z 0-9 . _ -`.
    pub api_id: String,
    /// Version, 1-16 of `A-Z a-z 0-9 . _ -`; default `v1`.
    #[serde(default = "default_version")]
    pub version: String,
    /// Display name; defaults to the API_ID.
    #[serde(default)]
    pub name: Option<String>,
    /// HTTP method.
    pub method: Method,
    /// Path pattern.
    pub path: String,
    /// Upstream base URL.
    pub upstream: String,
    /// Security level.
    pub level: Level,
    /// Integration types; default server-to-server.
    #[serde(default)]
    pub integrations: Vec<Integration>,
    /// Owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// First-level service category for the U_API_ID (1-99).
    pub category: u8,
    /// Second-level service category for the U_API_ID (1-9999).
    pub subcategory: u16,
    /// Initial lifecycle; default `published`.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// Controls beyond the level's minimum; default: the minimum.
    #[serde(default)]
    pub controls: Option<NewApiControls>,
}

fn default_version() -> String {
    "v1".into()
}

fn is_ident(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Check an upstream base URL: `http(s)://host[:port][/path]`, no query,
/// fragment or credentials.
pub fn validate_upstream(url: &str) -> Result<(), ValidationError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| ValidationError::new("upstream", "must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(ValidationError::new(
            "upstream",
            "must name a host, e.g. http://10.1.2.3:8080",
        ));
    }
    if authority.contains('@') {
        return Err(ValidationError::new(
            "upstream",
            "must not carry credentials (user@host)",
        ));
    }
    if url.contains('?')
        || url.contains('#')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ValidationError::new(
            "upstream",
            "must be a base URL without query, fragment or spaces",
        ));
    }
    if url.len() > 512 {
        return Err(ValidationError::new(
            "upstream",
            "must be at most 512 characters",
        ));
    }
    Ok(())
}

impl NewApi {
    /// Check every field; the caller adds level/credential policy checks.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !is_ident(&self.api_id, 64) {
            return Err(ValidationError::new(
                "api_id",
                "must be 1-64 characters of A-Z a-z 0-9 . _ -",
            ));
        }
        if !is_ident(&self.version, 16) {
            return Err(ValidationError::new(
                "version",
                "must be 1-16 characters of A-Z a-z 0-9 . _ -",
            ));
        }
        if let Some(n) = &self.name {
            if n.chars().count() > 128 || n.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "name",
                    "must be at most 128 printable characters",
                ));
            }
        }
        PathPattern::parse(&self.path).map_err(|e| ValidationError::new("path", e.to_string()))?;
        validate_upstream(&self.upstream)?;
        if !(1..=99).contains(&self.category) {
            return Err(ValidationError::new("category", "must be 1-99 (first-level service category, e.g. 1 accounts, 2 payment and settlement)"));
        }
        if !(1..=9999).contains(&self.subcategory) {
            return Err(ValidationError::new(
                "subcategory",
                "must be 1-9999 (0 is reserved)",
            ));
        }
        if self.level > Level::A1 && self.integrations.contains(&Integration::MobileToServer) {
            return Err(ValidationError::new(
                "integrations",
                "mobile_to_server is allowed only on A1 APIs (LVL-4): use server_to_server",
            ));
        }
        self.controls
            .clone()
            .unwrap_or_default()
            .resolve(self.level)?;
        if let Some(o) = &self.owner {
            if o.len() > 128 || o.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "owner",
                    "must be at most 128 printable characters",
                ));
            }
        }
        Ok(())
    }
}

/// A grant: one app may call one API (ONB-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// App_ID.
    pub app_id: String,
    /// API_ID.
    pub api_id: String,
    /// When granted, RFC 3339.
    pub created_at: String,
}

/// Scope of an IP rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRule {
    /// Row id.
    pub id: i64,
    /// `None` for a global rule, else the App_ID it applies to.
    pub app_id: Option<String>,
    /// Allow or deny.
    pub action: IpAction,
    /// IPv4 or IPv6 network.
    pub cidr: ipnet::IpNet,
    /// Why.
    pub note: Option<String>,
    /// When added.
    pub created_at: String,
}

/// Input to add an IP rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewIpRule {
    /// App_ID, or absent for a global rule.
    #[serde(default)]
    pub app_id: Option<String>,
    /// `allow` or `deny`.
    pub action: IpAction,
    /// CIDR or single address.
    pub cidr: String,
    /// Why.
    #[serde(default)]
    pub note: Option<String>,
}

impl NewIpRule {
    /// Parse the CIDR (a bare address becomes /32 or /128) and check scope.
    pub fn parse_cidr(&self) -> Result<ipnet::IpNet, ValidationError> {
        let net = parse_cidr(&self.cidr).map_err(|m| ValidationError::new("cidr", m))?;
        if self.app_id.is_none() && self.action == IpAction::Allow {
            return Err(ValidationError::new(
                "action",
                "a global rule must be `deny` (the global list is a blocklist); give app_id for an allowlist",
            ));
        }
        Ok(net)
    }
}

/// Parse a CIDR or a bare IPv4/IPv6 address.
pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<ipnet::IpNet>() {
        return Ok(n.trunc());
    }
    if let Ok(a) = s.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(a));
    }
    Err(format!(
        "`{s}` is not an IPv4/IPv6 address or CIDR (e.g. 203.0.113.0/24 or 2001:db8::/32)"
    ))
}
