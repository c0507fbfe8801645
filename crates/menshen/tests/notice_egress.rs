//! Notices to apps attacked from the app's side (MON-4, KEY-4): the
//! notification URL is chosen outside the bank, the node that POSTs to it
//! is inside. A URL naming an internal address (loopback by IP or by name,
//! the link-local metadata service, an IPv4-mapped IPv6 form) gets no
//! connection at all unless the operator allowed that network; a redirect
//! is not followed; a receiver that answers 200 and then streams forever is
//! judged on its status line and hung up on (nothing read into memory); a
//! receiver that never answers does not hold back other apps' notices
//! while it waits to be retried. A URL naming an internal IP address is
//! refused when registered already. Everything on 127.0.0.1, bounded.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use menshen::node::alerts::notify::Notifier;
use menshen::node::alerts::{deliver, AlertsConfig};
use menshen_model::notice::{AppNotice, NewAppNotice, NoticeState};
use menshen_model::{AppKind, NewApp};
use menshen_store::{ControlPlane, SqliteStore, UApiConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn control_plane(dir: &std::path::Path) -> ControlPlane {
    let cp = ControlPlane::new(
        Arc::new(SqliteStore::open(&dir.join("menshen.db")).unwrap()),
        Arc::new(
            menshen_crypto::MasterKey::from_text(&menshen_crypto::MasterKey::generate()).unwrap(),
        ),
        UApiConfig {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
    );
    cp.ensure_bank_keys().await.unwrap();
    cp
}

async fn app_with_url(cp: &ControlPlane, name: &str, url: &str) -> String {
    cp.create_app(&NewApp {
        name: name.into(),
        kind: AppKind::Server,
        contact: None,
        notify_url: Some(url.into()),
    })
    .await
    .unwrap()
    .app
    .app_id
}

fn notice(app: &str, key: &str) -> NewAppNotice {
    NewAppNotice {
        key: key.into(),
        app_id: app.into(),
        kind: "credential_expiry".into(),
        body: json!({"type": "credential_expiry", "app_id": app, "threshold": "7d"}),
    }
}

/// A TCP listener that counts the connections it accepts and never answers.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            n2.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (port, n)
}

/// An HTTP receiver answering every request with `head` (a status line
/// and headers), then nothing more.
async fn answering(head: String) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let head = head.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    port
}

async fn notices_of(cp: &ControlPlane, app: &str) -> Vec<AppNotice> {
    cp.store.list_app_notices(Some(app), None).await.unwrap()
}

