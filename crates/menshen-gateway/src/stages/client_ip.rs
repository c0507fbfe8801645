//! Client IP and the global blocklist (AUTH-5).
//!
//! The client IP is the TCP peer. Only when the peer is a configured trusted
//! proxy is `X-Forwarded-For` read, right to left, skipping trusted proxies, so
//! a client cannot name an allowed address to get around a list.

use std::net::IpAddr;

use ipnet::IpNet;
use menshen_protocol::ErrorCode;

use crate::exchange::Exchange;
use crate::snapshot::{canonical_ip, ip_in};

/// Stage name.
pub const NAME: &str = "client_ip";
use crate::GatewayError;

/// Determine the client IP from the peer and (trusted) `X-Forwarded-For`.
pub fn resolve(peer: IpAddr, xff: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    if trusted.is_empty() || !ip_in(trusted, peer) {
        return peer;
    }
    let Some(xff) = xff else {
        return peer;
    };
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if ip_in(trusted, ip) => continue,
            Ok(ip) => return ip,
            // A garbled hop: stop believing the header beyond this point.
            Err(_) => return peer,
        }
    }
    peer
}

/// Set the client IP and refuse globally blocked addresses.
pub fn on_request(ex: &mut Exchange, trusted: &[IpNet]) -> Result<(), GatewayError> {
    // Only a trusted proxy's header is read (and only then allocated).
    let peer = canonical_ip(ex.peer.ip());
    ex.client_ip = canonical_ip(if !trusted.is_empty() && ip_in(trusted, peer) {
        let xff = ex
            .parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        resolve(peer, (!xff.is_empty()).then_some(xff.as_str()), trusted)
    } else {
        peer
    });
    if ip_in(&ex.snapshot.global_deny, ex.client_ip) {
        return Err(GatewayError::new(
            ErrorCode::IpForbidden,
            format!("client IP {} on the global blocklist", ex.client_ip),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_5_xff_only_from_trusted_proxies() {
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        let lb: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // Untrusted peer: header ignored.
        assert_eq!(resolve(peer, Some("203.0.113.9"), &trusted), peer);
        assert_eq!(resolve(peer, Some("203.0.113.9"), &[]), peer);
        // Trusted peer: right-most untrusted hop.
        assert_eq!(
            resolve(lb, Some("1.1.1.1, 203.0.113.9, 10.0.0.7"), &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(resolve(lb, Some("garbage"), &trusted), lb);
        assert_eq!(resolve(lb, None, &trusted), lb);
    }
}
