//! IP allow and deny rules (AUTH-5).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

str_enum!(
    /// Whether an IP rule allows or blocks (AUTH-5).
    IpAction { Allow = "allow", Deny = "deny" }
);

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
