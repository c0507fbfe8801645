//! Bounded under attack (issue 9): a flood of idle connections (plain TCP
//! that never starts TLS, and TLS connections that never send a request)
//! cannot lock signed calls out or exhaust file descriptors. Alone in its
//! test binary, so the process's descriptor count is this test's.

mod common;

use std::time::Duration;

use common::{eventually, open_fds, raw_tls, setup_with, HarnessOptions};

const CAP: usize = 40;

#[tokio::test]
async fn an_idle_connection_flood_is_capped_and_signed_calls_still_get_in() {
    let s = setup_with(HarnessOptions {
        tune: Some(|g| {
            g.max_connections = CAP;
            g.max_connections_per_ip = CAP;
        }),
        ..Default::default()
    })
    .await;
    let state = s.h.node().gateway.state.clone();
    let addr = s.h.node().gateway.addrs[0];
    let fds_before = open_fds();
    let mut held_tcp = Vec::new();
    let mut held_tls = Vec::new();
    for i in 0..150 {
        if i % 2 == 0 {
            held_tcp.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        } else {
            held_tls.push(raw_tls(&s.h, false).await);
        }
    }
    // The gateway holds at most the cap (plus connections being shed).
    eventually("shed connections closed", Duration::from_secs(10), || {
        state.connections.open() <= CAP
    })
    .await;
    // A signed call still gets in, several times.
    for _ in 0..5 {
        let r = s.client.call("GET", "/v1/items/1", None).await.unwrap();
        assert_eq!(r.status, 200);
    }
    // The attacker's 150 sockets are its own; the gateway's side stays
    // within the cap (a generous margin for the runtime's own descriptors).
    let fds = open_fds();
    assert!(
        fds <= fds_before + 150 + CAP + 20,
        "{fds} descriptors open, {fds_before} before the flood"
    );
    assert!(state.connections.open() <= CAP + 1);
    drop((held_tcp, held_tls));
}
