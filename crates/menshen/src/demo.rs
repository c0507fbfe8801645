//! `menshen demo`: a whole bank on one machine. Starts, on the embedded
//! default store, the gateway, the admin API and a small demo bank upstream
//! (products A1, account balance A2, transfer A3), creates a demo CA and
//! server certificate, a demo app with its App_Secret and grants, and writes
//! `DIR/demo.json` describing it all.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use axum::extract::Path as AxPath;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use menshen_gateway::GatewayConfig;
use menshen_model::{AppKind, Integration, Level, Method, NewApi, NewApp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{AdminSection, AuditSection, Config, UApiSection};
use crate::node::Node;
use crate::pki::{write_demo_pki, write_private};

/// Marker that says a directory was made by `menshen demo` (safe to reset).
const MARKER: &str = ".menshen-demo";

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Directory for everything.
    pub dir: PathBuf,
    /// Gateway port (0 = any free port).
    pub gateway_port: u16,
    /// Admin port (0 = any free port).
    pub admin_port: u16,
    /// Benchmarking only: see `GatewayConfig::unsafe_async_audit`.
    pub unsafe_async_audit: bool,
    /// The authorization server's token profile (default `cmbc`).
    pub token_profile: Option<menshen_model::TokenProfile>,
    /// `--cluster --nodes N`: N nodes on a local PostgreSQL and Redis
    /// (issue 12 item 9); `None`: the embedded default (SQLite, one node).
    pub cluster: Option<usize>,
}

/// An app in `demo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoApp {
    /// App_ID.
    pub app_id: String,
    /// Name.
    pub name: String,
    /// `server` or `mobile`.
    pub kind: String,
    /// File holding the App_Secret (0600).
    pub secret_file: PathBuf,
    /// PKCS#8 private key (0600), for apps with a key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PathBuf>,
    /// Registered public key, for apps with a key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PathBuf>,
    /// Its SM2 encryption private key (0600), registered as its encryption
    /// key: response fields are encrypted for it (protocol §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<PathBuf>,
    /// Registered redirect URI (customer authorization), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

/// A bank customer in `demo.json` (demo values only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoCustomer {
    /// Stable customer id (what the upstream receives).
    pub user_id: String,
    /// Login name on the bank's pages.
    pub username: String,
    /// Demo password.
    pub password: String,
    /// Base32 TOTP secret (0600), if the customer has a second factor;
    /// `menshen totp FILE` prints the current code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_secret_file: Option<PathBuf>,
    /// Accounts the customer owns.
    pub accounts: Vec<String>,
}

/// The demo app's redirect URI: loopback, where `menshen authorize` listens.
pub const DEMO_REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

/// An API in `demo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoApi {
    /// API_ID.
    pub api_id: String,
    /// U_API_ID.
    pub u_api_id: String,
    /// Level.
    pub level: String,
    /// Method.
    pub method: String,
    /// Path pattern.
    pub path: String,
    /// A concrete path that works in the demo.
    pub example_path: String,
    /// Example JSON body, for POST APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_body: Option<serde_json::Value>,
}

/// Contents of `demo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoInfo {
    /// Gateway base URL.
    pub gateway_url: String,
    /// Admin API base URL.
    pub admin_url: String,
    /// File holding the admin token (0600).
    pub admin_token_file: PathBuf,
    /// CA certificate the gateway's certificate chains to.
    pub ca_cert: PathBuf,
    /// Demo upstream base URL.
    pub upstream_url: String,
    /// Config file of the node.
    pub config_file: PathBuf,
    /// Data directory.
    pub data_dir: PathBuf,
    /// The tamper-evident audit log directory (`menshen audit verify` it).
    pub audit_dir: PathBuf,
    /// The bank's audit public key (PEM), to verify the log offline.
    pub audit_public_key: PathBuf,
    /// The bank's response-signing public key (PEM).
    pub bank_signing_public_key: PathBuf,
    /// Where the gateway publishes the bank's public keys.
    pub bank_keys_url: String,
    /// The authorization server's metadata (RFC 8414).
    pub oauth_metadata_url: String,
    /// Apps.
    pub apps: Vec<DemoApp>,
    /// APIs.
    pub apis: Vec<DemoApi>,
    /// Bank customers who can authorize the apps (issue 11).
    pub customers: Vec<DemoCustomer>,
    /// Cluster demo only: every node, the first being the one above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::demo_cluster::DemoNode>,
    /// Cluster demo only: the store (demo credentials in the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_url: Option<String>,
    /// Cluster demo only: the hot state (demo credentials in the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
}

