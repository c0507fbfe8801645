//! Connection accounting (issue 9: bounded under attack, AUTH-6): a global
//! cap and a per-client-IP cap on open connections, idle tracking, and
//! shedding of the oldest idle connection when a cap is reached, so that idle
//! or half-open connections cannot lock out signed calls.
//!
//! Every open connection holds a [`ConnGuard`]; the connection task watches
//! its [`Slot`] for a close request (shedding) and for idleness.
// std Mutex (clippy.toml ban list): the connection registry is locked once
// per accepted or closed connection for a few map operations, never across
// an await and never per request.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// The key a client is counted under: its IPv4 address, or its IPv6 /64
/// (one subscriber's prefix: counting single IPv6 addresses would let one
/// client take every slot).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match crate::snapshot::canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(o))
        }
        v4 => v4,
    }
}

/// Connections over `max` tolerated while shed ones close.
pub const SHED_SLACK: usize = 64;

/// One open connection, as the registry and its own task see it.
pub struct Slot {
    id: u64,
    ip: IpAddr,
    epoch: Instant,
    /// Requests (HTTP/1.1) or streams (HTTP/2) being served now.
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last request start or end.
    last_active_ms: AtomicU64,
    /// Whether the registry asked this connection to close.
    shed: AtomicBool,
    /// Whether a request on it was authenticated (kept longer when shedding).
    proven: AtomicBool,
    /// Whether a bare LF was seen in an HTTP/1.1 head on it.
    bare_lf: AtomicBool,
    /// Whether part of an HTTP/1.1 head is pending.
    head_pending: AtomicBool,
    close: Notify,
}

impl Slot {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A request started on this connection.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.last_active_ms.store(self.now_ms(), Ordering::Release);
    }

    /// A request on this connection ended.
    pub fn request_ended(&self) {
        self.last_active_ms.store(self.now_ms(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Requests (or streams) being served on this connection now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A request on this connection carried a verified signature.
    pub fn mark_proven(&self) {
        self.proven.store(true, Ordering::Relaxed);
    }

    /// A bare LF was seen in a request head on this connection.
    pub fn mark_bare_lf(&self) {
        self.bare_lf.store(true, Ordering::Release);
    }

    /// Whether a bare LF was seen in a request head on this connection.
    pub fn bare_lf_seen(&self) -> bool {
        self.bare_lf.load(Ordering::Acquire)
    }

    /// Part of an HTTP/1.1 head has arrived (or not) and is incomplete.
    pub fn set_head_pending(&self, pending: bool) {
        self.head_pending.store(pending, Ordering::Relaxed);
    }

    /// Whether part of an HTTP/1.1 head is pending.
    pub fn head_pending(&self) -> bool {
        self.head_pending.load(Ordering::Relaxed)
    }

    /// How long the connection has been idle (no request in flight), or
    /// `None` while a request is in flight.
    pub fn idle_for_ms(&self) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(
            self.now_ms()
                .saturating_sub(self.last_active_ms.load(Ordering::Acquire)),
        )
    }

    /// Resolves when the registry asks this connection to close.
    pub async fn shed_requested(&self) {
        if self.shed.load(Ordering::Acquire) {
            return;
        }
        self.close.notified().await;
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    slots: HashMap<u64, Arc<Slot>>,
    per_ip: HashMap<IpAddr, usize>,
}

/// The registry of open connections.
pub struct Connections {
    max: usize,
    max_per_ip: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The global cap is reached and no connection is idle.
    Global,
    /// The client IP's cap is reached and none of its connections is idle.
    PerIp,
}

impl Refusal {
    /// The code used in the connection record.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Global => "CONNECTION_LIMIT",
            Refusal::PerIp => "CONNECTION_LIMIT_PER_IP",
        }
    }
}

/// Held by a connection's task; leaving the registry on drop.
pub struct ConnGuard {
    reg: Arc<Connections>,
    /// The connection's slot.
    pub slot: Arc<Slot>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut g = self.reg.lock();
        g.slots.remove(&self.slot.id);
        if let Some(n) = g.per_ip.get_mut(&self.slot.ip) {
            *n -= 1;
            if *n == 0 {
                g.per_ip.remove(&self.slot.ip);
            }
        }
    }
}

