//! The customer's side of authorization in a real browser (issue 11, USR-1,
//! USR-2, USR-6): Debian's `chromium`, headless, driven over the Chrome
//! DevTools Protocol. An app (the SDK) makes a PAR; the browser opens the
//! authorize URL, logs in, ticks one account and approves; the bank
//! redirects it to the app's (loopback) redirect URI with the code; the app
//! exchanges it and calls the balance API (200). Then the customer logs in
//! at `/me/login`, finds the consent on `/me/consents` and revokes it; the
//! app's token is refused on the next call. Screenshots of the login,
//! consent and consents pages are saved under the test's temp dir (and
//! copied to `$MENSHEN_SCREENSHOTS` when set).
//!
//! The browser trusts the gateway's demo certificate by its public key
//! (`--ignore-certificate-errors-spki-list`, honoured with `--user-data-dir`);
//! every other certificate error stays an error.
//!
//! Without `chromium` (on the PATH, in /usr/bin, or `$MENSHEN_CHROMIUM`)
//! the test prints `skipped: chromium not installed` and passes, unless
//! `MENSHEN_REQUIRE_BROWSER=1` (`scripts/test` sets it and installs the
//! browser), where it fails.
// Tests may hold a std Mutex (the clippy.toml ban is for the product).
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::Harness;
use futures_util::{SinkExt, StreamExt};
use menshen_sdk::{AuthorizationRequest, Client, Pkce};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for any one thing (a page load, a CDP answer, the redirect).
const WAIT: Duration = Duration::from_secs(15);
/// The whole test, browser start to last call.
const WHOLE: Duration = Duration::from_secs(120);

const ALICE: &str = "alice";
const ALICE_PW: &str = "alice-password-1";
const ACCT: &str = "6222020000000001";
const OTHER_ACCT: &str = "6222020000000002";

// ---------------------------------------------------------------------------
// The browser process.

