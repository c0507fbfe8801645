//! Test harness: a real node (gateway over TLS on 127.0.0.1, admin API, SQLite
//! file, audit log) in a temp dir, and a recording upstream on 127.0.0.1.
// Tests may hold a std Mutex (the clippy.toml ban is for the product).
#![allow(clippy::disallowed_types)]
#![allow(dead_code)]

pub mod cert_network;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use menshen::config::{AdminSection, AuditSection, Config, UApiSection};
use menshen::node::Node;
use menshen_audit::AccessRecord;
use menshen_gateway::GatewayConfig;
use menshen_sdk::{Client, Credentials};
use serde_json::{json, Value};

/// What the upstream saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Default)]
pub struct Upstream {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream was called")
    }
}

async fn upstream_handler(
    State(up): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    up.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    match uri.path() {
        // Leaks internals on purpose: the gateway must not pass them on.
        p if p.ends_with("/fail") => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [
                ("server", "Apache-Coyote/1.1"),
                ("x-powered-by", "Servlet/3.0"),
            ],
            "java.sql.SQLException: ORA-00942 at db-core-07.bank.internal:1521",
        )
            .into_response(),
        // Acts (it has recorded the call above), then answers late: a
        // client that hangs up meanwhile must still leave a record.
        p if p.ends_with("/delay") => {
            tokio::time::sleep(Duration::from_millis(600)).await;
            json!({"ok": true, "late": true})
                .to_string()
                .into_response()
        }
        // Sends headers that must not reach the app (CONF-5).
        p if p.ends_with("/leaky") => (
            [
                ("content-type", "application/json"),
                ("set-cookie", "JSESSIONID=abc; Path=/"),
                ("x-backend-host", "core-db-07.bank.internal"),
                ("x-internal-trace", "node=10.2.3.4"),
                ("etag", "\"v1\""),
                ("x-rate-info", "7"),
            ],
            "{}",
        )
            .into_response(),
        // Personal data in an answer (CONF-3: masked unless clearing).
        p if p.ends_with("/pii") => (
            [("content-type", "application/json")],
            json!({
                "holder": "张三丰",
                "card_no": "6228480012345678",
                "accounts": [{"number": "6222020200112233445", "balance": "1234.56"}],
                "mobile": "13812345678",
                "id_number": "11010519491231002X",
                "remark": "call 13912345678",
                "amount": "100.00"
            })
            .to_string(),
        )
            .into_response(),
        p if p.ends_with("/slow") => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late".into_response()
        }
        _ => (
            [
                ("server", "nginx/1.22 (internal)"),
                ("content-type", "application/json"),
            ],
            json!({"ok": true, "path": uri.path()}).to_string(),
        )
            .into_response(),
    }
}

pub struct Harness {
    pub dir: std::sync::Arc<tempfile::TempDir>,
    pub client_pki: Option<menshen::pki::ClientPki>,
    pub config: Config,
    pub node: Option<Node>,
    pub upstream: Upstream,
    pub upstream_url: String,
    pub ca_pem: Vec<u8>,
    pub admin_url: String,
    pub admin_token: String,
    pub gateway_url: String,
    pub admin_http: menshen_sdk::HttpClient,
}

pub struct HarnessOptions {
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub upstream_timeout_ms: u64,
    pub max_body_bytes: usize,
    pub listen_v6: bool,
    /// Issue a client CA (and this many client certificates) for mutual TLS.
    pub client_certs: usize,
    /// Fixed gateway port (to restart on the same address).
    pub gateway_port: u16,
    /// Reuse this directory (restart on the same store and log).
    pub dir: Option<std::path::PathBuf>,
    /// Called with the node directory before the node starts.
    pub prepare: Option<fn(&std::path::Path)>,
    /// Adjusts the gateway settings before the node starts.
    pub tune: Option<fn(&mut GatewayConfig)>,
    /// `[hot_state] url` (a test's own redis-server).
    pub hot_state_url: Option<String>,
    /// The node's hot state instead (an injected clock, TRF-1).
    pub hot: Option<Arc<dyn menshen_store::HotState>>,
    /// Named upstreams of the node's config (TRF-2).
    pub upstreams:
        std::collections::BTreeMap<String, menshen_gateway::upstream::config::UpstreamConfig>,
    /// `[store] url` (a test's own PostgreSQL: several nodes on one store,
    /// issue 12).
    pub store_url: Option<String>,
    /// `node_id` (default `0000test`); nodes sharing a store need their own.
    pub node_id: Option<String>,
    /// The master key (nodes sharing a store share it); default: a new one.
    pub master_key: Option<Vec<u8>>,
    /// Adjusts the node's config (e.g. `[alerts]`) before it starts.
    pub configure: Option<Configure>,
}