async fn until_state(cp: &ControlPlane, app: &str, want: NoticeState) -> AppNotice {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let list = notices_of(cp, app).await;
        if let Some(n) = list.iter().find(|n| n.state == want) {
            return n.clone();
        }
        assert!(
            Instant::now() < end,
            "no {want:?} notice for {app} within 20 s: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn config(loopback: bool, attempts: u32) -> AlertsConfig {
    let mut cfg = AlertsConfig {
        retry_base_ms: 50,
        retry_max_ms: 200,
        timeout_ms: 2000,
        max_attempts: attempts,
        ..AlertsConfig::default()
    };
    cfg.app_notice.allow_http_loopback = loopback;
    cfg
}

/// MON-4 (SSRF): a notification URL naming an internal address by IP, by
/// a name that resolves to one (also numeric spellings such as
/// `2130706433`), in an IPv4-mapped IPv6 form, or the
/// link-local metadata service is refused before any connection is made,
/// and the notice says why; a network the operator lists in
/// `alerts.app_notice.allow_networks` is reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_4_notices_never_connect_to_internal_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let (port, accepted) = counting_listener().await;
    let cfg = config(false, 1);
    let out = Arc::new(deliver::Outbox::start(&cfg, "node-1".into()).unwrap());
    let notifier = Notifier::new(cp.clone(), &cfg, out.clone()).unwrap();
    let urls = [
        format!("https://127.0.0.1:{port}/hooks"),
        format!("https://localhost:{port}/hooks"),
        format!("https://[::ffff:127.0.0.1]:{port}/hooks"),
        format!("https://127.1.2.3:{port}/hooks"),
        // Numeric spellings the system resolver would read as 127.0.0.1.
        format!("https://2130706433:{port}/hooks"),
        format!("https://0x7f000001:{port}/hooks"),
        format!("https://127.1:{port}/hooks"),
        "https://169.254.169.254/latest/meta-data/".to_string(),
        "https://0.0.0.0/hooks".to_string(),
    ];
    let mut apps = Vec::new();
    for (i, u) in urls.iter().enumerate() {
        let app = app_with_url(&cp, &format!("Hostile {i}"), u).await;
        assert!(notifier
            .notify(notice(&app, &format!("k{i}")))
            .await
            .is_some());
        apps.push(app);
    }
    for (app, u) in apps.iter().zip(&urls) {
        let n = until_state(&cp, app, NoticeState::Failed).await;
        let err = n.last_error.clone().unwrap_or_default();
        // A numeric spelling is no DNS name to rustls: refused before any
        // connection as well.
        assert!(
            err.contains("not a public address") || err.contains("invalid dns name"),
            "{u}: {err}"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the node connected to a loopback receiver"
    );

    // The operator's allow list opens a private network (here loopback):
    // the connection is made (the TLS handshake then fails, no receiver).
    let mut cfg = config(false, 1);
    cfg.app_notice.allow_networks = vec!["127.0.0.0/8".parse().unwrap()];
    let allowed = Notifier::new(cp.clone(), &cfg, out).unwrap();
    let app = app_with_url(&cp, "Partner", &format!("https://127.0.0.1:{port}/hooks")).await;
    assert!(allowed.notify(notice(&app, "partner")).await.is_some());
    let n = until_state(&cp, &app, NoticeState::Failed).await;
    assert!(
        !n.last_error
            .clone()
            .unwrap_or_default()
            .contains("not a public address"),
        "{n:?}"
    );
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}

/// MON-4: a receiver answering with a redirect (to an internal address)
/// is not followed: the attempt fails naming the status, the redirect's
/// target gets no connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_4_a_redirect_from_the_receiver_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let (target, accepted) = counting_listener().await;
    let port = answering(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{target}/internal\r\ncontent-length: 0\r\n\r\n"
    ))
    .await;
    let cfg = config(true, 1);
    let out = Arc::new(deliver::Outbox::start(&cfg, "node-1".into()).unwrap());
    let notifier = Notifier::new(cp.clone(), &cfg, out).unwrap();
    let app = app_with_url(&cp, "Redirector", &format!("http://127.0.0.1:{port}/hooks")).await;
    notifier.notify(notice(&app, "r")).await.unwrap();
    let n = until_state(&cp, &app, NoticeState::Failed).await;
    assert_eq!(n.last_error.as_deref(), Some("answered 307"), "{n:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

/// MON-4: a receiver that answers 200 and then streams its body forever:
/// the notice is delivered on the status line, and the node hangs up
/// instead of reading (and holding) the stream until its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_4_a_receiver_streaming_forever_is_hung_up_on() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (hung_up_tx, mut hung_up) = tokio::sync::mpsc::channel::<usize>(1);
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        let mut sent = 0usize;
        // Bounded: 4 GiB at most, or until the node hangs up.
        while sent < (4 << 30) {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += 0x10000;
        }
        let _ = hung_up_tx.send(sent).await;
    });
    // A long timeout: without the fix the attempt would read for all of it.
    let mut cfg = config(true, 1);
    cfg.timeout_ms = 15_000;
    let out = Arc::new(deliver::Outbox::start(&cfg, "node-1".into()).unwrap());
    let notifier = Notifier::new(cp.clone(), &cfg, out).unwrap();
    let app = app_with_url(&cp, "Streamer", &format!("http://127.0.0.1:{port}/hooks")).await;
    let started = Instant::now();
    notifier.notify(notice(&app, "s")).await.unwrap();
    let n = until_state(&cp, &app, NoticeState::Delivered).await;
    assert!(n.last_error.is_none(), "{n:?}");
    let sent = tokio::time::timeout(Duration::from_secs(10), hung_up.recv())
        .await
        .expect("the node still reads the endless body")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "delivered on the status line, not at the timeout"
    );
    assert!(sent < (4 << 30), "the node hung up");
}