/// A running demo.
pub struct Demo {
    /// The node.
    pub node: Node,
    /// What `demo.json` says.
    pub info: DemoInfo,
    upstream: tokio::task::JoinHandle<()>,
    /// Cluster demo: the other nodes and the servers they share.
    cluster: Option<(crate::demo_cluster::Nodes, crate::demo_cluster::Services)>,
}

impl Demo {
    /// Stop everything (cluster: the other nodes first, the servers last).
    pub async fn shutdown(self) {
        let cluster = self.cluster;
        let (nodes, services) = match cluster {
            Some((n, s)) => (Some(n), Some(s)),
            None => (None, None),
        };
        if let Some(mut n) = nodes {
            let _ = tokio::task::spawn_blocking(move || n.stop()).await;
        }
        self.node.shutdown().await;
        self.upstream.abort();
        if let Some(s) = services {
            let _ = tokio::task::spawn_blocking(move || drop(s)).await;
        }
    }
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                bail!(
                    "--dir {}: the directory is not empty and was not made by `menshen demo`; choose another --dir",
                    dir.display()
                );
            }
            // A previous demo: start over (its upstream port and apps are gone).
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot reset {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--dir {}: cannot create", dir.display()))?;
    std::fs::write(dir.join(MARKER), "made by `menshen demo`; safe to delete\n")?;
    Ok(())
}