/// The `chromium` binary, if installed (`$MENSHEN_CHROMIUM`, else
/// `chromium` on the PATH or in /usr/bin).
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MENSHEN_CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// A headless chromium in its own process group; dropping it kills the
/// group (browser, zygote, renderers), so the test always ends by itself.
struct Chromium {
    child: Child,
    ws_url: String,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn launch(bin: &Path, spki_sha256_b64: &str) -> Chromium {
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("stderr.log");
        let child = Command::new(bin)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-proxy-server",
                "--password-store=basic",
                "--window-size=1000,1000",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!(
                "--ignore-certificate-errors-spki-list={spki_sha256_b64}"
            ))
            .arg("about:blank")
            .env("HOME", profile.path())
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .env("XDG_CACHE_HOME", profile.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut c = Chromium {
            child,
            ws_url: String::new(),
            _profile: profile,
        };
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/UUID"
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(l) = text
                .lines()
                .find_map(|l| l.strip_prefix("DevTools listening on "))
            {
                c.ws_url = l.trim().to_string();
                break;
            }
            if let Ok(Some(st)) = c.child.try_wait() {
                panic!("chromium exited ({st}) before listening:\n{text}");
            }
            assert!(
                t.elapsed() < WAIT,
                "chromium did not print its DevTools address within {WAIT:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        c
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let signal = |sig: &str, target: &str| {
            let _ = Command::new("kill")
                .args(["-s", sig, "--", target])
                .stderr(Stdio::null())
                .status();
        };
        // Politely first (the browser then reaps its own helpers), then the
        // whole group: chromium was started as its leader.
        signal("TERM", &pid);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal("KILL", &format!("-{pid}"));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// A small Chrome DevTools Protocol client (one WebSocket, flat sessions).

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

struct Cdp {
    out: mpsc::UnboundedSender<String>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    next: AtomicU64,
}

impl Cdp {
    async fn connect(ws_url: &str) -> Cdp {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(ws_url))
            .await
            .expect("DevTools WebSocket connect timed out")
            .expect("DevTools WebSocket connect");
        let (mut sink, mut stream) = ws.split();
        let (out, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(Message::text(m)).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (p, e) = (pending.clone(), events.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                match v.get("id").and_then(Value::as_u64) {
                    Some(id) => {
                        if let Some(tx) = p.lock().unwrap().remove(&id) {
                            let _ = tx.send(v);
                        }
                    }
                    None => e.lock().unwrap().push(v),
                }
            }
        });
        Cdp {
            out,
            pending,
            events,
            next: AtomicU64::new(1),
        }
    }

    /// One command; its `result`, or panics with the protocol error.
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.out.send(msg.to_string()).expect("CDP writer alive");
        let v = tokio::time::timeout(WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer within {WAIT:?}"))
            .expect("CDP reader alive");
        if let Some(e) = v.get("error") {
            panic!("{method}: {e}");
        }
        v["result"].clone()
    }

    fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// The first event after `mark` that `f` accepts, within `WAIT`, and
    /// its place in the log.
    async fn wait_event(
        &self,
        mark: usize,
        what: &str,
        f: impl Fn(&Value) -> bool,
    ) -> (usize, Value) {
        let t = Instant::now();
        loop {
            if let Some((i, v)) = self.events.lock().unwrap()[mark..]
                .iter()
                .enumerate()
                .find(|(_, v)| f(v))
            {
                return (mark + i, v.clone());
            }
            assert!(
                t.elapsed() < WAIT,
                "timed out waiting for {what}; browser log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every event named `method` so far.
    fn events_named(&self, method: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == method)
            .cloned()
            .collect()
    }

    /// The browser's own log lines (CSP violations, load errors), for
    /// failure messages.
    fn log(&self) -> String {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Log.entryAdded" => Some(format!(
                    "[{}] {} {}",
                    e["params"]["entry"]["level"].as_str().unwrap_or(""),
                    e["params"]["entry"]["text"].as_str().unwrap_or(""),
                    e["params"]["entry"]["url"].as_str().unwrap_or("")
                )),
                "Page.frameNavigated" => Some(format!(
                    "[navigated] {}",
                    e["params"]["frame"]["url"].as_str().unwrap_or("")
                )),
                "Network.loadingFailed" => Some(format!(
                    "[failed] {} {}",
                    e["params"]["errorText"].as_str().unwrap_or(""),
                    e["params"]["blockedReason"].as_str().unwrap_or("")
                )),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One tab.
struct Tab {
    cdp: Cdp,
    session: String,
    shots: PathBuf,
}

impl Tab {
    async fn open(cdp: Cdp, shots: PathBuf) -> Tab {
        let t = cdp
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let a = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": t["targetId"], "flatten": true}),
            )
            .await;
        let session = a["sessionId"].as_str().unwrap().to_string();
        for d in [
            "Page.enable",
            "Network.enable",
            "Log.enable",
            "Runtime.enable",
        ] {
            cdp.call(Some(&session), d, json!({})).await;
        }
        Tab {
            cdp,
            session,
            shots,
        }
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        self.cdp.call(Some(&self.session), method, params).await
    }

    /// Evaluate `expr` in the page (awaiting a promise); its value.
    async fn eval(&self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating {expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    async fn url(&self) -> String {
        self.eval("location.href")
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn html(&self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Run `action`, then wait until the main frame has navigated to a URL
    /// containing `path` and that document has loaded (earlier documents'
    /// late events do not count).
    async fn and_load(&self, path: &str, action: impl std::future::Future<Output = ()>) {
        let mark = self.cdp.mark();
        action.await;
        let s = self.session.clone();
        let (at, _) = self
            .cdp
            .wait_event(mark, &format!("the browser to navigate to {path}"), |e| {
                e["method"] == "Page.frameNavigated"
                    && e["sessionId"] == s.as_str()
                    && e["params"]["frame"].get("parentId").is_none()
                    && e["params"]["frame"]["url"]
                        .as_str()
                        .is_some_and(|u| u.contains(path))
            })
            .await;
        self.cdp
            .wait_event(at + 1, &format!("{path} to load"), |e| {
                e["method"] == "Page.loadEventFired" && e["sessionId"] == s.as_str()
            })
            .await;
    }

    async fn goto(&self, url: &str, path: &str) {
        self.and_load(path, async {
            let r = self.call("Page.navigate", json!({"url": url})).await;
            assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
        })
        .await;
    }

    /// Click the element `selector` (a real DOM click, as a user would).
    async fn click(&self, selector: &str) {
        let ok = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
                json!(selector)
            ))
            .await;
        assert_eq!(ok, json!(true), "no {selector} on {}", self.html().await);
    }

    async fn fill(&self, name: &str, value: &str) {
        let ok = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector('input[name=\"{name}\"]'); if (!e) return false; e.value = {}; return true; }})()",
                json!(value)
            ))
            .await;
        assert_eq!(ok, json!(true), "no input {name} on {}", self.html().await);
    }

    /// A PNG of the page, saved as `<shots>/<name>.png`; asserts it is one.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .unwrap();
        assert!(
            png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{name}: not a PNG ({} bytes)",
            png.len()
        );
        std::fs::create_dir_all(&self.shots).unwrap();
        let p = self.shots.join(format!("{name}.png"));
        std::fs::write(&p, &png).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 0);
        println!("screenshot: {}", p.display());
        p
    }
}