/// See [`HarnessOptions::configure`].
pub type Configure = Box<dyn FnOnce(&mut Config) + Send>;

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            trusted_proxies: vec![],
            upstream_timeout_ms: 1_000,
            max_body_bytes: 64 * 1024,
            listen_v6: false,
            client_certs: 0,
            gateway_port: 0,
            dir: None,
            prepare: None,
            tune: None,
            hot_state_url: None,
            hot: None,
            upstreams: Default::default(),
            store_url: None,
            node_id: None,
            master_key: None,
            configure: None,
        }
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(HarnessOptions::default()).await
    }

    pub async fn start_with(o: HarnessOptions) -> Harness {
        Self::start_in(std::sync::Arc::new(tempfile::tempdir().unwrap()), o).await
    }

    /// Stop this node and start a new one on the same directory, store, log
    /// and gateway address.
    pub async fn restart(mut self) -> Harness {
        let port = self.node().gateway.addrs[0].port();
        self.stop().await;
        let dir = self.dir.clone();
        let n = self
            .client_pki
            .as_ref()
            .map(|p| p.clients.len())
            .unwrap_or(0);
        drop(self);
        Self::start_in(
            dir,
            HarnessOptions {
                gateway_port: port,
                client_certs: n,
                ..Default::default()
            },
        )
        .await
    }

    /// [`Harness::restart`] with these options (configuration, trusted
    /// proxies); the gateway port and client certificates are kept.
    #[allow(dead_code)]
    pub async fn restart_with(mut self, o: HarnessOptions) -> Harness {
        let port = self.node().gateway.addrs[0].port();
        self.stop().await;
        let dir = self.dir.clone();
        let n = self
            .client_pki
            .as_ref()
            .map(|p| p.clients.len())
            .unwrap_or(0);
        drop(self);
        Self::start_in(
            dir,
            HarnessOptions {
                gateway_port: port,
                client_certs: n,
                ..o
            },
        )
        .await
    }

    /// Stop this node, then make it look as if it had crashed (the running
    /// marker left behind), and start a new one on the same directory.
    pub async fn restart_unclean(mut self) -> Harness {
        let port = self.node().gateway.addrs[0].port();
        self.stop().await;
        std::fs::write(self.data_dir().join(menshen::node::RUNNING_MARKER), "12345").unwrap();
        let dir = self.dir.clone();
        drop(self);
        Self::start_in(
            dir,
            HarnessOptions {
                gateway_port: port,
                ..Default::default()
            },
        )
        .await
    }

    async fn start_in(dir: std::sync::Arc<tempfile::TempDir>, o: HarnessOptions) -> Harness {
        let tls = dir.path().join("tls");
        let mk = dir.path().join("master.key");
        if !mk.exists() {
            menshen::pki::write_demo_pki(&tls).unwrap();
            menshen::pki::write_private(&mk, menshen_crypto::MasterKey::generate().as_bytes())
                .unwrap();
        }
        if let Some(k) = &o.master_key {
            menshen::pki::write_private(&mk, k).unwrap();
        }
        if let Some(f) = o.prepare {
            f(dir.path());
        }
        let client_pki = (o.client_certs > 0).then(|| {
            let names: Vec<String> = (0..o.client_certs).map(|i| format!("client-{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            menshen::pki::client_pki(&dir.path().join("clients"), &refs).unwrap()
        });

        let upstream = Upstream::default();
        let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let upstream_url = format!("http://{}", l.local_addr().unwrap());
        let app = Router::new()
            .fallback(upstream_handler)
            .with_state(upstream.clone());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });

        let mut listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, o.gateway_port))];
        if o.listen_v6 {
            listen.push("[::1]:0".parse().unwrap());
        }
        let mut gw = GatewayConfig::new(listen, tls.join("server.pem"), tls.join("server.key"));
        gw.trusted_proxies = o.trusted_proxies;
        gw.upstream_timeout_ms = o.upstream_timeout_ms;
        gw.max_body_bytes = o.max_body_bytes;
        gw.snapshot_refresh_ms = 200;
        gw.client_ca = client_pki.as_ref().map(|p| p.ca_file.clone());
        gw.upstreams = o.upstreams;
        if let Some(t) = o.tune {
            t(&mut gw);
        }
        let mut cfg = Config {
            data_dir: dir.path().join("data"),
            master_key_file: Some(mk),
            node_id: Some(o.node_id.clone().unwrap_or_else(|| "0000test".into())),
            level_profile: None,
            uapi: UApiSection {
                prefix: "0P".into(),
                institution: "C10305".into(),
            },
            gateway: gw,
            admin: AdminSection {
                listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                ..Default::default()
            },
            audit: AuditSection::default(),
            oauth: Default::default(),
            hot_state: menshen::config::HotStateSection {
                url: o.hot_state_url.clone(),
                ..Default::default()
            },
            store: menshen::config::StoreSection {
                url: o.store_url.clone(),
                ..Default::default()
            },
            alerts: Default::default(),
            stats: Default::default(),
            tracing: Default::default(),
        };
        if let Some(f) = o.configure {
            f(&mut cfg);
        }
        let node = Node::start_with(cfg.clone(), o.hot.clone()).await.unwrap();
        let admin_token = menshen_admin::create_admin_token(node.cp.store.as_ref(), "test")
            .await
            .unwrap();
        Harness {
            ca_pem: std::fs::read(tls.join("ca.pem")).unwrap(),
            admin_url: format!("http://{}", node.admin_addr),
            gateway_url: format!("https://{}", node.gateway.addrs[0]),
            node: Some(node),
            dir,
            client_pki,
            config: cfg,
            upstream,
            upstream_url,
            admin_token,
            admin_http: menshen_sdk::http_client(None).unwrap(),
        }
    }

    pub fn node(&self) -> &Node {
        self.node.as_ref().unwrap()
    }

    /// Call the admin API; returns status and JSON.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.admin_raw(
            method,
            path,
            body.map(|b| b.to_string()),
            Some(&self.admin_token),
        )
        .await
    }

    pub async fn admin_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.admin_url, path));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let r = menshen_sdk::send(
            &self.admin_http,
            b.body(Bytes::from(body.unwrap_or_default())).unwrap(),
        )
        .await
        .unwrap();
        let v = if r.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&r.body).unwrap_or(Value::Null)
        };
        (r.status, v)
    }

    /// Create an API routed to the recording upstream.
    pub async fn api(&self, api_id: &str, method: &str, path: &str, level: &str) -> Value {
        let (s, v) = self
            .admin(
                "POST",
                "/v1/apis",
                Some(json!({"api_id": api_id, "method": method, "path": path, "upstream": self.upstream_url,
                            "level": level, "category": 3, "subcategory": 1,
                            "integrations": if level == "A1" { json!(["server_to_server", "mobile_to_server"]) } else { json!(["server_to_server"]) }})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    /// Create an app; returns (app_id, secret).
    pub async fn app(&self, name: &str, kind: &str) -> (String, String) {
        let (s, v) = self
            .admin(
                "POST",
                "/v1/apps",
                Some(json!({"name": name, "kind": kind})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        (
            v["app"]["app_id"].as_str().unwrap().to_string(),
            v["app_secret"].as_str().unwrap().to_string(),
        )
    }

    pub async fn grant(&self, app_id: &str, api_id: &str) {
        let (s, v) = self
            .admin(
                "POST",
                "/v1/grants",
                Some(json!({"app_id": app_id, "api_id": api_id})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }

    /// An SDK client for an app.
    pub fn client(&self, app_id: &str, secret: &str) -> Client {
        Client::builder(&self.gateway_url)
            .unwrap()
            .ca_pem(&self.ca_pem)
            .credentials(Credentials::hmac_sm3(app_id, secret.as_bytes().to_vec()))
            .build()
            .unwrap()
    }

    /// All access records so far (flushes the writer first).
    pub async fn records(&self) -> Vec<AccessRecord> {
        self.node().audit.flush().await.unwrap();
        menshen_audit::writer::read_all_records(self.node().audit.dir())
            .unwrap()
            .into_iter()
            .filter(|r| r.contains("\"kind\":\"access\""))
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    }

    /// The access record of one transaction.
    pub async fn record(&self, txn_id: &str) -> AccessRecord {
        self.records()
            .await
            .into_iter()
            .find(|r| r.txn_id == txn_id)
            .unwrap_or_else(|| panic!("no access record for {txn_id}"))
    }

    /// The bank's current response-signing public key (PEM).
    pub async fn bank_key_pem(&self) -> String {
        self.node()
            .cp
            .store
            .list_bank_keys()
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.purpose == "response-signing" && !k.retired)
            .unwrap()
            .public_pem
    }

    /// Register a key for an app; returns the credential id.
    pub async fn add_key(
        &self,
        app_id: &str,
        key: &menshen_crypto::PrivateKey,
        not_before: Option<i64>,
        not_after: Option<i64>,
    ) -> i64 {
        let (s, v) = self
            .admin(
                "POST",
                &format!("/v1/apps/{app_id}/keys"),
                Some(json!({"public_key_pem": key.public_key().to_pem(), "not_before": not_before, "not_after": not_after})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }

    /// Issue 11 setup: the A2 balance API that needs a customer's consent
    /// (accounts category, the account in the path) and an app named `name`
    /// with an SM2 key, the grant and `redirect_uri` registered. Returns the
    /// App_ID and an SDK client signing as the app.
    pub async fn consent_api_and_app(&self, name: &str, redirect_uri: &str) -> (String, Client) {
        let (s, v) = self
            .admin(
                "POST",
                "/v1/apis",
                Some(json!({"api_id": "balance", "method": "GET", "path": "/v1/accounts/{account_id}/balance",
                            "upstream": self.upstream_url, "level": "A2", "category": 1, "subcategory": 1,
                            "controls": {"consent": {"required": true, "account_param": "account_id"}}})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["controls"]["consent"]["required"], true);
        let (app, _) = self.app(name, "server").await;
        let (key, pem) =
            menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3).unwrap();
        self.add_key(&app, &key, None, None).await;
        self.grant(&app, "balance").await;
        let (s, v) = self
            .admin(
                "PUT",
                &format!("/v1/apps/{app}/redirect-uris"),
                Some(json!([redirect_uri])),
            )
            .await;
        assert!(s < 300, "{v}");
        let client = self
            .key_client(
                &app,
                menshen_crypto::PrivateKey::from_pkcs8_pem(&pem).unwrap(),
                None,
            )
            .await;
        (app, client)
    }

    /// Enrol a bank customer (no second factor) owning `accounts`.
    pub async fn customer(&self, username: &str, password: &str, accounts: &[&str]) {
        let (s, v) = self
            .admin(
                "POST",
                "/v1/customers",
                Some(json!({"username": username, "display_name": username, "password": password, "accounts": accounts})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }

    /// An SDK client signing with a key pair and verifying the bank's responses.
    pub async fn key_client(
        &self,
        app_id: &str,
        key: menshen_crypto::PrivateKey,
        cert: Option<usize>,
    ) -> Client {
        let mut b = Client::builder(&self.gateway_url)
            .unwrap()
            .ca_pem(&self.ca_pem)
            .credentials(Credentials::key_pair(app_id, key))
            .bank_public_key_pem(&self.bank_key_pem().await)
            .unwrap();
        if let Some(i) = cert {
            let (c, k) = &self.client_pki.as_ref().unwrap().clients[i];
            b = b.client_cert_pem(c.as_bytes(), k.as_bytes());
        }
        b.build().unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub async fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown().await;
        }
    }
}

/// A standard setup: one A1 API `items` (GET /v1/items/{id}) and one POST A1 API
/// `orders`, one server app granted both.
pub struct Setup {
    pub h: Harness,
    pub app_id: String,
    pub secret: String,
    pub client: Client,
}

pub async fn setup() -> Setup {
    setup_with(HarnessOptions::default()).await
}

pub async fn setup_with(o: HarnessOptions) -> Setup {
    let h = Harness::start_with(o).await;
    h.api("items", "GET", "/v1/items/{id}", "A1").await;
    h.api("orders", "POST", "/v1/orders", "A1").await;
    let (app_id, secret) = h.app("Fintech One", "server").await;
    h.grant(&app_id, "items").await;
    h.grant(&app_id, "orders").await;
    let client = h.client(&app_id, &secret);
    Setup {
        h,
        app_id,
        secret,
        client,
    }
}

/// A raw TLS connection to the gateway (HTTP/1.1 or, with `h2`, ALPN h2),
/// for tests that must control every byte and every pause.
pub async fn raw_tls(
    h: &Harness,
    h2: bool,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&h.ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let addr = h.node().gateway.addrs[0];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

/// The HTTP/1.1 head of `req` (origin form, with `Host`), without its body.
pub fn h1_head(req: &http::Request<Bytes>, content_length: Option<usize>) -> Vec<u8> {
    let mut out = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        req.method(),
        req.uri().path_and_query().unwrap(),
        req.uri().authority().unwrap()
    );
    for (k, v) in req.headers() {
        out.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap()));
    }
    if let Some(n) = content_length {
        out.push_str(&format!("content-length: {n}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Read an HTTP/1.1 response head and body (Content-Length framed) within
/// `limit`; `None` if the connection closed or nothing came in time.
pub async fn read_h1_response<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    limit: Duration,
) -> Option<(u16, String)> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let n = s.read(&mut chunk).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return Some((status, body));
            }
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}

/// Whether the peer closes `s` (EOF or error) within `limit`.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1024];
    let wait = async {
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(limit, wait).await.is_ok()
}

/// Resident memory of this process, bytes (Linux).
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Open file descriptors of this process (Linux).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Wait (bounded) until `f` holds; panics with `what` otherwise.
pub async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request signed by the setup's app (not sent).
pub fn signed(s: &Setup, method: &str, pq: &str, body: Option<&[u8]>) -> http::Request<Bytes> {
    let mut req = s
        .client
        .request(method, pq, body.map(|b| b.to_vec()))
        .unwrap();
    s.client.sign(&mut req, None).unwrap();
    req
}

/// Admin records (kind "admin") in the log, flushed first.
pub async fn admin_records(h: &Harness) -> Vec<serde_json::Value> {
    h.node().audit.flush().await.unwrap();
    menshen_audit::writer::read_all_records(h.node().audit.dir())
        .unwrap()
        .into_iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap())
        .filter(|r| r["kind"] == "admin")
        .collect()
}

/// `/metrics` with `token`: status and body.
pub async fn scrape(h: &Harness, token: Option<&str>) -> (u16, String) {
    let mut b = http::Request::builder()
        .method("GET")
        .uri(format!("{}/metrics", h.admin_url));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let r = menshen_sdk::send(&h.admin_http, b.body(Bytes::new()).unwrap())
        .await
        .unwrap();
    (r.status, String::from_utf8(r.body.to_vec()).unwrap())
}