/// The demo bank's business system: in-memory products, balances, transfers.
/// It tells who it served (`served_app_id`, from the header only the gateway sets).
pub fn demo_upstream() -> Router {
    fn who(h: &HeaderMap) -> String {
        h.get("x-menshen-app-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
    Router::new()
        .route(
            "/v1/products",
            // `q`: a free-text search (ATK-1: screened in block mode).
            get(|h: HeaderMap, uri: axum::http::Uri| async move {
                let q = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "q")
                    .map(|(_, v)| v.to_lowercase())
                    .unwrap_or_default();
                let all = [
                    json!({"code": "WM-180", "name": "Steady Income 180-day wealth product", "annual_rate": "2.85%"}),
                    json!({"code": "TD-3Y", "name": "3-year time deposit", "annual_rate": "2.10%"}),
                ];
                let products: Vec<_> = all
                    .into_iter()
                    .filter(|p| q.is_empty() || p["name"].as_str().unwrap_or("").to_lowercase().contains(&q))
                    .collect();
                Json(json!({
                    "products": products,
                    "served_app_id": who(&h),
                }))
            }),
        )
        .route(
            "/v1/accounts/{account_id}/balance",
            get(|AxPath(account): AxPath<String>, h: HeaderMap| async move {
                let masked = menshen_audit::mask_text(&account).into_owned();
                let customer = h.get("x-menshen-customer-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                Json(json!({"account": masked, "currency": "CNY", "available": "12345.67", "served_app_id": who(&h), "customer_id": customer}))
            }),
        )
        .route(
            // A product's current rates: bank data, no customer's (an A2
            // API without consent, for tests and benchmarks).
            "/v1/rates/{code}",
            get(|AxPath(code): AxPath<String>, h: HeaderMap| async move {
                Json(json!({"code": code, "annual_rate": "2.85%", "served_app_id": who(&h)}))
            }),
        )
        .route(
            "/v1/transfers",
            post(|h: HeaderMap, body: axum::body::Bytes| async move {
                let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or(json!({}));
                Json(json!({"status": "accepted", "amount": req.get("amount"), "payee": {"account": req.pointer("/payee/account")}, "served_app_id": who(&h)}))
            }),
        )
}

/// Start the demo and write `demo.json`.
pub async fn start(opts: &DemoOptions) -> anyhow::Result<Demo> {
    let dir = if opts.dir.is_absolute() {
        opts.dir.clone()
    } else {
        std::env::current_dir()?.join(opts.dir.strip_prefix(".").unwrap_or(&opts.dir))
    };
    prepare_dir(&dir)?;
    let tls = dir.join("tls");
    write_demo_pki(&tls)?;
    let master_key_file = dir.join("master.key");
    write_private(
        &master_key_file,
        menshen_crypto::MasterKey::generate().as_bytes(),
    )?;

    // The demo bank's upstream, plain HTTP on loopback.
    let up = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let upstream_url = format!("http://{}", up.local_addr()?);
    let upstream = tokio::spawn(async move {
        let _ = axum::serve(up, demo_upstream()).await;
    });

    // Cluster: PostgreSQL and Redis first (installed if missing).
    let services = match opts.cluster {
        Some(_) => {
            let d = dir.clone();
            Some(
                tokio::task::spawn_blocking(move || crate::demo_cluster::Services::start(&d))
                    .await??,
            )
        }
        None => None,
    };
    // A cluster's nodes share one issuer, so the first node's port is
    // known before it starts.
    let gateway_port = match (&services, opts.gateway_port) {
        (Some(_), 0) => std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port(),
        (_, p) => p,
    };
    let mut listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, gateway_port))];
    if gateway_port != 0 && services.is_none() {
        listen.push(SocketAddr::from((Ipv6Addr::LOCALHOST, gateway_port)));
    }
    let cfg = Config {
        data_dir: dir.join("data"),
        master_key_file: Some(master_key_file),
        node_id: None,
        level_profile: None,
        uapi: UApiSection {
            prefix: "0P".into(),
            institution: "C10305".into(),
        },
        gateway: GatewayConfig {
            unsafe_async_audit: opts.unsafe_async_audit,
            ..GatewayConfig::new(listen, tls.join("server.pem"), tls.join("server.key"))
        },
        admin: AdminSection {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, opts.admin_port)),
            ..Default::default()
        },
        audit: AuditSection::default(),
        oauth: crate::config::OAuthSection {
            token_profile: opts.token_profile,
            ..Default::default()
        },
        hot_state: Default::default(),
        store: Default::default(),
        alerts: Default::default(),
        stats: Default::default(),
        tracing: Default::default(),
    };
    let mut cfg = cfg;
    if let Some(s) = &services {
        cfg.node_id = Some(crate::demo_cluster::node_id(1));
        cfg.store.url = Some(s.postgres.url.clone());
        cfg.hot_state.url = Some(s.redis.url.clone());
        cfg.oauth.issuer = Some(format!("https://127.0.0.1:{gateway_port}"));
    }
    let config_file = dir.join("menshen.toml");
    // 0600: in a cluster demo it names the servers' passwords.
    write_private(&config_file, toml::to_string_pretty(&cfg)?.as_bytes())?;

    let node = match Node::start(cfg.clone()).await {
        Ok(n) => n,
        Err(e) if opts.gateway_port != 0 && e.to_string().contains("[::1]") => {
            // No IPv6 loopback on this machine: serve IPv4 only.
            let mut c = cfg.clone();
            c.gateway.listen.truncate(1);
            Node::start(c).await?
        }
        Err(e) => return Err(e),
    };
    let cp = &node.cp;

    let token = menshen_admin::create_admin_token(cp.store.as_ref(), "demo-admin").await?;
    let admin_token_file = dir.join("admin.token");
    write_private(&admin_token_file, token.as_bytes())?;

    let apis_in = [
        (
            "products",
            "Product list",
            Method::Get,
            "/v1/products",
            Level::A1,
            3u8,
            1u16,
            "/v1/products",
            None,
            vec![Integration::ServerToServer, Integration::MobileToServer],
        ),
        (
            "account-balance",
            "Account balance",
            Method::Get,
            "/v1/accounts/{account_id}/balance",
            Level::A2,
            1,
            1,
            "/v1/accounts/6222020200112233445/balance",
            None,
            vec![Integration::ServerToServer],
        ),
        (
            "transfer",
            "Funds transfer",
            Method::Post,
            "/v1/transfers",
            Level::A3,
            2,
            1,
            "/v1/transfers",
            Some(
                json!({"from_account": "6222020200112233445", "payee": {"account": "6217000010001234567", "name": "王芳"}, "amount": "100.00", "currency": "CNY"}),
            ),
            vec![Integration::ServerToServer],
        ),
    ];
    let mut apis = Vec::new();
    for (id, name, method, path, level, cat, sub, example, body, integrations) in apis_in {
        let api = cp
            .create_api(&NewApi {
                api_id: id.into(),
                version: "v1".into(),
                name: Some(name.into()),
                method,
                path: path.into(),
                upstream: upstream_url.clone(),
                level,
                integrations,
                owner: Some("demo bank, digital channels".into()),
                category: cat,
                subcategory: sub,
                lifecycle: None,
                // USR-4: the account each call concerns, checked against the
                // customer's consent (A2/A3 APIs of these categories need one).
                controls: match id {
                    // ATK-1 (issue 13): the free-text `q` is screened, and
                    // an injection attempt refused (block); LVL-5: `q` is a
                    // string of at most 64 characters.
                    "products" => Some(menshen_model::NewApiControls {
                        screening: Some(menshen_model::Screening {
                            mode: menshen_model::ScreenMode::Block,
                            ..Default::default()
                        }),
                        schema: Some(menshen_model::ApiSchema {
                            query: Some(json!({
                                "type": "object",
                                "properties": {"q": {"type": "string", "maxLength": 64}}
                            })),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    "account-balance" => Some(menshen_model::NewApiControls {
                        consent: Some(menshen_model::ConsentRule {
                            required: true,
                            account_param: Some("account_id".into()),
                            account_pointer: None,
                        }),
                        ..Default::default()
                    }),
                    "transfer" => Some(menshen_model::NewApiControls {
                        consent: Some(menshen_model::ConsentRule {
                            required: true,
                            account_param: None,
                            account_pointer: Some("/from_account".into()),
                        }),
                        // CONF-1 (issue 13): the payee's account and name travel
                        // encrypted both ways (protocol §12).
                        envelope: Some(menshen_model::FieldEnvelopes {
                            request: vec!["/payee/account".into(), "/payee/name".into()],
                            response: vec!["/payee/account".into()],
                        }),
                        ..Default::default()
                    }),
                    _ => None,
                },
            })
            .await?;
        apis.push(DemoApi {
            api_id: api.api_id,
            u_api_id: api.u_api_id,
            level: level.as_str().into(),
            method: method.as_str().into(),
            path: path.into(),
            example_path: example.into(),
            example_body: body,
        });
    }

    let apps_dir = dir.join("apps");
    std::fs::create_dir_all(&apps_dir)?;
    let created = cp
        .create_app(&NewApp {
            name: "Demo Fintech".into(),
            kind: AppKind::Server,
            contact: Some("dev@fintech.example".into()),
            notify_url: None,
        })
        .await?;
    let secret_file = apps_dir.join(format!("{}.secret", created.app.app_id));
    write_private(&secret_file, created.app_secret.as_bytes())?;
    // Least privilege: a secret-only app gets the A1 API only (A2/A3 need a key pair).
    cp.add_grant(&created.app.app_id, "products").await?;
    let mut apps = vec![DemoApp {
        app_id: created.app.app_id.clone(),
        name: created.app.name.clone(),
        kind: created.app.kind.as_str().into(),
        secret_file,
        private_key: None,
        public_key: None,
        redirect_uri: None,
        encryption_key: None,
    }];

    // A second app signing with an SM2 key pair: it may call the A2 and A3 APIs.
    let partner = cp
        .create_app(&NewApp {
            name: "Demo Wealth Partner".into(),
            kind: AppKind::Server,
            contact: Some("ops@partner.example".into()),
            notify_url: None,
        })
        .await?;
    let pid = partner.app.app_id.clone();
    let psecret = apps_dir.join(format!("{pid}.secret"));
    write_private(&psecret, partner.app_secret.as_bytes())?;
    let (key, key_pem) = menshen_crypto::PrivateKey::generate(menshen_crypto::SigAlg::Sm2Sm3)?;
    let private_key = apps_dir.join(format!("{pid}.sm2.key"));
    let public_key = apps_dir.join(format!("{pid}.sm2.pub"));
    write_private(&private_key, key_pem.as_bytes())?;
    std::fs::write(&public_key, key.public_key().to_pem())?;
    cp.add_public_key(&pid, &key.public_key().to_pem(), None, None)
        .await?;
    // Its encryption key (CONF-2, KEY-1): a separate SM2 key, for the
    // transfer's encrypted response fields.
    let (enc, enc_pem) = menshen_crypto::Sm2DecryptionKey::generate()?;
    let encryption_key = apps_dir.join(format!("{pid}.enc.key"));
    write_private(&encryption_key, enc_pem.as_bytes())?;
    let enc_pub = menshen_crypto::PublicKey::from_spki_der(&enc.public_key().spki_der())?;
    cp.add_encryption_key(&pid, &enc_pub.to_pem(), None).await?;
    for a in &apis {
        cp.add_grant(&pid, &a.api_id).await?;
    }
    // Where the customer's browser returns the code: a loopback address the
    // CLI's `authorize` command listens on (RFC 8252 style).
    cp.store
        .set_redirect_uris(&pid, &[DEMO_REDIRECT_URI.to_string()])
        .await?;
    apps.push(DemoApp {
        app_id: pid,
        name: partner.app.name.clone(),
        kind: partner.app.kind.as_str().into(),
        secret_file: psecret,
        private_key: Some(private_key),
        public_key: Some(public_key),
        redirect_uri: Some(DEMO_REDIRECT_URI.into()),
        encryption_key: Some(encryption_key),
    });

    // Two bank customers (USR-1); alice also has a TOTP second factor (A3
    // transfers need it). Demo passwords: never use them anywhere else.
    let customers_dir = dir.join("customers");
    std::fs::create_dir_all(&customers_dir)?;
    let mut customers = Vec::new();
    for (username, name, password, accounts, totp) in [
        (
            "alice",
            "Alice Zhang",
            "alice-demo-password",
            vec!["6222020200112233445", "6222020200112233446"],
            true,
        ),
        (
            "bob",
            "Bob Li",
            "bob-demo-password",
            vec!["6222020200998877665"],
            false,
        ),
    ] {
        let (c, secret) = cp
            .create_customer(
                username,
                name,
                password,
                accounts.iter().map(|a| a.to_string()).collect(),
                totp,
            )
            .await?;
        let totp_secret_file = match secret {
            Some(sec) => {
                let f = customers_dir.join(format!("{username}.totp"));
                write_private(&f, sec.as_bytes())?;
                Some(f)
            }
            None => None,
        };
        customers.push(DemoCustomer {
            user_id: c.user_id,
            username: username.into(),
            password: password.into(),
            totp_secret_file,
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
        });
    }

    let bank_dir = dir.join("bank");
    std::fs::create_dir_all(&bank_dir)?;
    let bank_signing_public_key = bank_dir.join("response-signing.pub.pem");
    let signing = cp
        .store
        .list_bank_keys()
        .await?
        .into_iter()
        .find(|k| k.purpose == menshen_store::control::purpose::RESPONSE_SIGNING && !k.retired)
        .context("no bank response-signing key")?;
    std::fs::write(&bank_signing_public_key, &signing.public_pem)?;
    let audit_pub = bank_dir.join("audit.pub.pem");
    let audit_key = cp
        .store
        .list_bank_keys()
        .await?
        .into_iter()
        .find(|k| k.purpose == menshen_store::control::purpose::AUDIT && !k.retired)
        .context("no bank audit key")?;
    std::fs::write(&audit_pub, &audit_key.public_pem)?;

    let mut info = DemoInfo {
        gateway_url: format!("https://{}", node.gateway.addrs[0]),
        admin_url: format!("http://{}", node.admin_addr),
        admin_token_file,
        ca_cert: tls.join("ca.pem"),
        upstream_url,
        config_file,
        data_dir: cfg.data_dir.clone(),
        audit_dir: node.audit.dir().to_path_buf(),
        audit_public_key: audit_pub,
        bank_signing_public_key,
        bank_keys_url: format!("https://{}/.well-known/menshen/keys", node.gateway.addrs[0]),
        oauth_metadata_url: format!(
            "https://{}/.well-known/oauth-authorization-server",
            node.gateway.addrs[0]
        ),
        apps,
        apis,
        customers,
        nodes: vec![],
        postgres_url: None,
        redis_url: None,
    };
    // Cluster: the other nodes, once the data is seeded.
    let mut cluster = None;
    if let (Some(services), Some(count)) = (services, opts.cluster) {
        let (c, d) = (cfg.clone(), dir.clone());
        let (others, list) =
            tokio::task::spawn_blocking(move || crate::demo_cluster::start_nodes(&c, &d, count))
                .await??;
        info.nodes.push(crate::demo_cluster::DemoNode {
            node_id: crate::demo_cluster::node_id(1),
            gateway_url: info.gateway_url.clone(),
            admin_url: info.admin_url.clone(),
            pid: std::process::id(),
            config_file: info.config_file.clone(),
        });
        info.nodes.extend(list);
        info.postgres_url = Some(services.postgres.url.clone());
        info.redis_url = Some(services.redis.url.clone());
        cluster = Some((others, services));
    }
    // Written last, atomically: its presence means "ready".
    let tmp = dir.join("demo.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&info)?)?;
    std::fs::rename(&tmp, dir.join("demo.json"))?;
    Ok(Demo {
        node,
        info,
        upstream,
        cluster,
    })
}

/// How a newcomer runs the CLI: `menshen` when it is on `PATH`, else the
/// `cargo run` line that works from a fresh clone.
pub fn cli_command() -> &'static str {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("menshen").is_file()));
    if on_path {
        "menshen"
    } else {
        "cargo run -q -p menshen --"
    }
}

/// What to try next, printed after start.
pub fn next_steps(info: &DemoInfo, dir: &Path) -> String {
    let app = &info.apps[0];
    let a1 = &info.apis[0];
    let cluster = if info.nodes.is_empty() {
        String::new()
    } else {
        let mut s = String::from(
            "Cluster (PostgreSQL + Redis), every node serves the same apps and APIs:\n",
        );
        for n in &info.nodes {
            s.push_str(&format!(
                "  node {}  gateway {}  admin {}  pid {}\n",
                n.node_id, n.gateway_url, n.admin_url, n.pid
            ));
        }
        s.push_str("  try the A1 call below on another node's gateway; suspend the app through one node's admin API and every node refuses it.\n\n");
        s
    };
    cluster
        + &format!(
        "Menshen demo is running.\n  gateway   {gw}\n  admin API {admin}\n  upstream  {up}\n  state     {dir}/demo.json\n\n\
         Try a signed A1 call:\n  {cmd} call --app-id {app_id} --secret-file {secret} --ca {ca} GET {gw}{path}\n\n\
         An A2 call on a customer's account: the customer authorizes the app first\n\
         (open the printed URL, log in as {c_user} / {c_pass}, tick an account, approve):\n  \
         {cmd} authorize --app-id {p_id} --key {p_key} --bank-key {bank} --ca {ca} --redirect-uri {redirect} --scope account-balance --token-out {dir}/token {gw}\n  \
         {cmd} call --app-id {p_id} --key {p_key} --bank-key {bank} --ca {ca} --token-file {dir}/token GET {gw}{a2path}\n\n\
         An A3 transfer whose payee account and name travel encrypted (protocol §12):\n\
         authorize with --scope transfer (alice: also her TOTP code from customers/alice.totp), then\n  \
         {cmd} call --app-id {p_id} --key {p_key} --bank-key {bank} --enc-key {p_enc} --ca {ca} --token-file {dir}/token --encrypt /payee/account --encrypt /payee/name --decrypt /payee/account --data '{xfer_body}' POST {gw}/v1/transfers\n\n\
         Manage it (in another shell):\n  export MENSHEN_ADMIN_URL={admin} MENSHEN_ADMIN_TOKEN_FILE={tok}\n  {cmd} app list\n  {cmd} app suspend {app_id}\n\n\
         Ctrl-C stops the demo.",
        cmd = cli_command(),
        gw = info.gateway_url,
        admin = info.admin_url,
        up = info.upstream_url,
        dir = dir.display(),
        app_id = app.app_id,
        secret = app.secret_file.display(),
        ca = info.ca_cert.display(),
        path = a1.example_path,
        tok = info.admin_token_file.display(),
        p_id = info.apps[1].app_id,
        p_key = info.apps[1].private_key.as_deref().unwrap_or(Path::new("-")).display(),
        bank = info.bank_signing_public_key.display(),
        a2path = info.apis[1].example_path,
        redirect = info.apps[1].redirect_uri.as_deref().unwrap_or("-"),
        p_enc = info.apps[1].encryption_key.as_deref().unwrap_or(Path::new("-")).display(),
        xfer_body = r#"{"from_account":"6222020200112233445","payee":{"account":"6217000010001234567","name":"王芳"},"amount":"100.00","currency":"CNY"}"#,
        c_user = info.customers.first().map(|c| c.username.as_str()).unwrap_or("-"),
        c_pass = info.customers.first().map(|c| c.password.as_str()).unwrap_or("-"),
    )
}