// ---------------------------------------------------------------------------
// The app's redirect URI: a tiny HTTP listener on 127.0.0.1.

/// Serves any GET with a short page and reports each request target.
async fn redirect_listener() -> (String, mpsc::UnboundedReceiver<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                    match tokio::time::timeout(WAIT, s.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                if let Some(target) = head.split(' ').nth(1) {
                    let _ = tx.send(target.to_string());
                }
                let body = "<!doctype html><title>app</title><p>The app received the code.</p>";
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (base, rx)
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(target: &str, name: &str) -> Option<String> {
    target.split_once('?')?.1.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| pct_decode(v))
    })
}

// ---------------------------------------------------------------------------
// The gateway certificate's public key, as chromium wants it pinned.

/// (tag, whole element, rest) of the first DER element of `b`.
fn der(b: &[u8]) -> (u8, &[u8], &[u8]) {
    let (len, hdr) = if b[1] < 0x80 {
        (b[1] as usize, 2)
    } else {
        let n = (b[1] & 0x7f) as usize;
        let len = b[2..2 + n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, 2 + n)
    };
    (b[0], &b[..hdr + len], &b[hdr + len..])
}

/// The content of a DER element.
fn der_content(whole: &[u8]) -> &[u8] {
    let hdr = if whole[1] < 0x80 {
        2
    } else {
        2 + (whole[1] & 0x7f) as usize
    };
    &whole[hdr..]
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in `pem`.
fn spki_pin(pem: &[u8]) -> String {
    use rustls_pki_types::pem::PemObject;
    let cert = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .expect("a certificate")
        .unwrap();
    // Certificate ::= SEQUENCE { tbsCertificate, ... }
    let (_, cert_seq, _) = der(&cert);
    let (_, tbs, _) = der(der_content(cert_seq));
    let mut rest = der_content(tbs);
    // [0] version (optional), serial, signature, issuer, validity, subject.
    if rest[0] == 0xa0 {
        rest = der(rest).2;
    }
    for _ in 0..5 {
        rest = der(rest).2;
    }
    let (tag, spki, _) = der(rest);
    assert_eq!(tag, 0x30, "SubjectPublicKeyInfo is a SEQUENCE");
    base64::engine::general_purpose::STANDARD.encode(menshen_crypto::sha256(spki))
}

// ---------------------------------------------------------------------------
// The node: an A2 balance API needing consent, an app with an SM2 key and a
// loopback redirect URI, one customer with two accounts. Token profile
// `standard` (reusable tokens), so that the refusal after revocation is the
// revocation's doing, not a one-time token already spent.

async fn node_and_app(redirect: &str) -> (Harness, String, Client) {
    let mut h = Harness::start().await;
    h.stop().await;
    h.config.oauth.token_profile = Some(menshen_model::TokenProfile::Standard);
    let node = menshen::node::Node::start(h.config.clone()).await.unwrap();
    h.gateway_url = format!("https://{}", node.gateway.addrs[0]);
    h.admin_url = format!("http://{}", node.admin_addr);
    h.node = Some(node);

    let (app, client) = h.consent_api_and_app("Browser Test App", redirect).await;
    h.customer(ALICE, ALICE_PW, &[ACCT, OTHER_ACCT]).await;
    (h, app, client)
}

async fn balance(client: &Client, token: &str) -> (u16, String) {
    let r = client
        .call_with_token("GET", &format!("/v1/accounts/{ACCT}/balance"), None, token)
        .await
        .unwrap();
    (r.status, r.error().map(|e| e.code).unwrap_or_default())
}

/// Checks on the login page as the browser has it: no script of its own,
/// and the CSP (header) keeps an injected inline script from running.
async fn assert_login_page_script_free(tab: &Tab) {
    let v = tab
        .eval(
            r#"(() => {
                const scripts = document.scripts.length;
                const handlers = [...document.querySelectorAll('*')]
                    .flatMap(e => [...e.attributes].map(a => a.name))
                    .filter(n => n.startsWith('on')).length;
                const js_urls = [...document.querySelectorAll('[href],[action],[src]')]
                    .filter(e => /^\s*javascript:/i.test(e.getAttribute('href') || e.getAttribute('action') || e.getAttribute('src') || '')).length;
                return new Promise(resolve => {
                    let violation = null;
                    document.addEventListener('securitypolicyviolation',
                        e => { violation = e.effectiveDirective; });
                    window.__menshen_injected = false;
                    const s = document.createElement('script');
                    s.textContent = 'window.__menshen_injected = true;';
                    document.head.appendChild(s);
                    const ran = window.__menshen_injected;
                    const wait = (n) => (violation || n == 0)
                        ? resolve({scripts, handlers, js_urls, ran, violation})
                        : setTimeout(() => wait(n - 1), 50);
                    wait(60);
                });
            })()"#,
        )
        .await;
    assert_eq!(v["scripts"], 0, "the login page has a <script>: {v}");
    assert_eq!(v["handlers"], 0, "the login page has on* handlers: {v}");
    assert_eq!(v["js_urls"], 0, "the login page has javascript: URLs: {v}");
    assert_eq!(v["ran"], false, "an injected inline script ran: {v}");
    assert!(
        v["violation"]
            .as_str()
            .is_some_and(|d| d.starts_with("script-src")),
        "the CSP should report the blocked script: {v}"
    );
}