/// MON-4: a receiver that never answers holds a delivery slot for one
/// attempt at a time, not across its back-off: with one slot, another
/// app's notice is delivered while the silent one still waits to be
/// retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_4_a_silent_receiver_does_not_hold_back_other_apps() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control_plane(dir.path()).await;
    let (silent, _) = counting_listener().await;
    let ok = answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
    let mut cfg = config(true, 3);
    cfg.timeout_ms = 500;
    cfg.retry_base_ms = 5_000;
    cfg.retry_max_ms = 5_000;
    cfg.app_notice.parallel = 1;
    let out = Arc::new(deliver::Outbox::start(&cfg, "node-1".into()).unwrap());
    let notifier = Notifier::new(cp.clone(), &cfg, out).unwrap();
    let a = app_with_url(&cp, "Silent", &format!("http://127.0.0.1:{silent}/hooks")).await;
    let b = app_with_url(&cp, "Fine", &format!("http://127.0.0.1:{ok}/hooks")).await;
    notifier.notify(notice(&a, "a")).await.unwrap();
    // The silent receiver's first attempt has run out.
    let end = Instant::now() + Duration::from_secs(10);
    while notices_of(&cp, &a).await[0].attempts < 1 {
        assert!(Instant::now() < end, "first attempt not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    notifier.notify(notice(&b, "b")).await.unwrap();
    until_state(&cp, &b, NoticeState::Delivered).await;
    let a_now = &notices_of(&cp, &a).await[0];
    assert_eq!(
        a_now.state,
        NoticeState::Pending,
        "the other app's notice waited for the silent one to give up: {a_now:?}"
    );
}

/// MON-4 (SSRF): registering a notification URL that names an internal IP
/// address (metadata service, RFC 1918, loopback, IPv4-mapped) is refused
/// 400 naming `notify_url`, at creation and when changed; a public address
/// or a DNS name is accepted; a network the operator allows is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_4_an_internal_ip_notify_url_is_refused_when_registered() {
    let h = common::Harness::start_with(common::HarnessOptions {
        configure: Some(Box::new(|c| {
            c.alerts.app_notice.allow_networks = vec!["10.20.0.0/16".parse().unwrap()];
        })),
        ..Default::default()
    })
    .await;
    for bad in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.1.2.3:8443/n",
        "https://192.168.0.10/n",
        "https://127.0.0.1:8443/n",
        "https://[::ffff:169.254.169.254]/n",
        "https://[fd00::1]/n",
        "https://0.0.0.0/n",
    ] {
        let (s, v) = h
            .admin(
                "POST",
                "/v1/apps",
                Some(json!({"name": "A", "kind": "server", "notify_url": bad})),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (400, Some("notify_url")),
            "{bad}: {v}"
        );
    }
    let (app, _) = h.app("A", "server").await;
    let (s, v) = h
        .admin(
            "PUT",
            &format!("/v1/apps/{app}/notify-url"),
            Some(json!({"notify_url": "https://169.254.169.254/x"})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (400, Some("notify_url")), "{v}");
    for good in [
        "https://fintech.example/hooks",
        "https://8.8.8.8/hooks",
        "https://10.20.3.4:8443/hooks",
    ] {
        let (s, v) = h
            .admin(
                "PUT",
                &format!("/v1/apps/{app}/notify-url"),
                Some(json!({"notify_url": good})),
            )
            .await;
        assert_eq!(s, 200, "{good}: {v}");
    }
}
