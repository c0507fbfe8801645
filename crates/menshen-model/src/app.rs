//! Application parties (应用方): kind, status, the record and its input.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

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
    /// The app's notification URL (应用方通知地址, MON-4, KEY-4): where the
    /// bank POSTs signed notices about the app (its credentials close to
    /// expiry, its suspension). See [`check_notify_url`].
    #[serde(default)]
    pub notify_url: Option<String>,
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
    /// Optional notification URL (应用方通知地址): see [`check_notify_url`].
    #[serde(default)]
    pub notify_url: Option<String>,
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
        if let Some(u) = &self.notify_url {
            check_notify_url(u)?;
        }
        Ok(())
    }
}

/// What [`check_notify_url`] found out about a notification URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyUrlKind {
    /// Plain `http://` (only ever to a loopback host).
    pub plain_http: bool,
    /// The host, when the URL names an IP address rather than a DNS name
    /// (see [`notify_ip_permitted`]).
    pub ip: Option<std::net::IpAddr>,
}

/// Check an app's notification URL (应用方通知地址): an absolute
/// `https://` URL of at most 512 characters, with a host, without user
/// info or fragment; plain `http://` only to a loopback host (`127.x.y.z`,
/// `[::1]`, `localhost`), for tests and demos: whether such a URL is
/// accepted at all is the operator's choice
/// (`alerts.app_notice.allow_http_loopback`), made by the caller from
/// [`NotifyUrlKind::plain_http`].
pub fn check_notify_url(url: &str) -> Result<NotifyUrlKind, ValidationError> {
    let bad = |why: &str| Err(ValidationError::new("notify_url", why.to_string()));
    if url.is_empty() || url.len() > 512 || url.chars().any(|c| c.is_control() || c == ' ') {
        return bad("must be an https:// URL of at most 512 characters, without spaces");
    }
    let lower = url.to_ascii_lowercase();
    let (plain_http, rest) = if let Some(r) = lower.strip_prefix("https://") {
        (false, r)
    } else if let Some(r) = lower.strip_prefix("http://") {
        (true, r)
    } else {
        return bad("must start with https:// (plain http:// only to a loopback address)");
    };
    if url.contains('#') {
        return bad("must not carry a fragment (#...)");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return bad("must not carry user info (user:password@)");
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || port.starts_with(':') => {
                if h.parse::<std::net::Ipv6Addr>().is_err() {
                    return bad("has an invalid IPv6 host");
                }
                h.to_string()
            }
            _ => return bad("has an invalid IPv6 host"),
        }
    } else {
        let (h, port) = authority.split_once(':').unwrap_or((authority, ""));
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return bad("has an invalid port");
        }
        h.to_string()
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
    {
        return bad("must name a host (a DNS name or an IP address)");
    }
    let ip = host.parse::<std::net::IpAddr>().ok();
    if plain_http {
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return bad("must be https:// (plain http:// only to a loopback address, for tests)");
        }
    }
    Ok(NotifyUrlKind { plain_http, ip })
}

/// Whether notices may be sent to `ip` (MON-4; SSRF): a public unicast
/// address ([`is_public_ip`]), a loopback one when `loopback` (tests and
/// demos), or one in `allow` (private networks the operator lists). The
/// notifier applies it to every address it connects to; the admin API to
/// an IP address in the URL when it is registered.
pub fn notify_ip_permitted(ip: std::net::IpAddr, loopback: bool, allow: &[ipnet::IpNet]) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    if allow.iter().any(|n| n.contains(&ip)) {
        return true;
    }
    if ip.is_loopback() {
        return loopback;
    }
    is_public_ip(ip)
}

/// Whether `ip` is a public unicast address: not loopback, unspecified,
/// RFC 1918 private, link-local (the `169.254.169.254` metadata service
/// among them), shared address space (`100.64.0.0/10`), IETF protocol
/// assignments, benchmarking, documentation, reserved, multicast,
/// broadcast, IPv6 unique-local, link-local or site-local, nor an IPv4
/// address of these kinds embedded in IPv6 (mapped, compatible, NAT64,
/// 6to4).
pub fn is_public_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => is_public_v4(v4),
        std::net::IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: std::net::Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        // Shared address space (carrier-grade NAT), RFC 6598.
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // IETF protocol assignments, RFC 6890.
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        // Benchmarking, RFC 2544.
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        // Reserved (240.0.0.0/4).
        || o[0] >= 240)
}

fn is_public_v6(ip: std::net::Ipv6Addr) -> bool {
    use std::net::Ipv4Addr;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    if s[0] == 0x2002 {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32.
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        // IPv4-compatible (deprecated) ::/96.
        || s[..6] == [0, 0, 0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_4_notify_url_https_or_loopback_http_only() {
        assert!(
            !check_notify_url("https://app.example.com/notices")
                .unwrap()
                .plain_http
        );
        assert!(
            !check_notify_url("https://10.1.2.3:8443/n?x=1")
                .unwrap()
                .plain_http
        );
        assert!(
            check_notify_url("http://127.0.0.1:8080/n")
                .unwrap()
                .plain_http
        );
        assert!(check_notify_url("http://[::1]:8080/n").unwrap().plain_http);
        assert!(check_notify_url("http://localhost/n").unwrap().plain_http);
        for bad in [
            "http://app.example.com/n",
            "http://10.0.0.1/n",
            "ftp://x/y",
            "https://",
            "https://user:pw@app.example.com/",
            "https://app.example.com/#frag",
            "https://app.example.com:99999/",
            "https://[zz]/",
            "https://a b/",
            "app.example.com",
        ] {
            assert!(check_notify_url(bad).is_err(), "{bad}");
        }
    }
}