/// The state shown on `/me/consents` for `consent_id`.
async fn consent_state(tab: &Tab, consent_id: &str) -> String {
    let expr = format!(
        "[...document.querySelectorAll('section.consent')].filter(s => s.textContent.includes({}))\
         .map(s => s.querySelector('.state').textContent.trim()).join(',')",
        json!(consent_id)
    );
    tab.eval(&expr).await.as_str().unwrap_or("").to_string()
}

/// The CSP header of the last document response whose URL contains `part`.
fn document_csp(cdp: &Cdp, part: &str) -> String {
    let r = cdp
        .events_named("Network.responseReceived")
        .into_iter()
        .rev()
        .find(|e| {
            e["params"]["type"] == "Document"
                && e["params"]["response"]["url"]
                    .as_str()
                    .is_some_and(|u| u.contains(part))
        })
        .unwrap_or_else(|| panic!("no document response for {part}"));
    r["params"]["response"]["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-security-policy"))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no CSP header on {part}: {r}"))
        .to_string()
}

#[tokio::test]
async fn usr_1_usr_2_usr_6_login_consent_and_revocation_in_a_real_browser() {
    let Some(bin) = chromium() else {
        if std::env::var("MENSHEN_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!(
                "MENSHEN_REQUIRE_BROWSER=1 but chromium is not installed: \
                 install it with `apt-get install chromium` (scripts/test does)"
            );
        }
        println!("skipped: chromium not installed");
        return;
    };
    tokio::time::timeout(WHOLE, flow(&bin))
        .await
        .unwrap_or_else(|_| panic!("the browser test took longer than {WHOLE:?}"));
}

