//! APIs in the catalog (LVL-1, CHG-2): lifecycle, method, integration, the
//! record and its input.

use serde::{Deserialize, Serialize};

use crate::{ApiControls, Level, NewApiControls, PathPattern, ValidationError};

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
    /// Upstream: a base URL (`http://` or `https://`), or `upstream://NAME`
    /// naming an upstream of the nodes' config (TRF-2).
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

/// The name of a named upstream (`upstream://NAME`, defined in the nodes'
/// config file, TRF-2), if `url` is one.
pub fn upstream_name(url: &str) -> Option<&str> {
    url.strip_prefix("upstream://")
}

/// Whether `name` may name an upstream: 1-64 of `a-z 0-9 _ -`, starting
/// with a letter or digit.
pub fn upstream_name_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Check an upstream: a base URL `http(s)://host[:port][/path]` (no query,
/// fragment or credentials), or `upstream://NAME` naming an upstream of the
/// nodes' config (several targets, health checks, circuit breaker: TRF-2).
pub fn validate_upstream(url: &str) -> Result<(), ValidationError> {
    if let Some(name) = upstream_name(url) {
        if !upstream_name_valid(name) {
            return Err(ValidationError::new(
                "upstream",
                "upstream://NAME: the name must be 1-64 of a-z 0-9 _ - (an upstream of the nodes' config, [gateway.upstreams.NAME])",
            ));
        }
        return Ok(());
    }
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

/// Path prefixes no catalog API may use: the gateway serves them itself
/// (the authorization server's endpoints and pages, the published keys).
pub const RESERVED_PATH_PREFIXES: &[&str] = &["/oauth2/", "/me/", "/.well-known/"];

impl NewApi {
    /// Categories whose A2/A3 APIs read or change customer data: accounts,
    /// payment and settlement, credit, credit card (U_API_ID Annex A).
    pub const CUSTOMER_DATA_CATEGORIES: &'static [u8] = &[1, 2, 4, 5];

    /// The API's controls: the overrides applied to the level's minimum,
    /// and customer consent required (USR-2) for an A2/A3 API of a
    /// customer-data category, whatever the overrides say. An account
    /// parameter must be one of the path's parameters.
    pub fn resolved_controls(&self) -> Result<ApiControls, ValidationError> {
        let mut c = self
            .controls
            .clone()
            .unwrap_or_default()
            .resolve(self.level)?;
        if self.level >= Level::A2 && Self::CUSTOMER_DATA_CATEGORIES.contains(&self.category) {
            if self
                .controls
                .as_ref()
                .and_then(|c| c.consent.as_ref())
                .is_some_and(|r| !r.required)
            {
                return Err(ValidationError::new(
                    "controls.consent.required",
                    "an A2/A3 API of a customer-data category (1 accounts, 2 payment, 4 credit, 5 credit card) always requires customer consent (USR-2): leave it true or unset",
                ));
            }
            c.consent.required = true;
        }
        if let Some(p) = &c.consent.account_param {
            let known = PathPattern::parse(&self.path)
                .map(|pp| {
                    pp.segments()
                        .iter()
                        .any(|s| matches!(s, crate::path::Segment::Param(n) if n == p))
                })
                .unwrap_or(false);
            if !known {
                return Err(ValidationError::new(
                    "controls.consent.account_param",
                    "must name one of the path's {parameters}",
                ));
            }
        }
        if let Some(ptr) = &c.consent.account_pointer {
            if !(ptr.starts_with('/') && ptr.len() <= 256) {
                return Err(ValidationError::new(
                    "controls.consent.account_pointer",
                    "must be a JSON Pointer such as /payer/account (RFC 6901)",
                ));
            }
        }
        Ok(c)
    }

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
        if RESERVED_PATH_PREFIXES
            .iter()
            .any(|p| self.path.starts_with(p))
            || self.path == "/me"
        {
            return Err(ValidationError::new(
                "path",
                "/oauth2/, /me/ and /.well-known/ belong to the gateway (authorization server, keys): choose another path",
            ));
        }
        if self.level > Level::A1 && self.integrations.contains(&Integration::MobileToServer) {
            return Err(ValidationError::new(
                "integrations",
                "mobile_to_server is allowed only on A1 APIs (LVL-4): use server_to_server",
            ));
        }
        self.resolved_controls()?;
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

#[cfg(test)]
mod reserved_path_tests {
    use super::*;

    fn api(path: &str) -> NewApi {
        serde_json::from_value(serde_json::json!({
            "api_id": "x", "method": "GET", "path": path,
            "upstream": "http://127.0.0.1:1", "level": "A1", "category": 3, "subcategory": 1
        }))
        .unwrap()
    }

    #[test]
    fn the_gateways_own_paths_are_refused_for_catalog_apis() {
        for p in [
            "/oauth2/par",
            "/me/consents",
            "/me",
            "/.well-known/menshen/keys",
        ] {
            let e = api(p).validate().unwrap_err();
            assert_eq!(e.field, "path", "{p}");
        }
        assert!(api("/v1/oauth2/par").validate().is_ok());
        assert!(api("/mes/x").validate().is_ok());
    }
}
