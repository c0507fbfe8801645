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
    if plain_http {
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return bad("must be https:// (plain http:// only to a loopback address, for tests)");
        }
    }
    Ok(NotifyUrlKind { plain_http })
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