async fn flow(bin: &Path) {
    let started = Instant::now();
    let (cb_base, mut cb_rx) = redirect_listener().await;
    let redirect = format!("{cb_base}/cb");
    let (h, app, client) = node_and_app(&redirect).await;
    let shots = h.dir.path().join("screenshots");

    let pin = spki_pin(&std::fs::read(h.dir.path().join("tls/server.pem")).unwrap());
    let browser = Chromium::launch(bin, &pin);
    let tab = Tab::open(Cdp::connect(&browser.ws_url).await, shots.clone()).await;

    // 1. The app pushes its authorization request; the customer's browser
    //    opens the authorize URL and gets the bank's login page.
    let pkce = Pkce::new();
    let par = client
        .par(
            &AuthorizationRequest {
                redirect_uri: redirect.clone(),
                scope: vec!["balance".into()],
                state: "st-browser".into(),
                ..Default::default()
            },
            &pkce,
        )
        .await
        .unwrap()
        .expect("PAR accepted");
    tab.goto(&client.authorize_url(&par.request_uri), "/oauth2/authorize")
        .await;
    let html = tab.html().await;
    assert!(
        html.contains("name=\"username\"") && html.contains("name=\"password\""),
        "login page expected at {}: {html}",
        tab.url().await
    );
    assert!(
        html.contains("Browser Test App"),
        "the login page names the app"
    );
    tab.screenshot("1-login").await;
    let csp = document_csp(&tab.cdp, "/oauth2/authorize");
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_login_page_script_free(&tab).await;
    // The page's own stylesheet loaded (CSP `style-src 'self'`).
    let css = tab
        .cdp
        .events_named("Network.responseReceived")
        .into_iter()
        .find(|e| {
            e["params"]["response"]["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/oauth2/menshen.css"))
        })
        .map(|e| e["params"]["response"]["status"].clone());
    assert_eq!(
        css,
        Some(json!(200)),
        "the login page's stylesheet /oauth2/menshen.css did not load; browser log:\n{}",
        tab.cdp.log()
    );

    // 2. Log in through the form.
    tab.fill("username", ALICE).await;
    tab.fill("password", ALICE_PW).await;
    tab.and_load("/oauth2/authorize", tab.click("form button[type=submit]"))
        .await;
    let html = tab.html().await;
    assert!(
        html.contains("name=\"approve\""),
        "consent page expected at {}: {html}\n{}",
        tab.url().await,
        tab.cdp.log()
    );
    assert!(
        !html.contains(ALICE_PW),
        "the password never comes back in a page"
    );
    assert!(html.contains("balance"), "the consent page names the API");
    tab.screenshot("2-consent").await;

    // 3. Tick one account and approve; the bank sends the browser to the
    //    app's redirect URI with the code.
    tab.click(&format!("input[name=account][value=\"{ACCT}\"]"))
        .await;
    assert_eq!(
        tab.eval(&format!(
            "document.querySelector('input[name=account][value=\"{ACCT}\"]').checked"
        ))
        .await,
        json!(true)
    );
    tab.click("button[name=approve]").await;
    let target = tokio::time::timeout(WAIT, async {
        loop {
            let t = cb_rx.recv().await.expect("redirect listener alive");
            if t.starts_with("/cb") {
                return t;
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the browser never reached the app's redirect URI {redirect}; browser log:\n{}",
            tab.cdp.log()
        )
    });
    assert_eq!(query_param(&target, "state").as_deref(), Some("st-browser"));
    assert!(
        query_param(&target, "iss").is_some(),
        "RFC 9207 iss: {target}"
    );
    let code = query_param(&target, "code").unwrap_or_else(|| panic!("no code in {target}"));

    // 4. The app exchanges the code and reads the balance.
    let t = client
        .exchange_code(&code, &redirect, &pkce)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("token: {e:?}"));
    assert!(!t.consent_id.is_empty());
    let before = h.upstream.count();
    assert_eq!(
        balance(&client, &t.access_token).await,
        (200, String::new())
    );
    assert_eq!(h.upstream.count(), before + 1);
    let seen = h.upstream.last();
    assert_eq!(
        seen.headers
            .get("x-menshen-consent-id")
            .map(|v| v.to_str().unwrap()),
        Some(t.consent_id.as_str())
    );
    // `standard` tokens are reusable: the same token works again.
    assert_eq!(
        balance(&client, &t.access_token).await,
        (200, String::new())
    );
    // Only the ticked account.
    let r = client
        .call_with_token(
            "GET",
            &format!("/v1/accounts/{OTHER_ACCT}/balance"),
            None,
            &t.access_token,
        )
        .await
        .unwrap();
    assert_eq!(r.error().unwrap().code, "ACCOUNT_NOT_CONSENTED");

    // 5. The customer's own page: log in, find the consent, revoke it.
    tab.goto(&format!("{}/me/login", h.gateway_url), "/me/login")
        .await;
    tab.fill("username", ALICE).await;
    tab.fill("password", ALICE_PW).await;
    tab.and_load("/me/consents", tab.click("form button[type=submit]"))
        .await;
    let url = tab.url().await;
    assert!(url.ends_with("/me/consents"), "{url}: {}", tab.html().await);
    let html = tab.html().await;
    assert!(
        html.contains(&t.consent_id),
        "the consent is listed: {html}"
    );
    tab.screenshot("3-consents").await;
    let before_revoke = consent_state(&tab, &t.consent_id).await;
    assert!(
        before_revoke.to_lowercase().contains("authori"),
        "state before revoking: {before_revoke:?}"
    );
    let revoke = format!(
        "(() => {{ const s = [...document.querySelectorAll('section.consent')].find(s => s.textContent.includes({})); \
         const b = s && s.querySelector('button[name=revoke]'); if (!b) return false; b.click(); return true; }})()",
        json!(t.consent_id)
    );
    tab.and_load("/me/consents", async {
        assert_eq!(tab.eval(&revoke).await, json!(true), "no revoke button");
    })
    .await;
    let url = tab.url().await;
    assert!(url.ends_with("/me/consents"), "{url}: {}", tab.html().await);
    let after = consent_state(&tab, &t.consent_id).await;
    assert!(
        after.to_lowercase().contains("revoked"),
        "state after revoking: {after:?}"
    );
    tab.screenshot("4-consents-revoked").await;

    // 6. The next call with the app's token is refused, and the refresh
    //    token is dead too.
    let before = h.upstream.count();
    let (status, code) = balance(&client, &t.access_token).await;
    assert!(
        code == "TOKEN_INVALID" || code == "CONSENT_NOT_ACTIVE",
        "{status} {code}"
    );
    assert_eq!(
        h.upstream.count(),
        before,
        "nothing forwarded after revocation"
    );
    if let Some(rt) = &t.refresh_token {
        let e = client.refresh(rt).await.unwrap().unwrap_err();
        assert_eq!(e.error, "invalid_grant", "{e:?}");
    }
    // The bank's record says who revoked it.
    let (_, list) = h
        .admin("GET", &format!("/v1/consents?app_id={app}"), None)
        .await;
    let c = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consent_id"] == t.consent_id.as_str())
        .unwrap_or_else(|| panic!("consent in {list}"));
    assert_eq!(c["state"], "revoked", "{c}");
    assert_eq!(c["revoked_by"], "customer", "{c}");

    println!(
        "browser flow done in {:?}; screenshots in {} (the harness temp dir; set MENSHEN_SCREENSHOTS=DIR to keep copies)",
        started.elapsed(),
        shots.display()
    );
    if let Some(keep) = std::env::var_os("MENSHEN_SCREENSHOTS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for e in std::fs::read_dir(&shots).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), keep.join(e.file_name())).unwrap();
        }
    }
    drop(tab);
    drop(browser);
}