impl Connections {
    /// A registry with these caps.
    pub fn new(max: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Connections {
            max,
            max_per_ip,
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated
        // in a way that matters more than refusing every connection would.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().slots.len()
    }

    /// Admit a connection from `ip`, shedding the oldest idle connection (of
    /// that IP for the per-IP cap, of anyone for the global cap; connections
    /// that never carried a verified call first) when a cap is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        let mut g = self.lock();
        let from_ip = g.per_ip.get(&ip).copied().unwrap_or(0);
        let live = |s: &Slot| !s.shed.load(Ordering::Acquire);
        if from_ip >= self.max_per_ip {
            let ip_live = g.slots.values().filter(|s| s.ip == ip && live(s)).count();
            if ip_live >= self.max_per_ip && !shed_oldest_idle(&g, |s| s.ip == ip) {
                return Err(Refusal::PerIp);
            }
        }
        // Connections being shed still hold a descriptor for up to a second:
        // past this slack nothing is admitted, shed or not.
        if g.slots.len() >= self.max + SHED_SLACK {
            return Err(Refusal::Global);
        }
        if g.slots.len() >= self.max {
            let all_live = g.slots.values().filter(|s| live(s)).count();
            if all_live >= self.max && !shed_oldest_idle(&g, |_| true) {
                return Err(Refusal::Global);
            }
        }
        g.next_id += 1;
        let slot = Arc::new(Slot {
            id: g.next_id,
            ip,
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            shed: AtomicBool::new(false),
            proven: AtomicBool::new(false),
            bare_lf: AtomicBool::new(false),
            head_pending: AtomicBool::new(false),
            close: Notify::new(),
        });
        g.slots.insert(slot.id, slot.clone());
        *g.per_ip.entry(ip).or_insert(0) += 1;
        Ok(ConnGuard {
            reg: self.clone(),
            slot,
        })
    }
}

/// Ask the oldest idle connection matching `pick` to close (unproven ones
/// before proven ones). Returns whether one was found.
fn shed_oldest_idle(g: &Inner, pick: impl Fn(&Slot) -> bool) -> bool {
    let victim = g
        .slots
        .values()
        .filter(|s| pick(s) && !s.shed.load(Ordering::Acquire))
        .filter_map(|s| s.idle_for_ms().map(|idle| (s, idle)))
        .max_by_key(|(s, idle)| (!s.proven.load(Ordering::Relaxed), *idle));
    match victim {
        Some((s, _)) => {
            s.shed.store(true, Ordering::Release);
            s.close.notify_one();
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_shed_the_oldest_idle_connection_and_refuse_when_none_is_idle() {
        let reg = Connections::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = reg.admit(a).unwrap();
        let g2 = reg.admit(a).unwrap();
        g2.slot.request_started();
        // Per-IP cap: g1 is idle, so it is shed for the newcomer.
        let g3 = reg.admit(a).unwrap();
        assert!(g1.slot.shed.load(Ordering::Acquire));
        assert!(!g2.slot.shed.load(Ordering::Acquire));
        g3.slot.request_started();
        // Per-IP cap again: g1 is already leaving, g2 and g3 are busy.
        assert_eq!(reg.admit(a).err(), Some(Refusal::PerIp));
        drop(g1);
        // Global cap (3): b gets in, then nothing is idle.
        let g4 = reg.admit(b).unwrap();
        g4.slot.request_started();
        assert_eq!(reg.admit(b).err(), Some(Refusal::Global));
        g4.slot.request_ended();
        let _g5 = reg.admit(b).unwrap();
        assert!(g4.slot.shed.load(Ordering::Acquire));
        drop((g2, g3, g4));
        assert_eq!(reg.open(), 1);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_prefix() {
        let reg = Connections::new(100, 1);
        let a = client_key("2001:db8:1:2::1".parse().unwrap());
        let b = client_key("2001:db8:1:2:ffff::7".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, client_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        let g = reg.admit(a).unwrap();
        g.slot.request_started();
        assert_eq!(reg.admit(b).err(), Some(Refusal::PerIp));
    }

    #[test]
    fn unproven_idle_connections_go_before_proven_ones() {
        let reg = Connections::new(2, 10);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let proven = reg.admit(ip).unwrap();
        proven.slot.mark_proven();
        let fresh = reg.admit(ip).unwrap();
        let _new = reg.admit(ip).unwrap();
        assert!(fresh.slot.shed.load(Ordering::Acquire));
        assert!(!proven.slot.shed.load(Ordering::Acquire));
    }
}
