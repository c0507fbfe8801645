//! The `menshen` command.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use menshen::cli::{self, AdminCmd, Cli, Command, MasterkeyCmd};
use menshen::config::Config;
use menshen::node::{self, Node};

/// mimalloc instead of glibc malloc: the request path allocates many small,
/// short-lived buffers (headers, records); glibc's malloc/free/consolidate
/// took ~8% of the gateway's CPU under load (perf, bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MENSHEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The exit code is returned, not passed to `process::exit`: the runtime
/// (and with it a node's audit writer) is dropped, and flushes, first.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    drop(rt);
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve { config } => {
            init_tracing();
            let cfg = Config::load(&config)?;
            let node = Node::start(cfg).await?;
            node::wait_for_signal().await;
            tracing::info!("shutting down");
            node.shutdown().await;
        }
        Command::Demo {
            dir,
            gateway_port,
            admin_port,
            unsafe_async_audit,
            token_profile,
            cluster,
            nodes,
        } => {
            init_tracing();
            if cluster && !(2..=9).contains(&nodes) {
                anyhow::bail!(
                    "--nodes: {nodes} is not 2 to 9; a cluster demo runs 2 to 9 nodes (default 3)"
                );
            }
            let token_profile = match token_profile.as_deref() {
                None => None,
                Some(p) => Some(menshen_model::TokenProfile::parse(p).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--token-profile: must be one of {}",
                        menshen_model::TokenProfile::names()
                    )
                })?),
            };
            let opts = menshen::demo::DemoOptions {
                dir: dir.clone(),
                gateway_port,
                admin_port,
                unsafe_async_audit,
                token_profile,
                cluster: cluster.then_some(nodes),
            };
            let demo = menshen::demo::start(&opts).await?;
            menshen::out!(
                "{}",
                menshen::demo::next_steps(
                    &demo.info,
                    demo.info.config_file.parent().unwrap_or(&dir)
                )
            );
            node::wait_for_signal().await;
            eprintln!("stopping the demo");
            demo.shutdown().await;
        }
        Command::Admin {
            cmd:
                AdminCmd::Init {
                    config,
                    name,
                    token_out,
                },
        } => {
            let cfg = Config::load(&config)?;
            let cp = node::control_plane(&cfg).await?;
            let token = menshen_admin::create_admin_token(cp.store.as_ref(), &name).await?;
            if let Some(p) = token_out {
                menshen::pki::write_private(&p, token.as_bytes())?;
                menshen::out!(
                    "admin token for `{name}` written to {} (it is stored only hashed)",
                    p.display()
                );
            } else {
                menshen::out!("{token}");
                eprintln!("admin token for `{name}`: shown once, stored only hashed; keep it safe");
            }
        }
        Command::App { cmd, conn } => cli::app(cmd, conn).await?,
        Command::Api { cmd, conn } => cli::api(cmd, conn).await?,
        Command::Grant { cmd, conn } => cli::grant(cmd, conn).await?,
        Command::Ip { cmd, conn } => cli::ip(cmd, conn).await?,
        Command::Limit { cmd, conn } => cli::limit(cmd, conn).await?,
        Command::Risk { cmd, conn } => cli::risk(cmd, conn).await?,
        Command::Review { cmd, conn } => cli::review(cmd, conn).await?,
        Command::Alert { cmd, conn } => cli::alert(cmd, conn).await?,
        Command::Baseline { cmd, conn } => cli::baseline(cmd, conn).await?,
        Command::Stats(a) => cli::stats(a).await?,
        Command::Uapi { cmd } => cli::uapi(cmd)?,
        Command::Customer { cmd, conn } => cli::customer(cmd, conn).await?,
        Command::Consent { cmd, conn } => cli::consent(cmd, conn).await?,
        Command::Totp { file } => cli::totp(&file)?,
        Command::Call(a) => return cli::call(a).await,
        Command::Authorize(a) => return cli::authorize(a).await,
        Command::Audit { cmd } => match cmd {
            cli::AuditCmd::Verify { dirs, public_keys } => {
                return cli::audit_verify(&dirs, &public_keys)
            }
            cli::AuditCmd::Search {
                txn_id,
                app_id,
                api_id,
                user_id,
                result,
                from,
                to,
                kind,
                node,
                limit,
                conn,
            } => {
                cli::audit_search(
                    vec![
                        ("txn_id", txn_id),
                        ("app_id", app_id),
                        ("api_id", api_id),
                        ("user_id", user_id),
                        ("result", result),
                        ("from", from),
                        ("to", to),
                        ("node", node),
                        ("kind", kind),
                    ],
                    limit,
                    conn,
                )
                .await?
            }
            cli::AuditCmd::Archive { config, dry_run } => {
                cli::audit_archive(&Config::load(&config)?, dry_run)?
            }
        },
        Command::Keygen { alg, out } => {
            let alg = match alg.as_str() {
                "sm2" | "sm2-sm3" => menshen_crypto::SigAlg::Sm2Sm3,
                "p256" | "ecdsa-p256-sha256" => menshen_crypto::SigAlg::EcdsaP256Sha256,
                "ed25519" => menshen_crypto::SigAlg::Ed25519,
                "rsa" | "rsa-v1_5-sha256" => menshen_crypto::SigAlg::RsaV15Sha256,
                other => anyhow::bail!("--alg {other}: use sm2, p256, ed25519 or rsa"),
            };
            if out.exists() {
                anyhow::bail!(
                    "--out {}: exists; refusing to overwrite a key",
                    out.display()
                );
            }
            let (key, pem) =
                menshen_crypto::PrivateKey::generate(alg).map_err(|e| anyhow::anyhow!("{e}"))?;
            menshen::pki::write_private(&out, pem.as_bytes())?;
            let public = key.public_key().to_pem();
            let mut pub_path = out.clone().into_os_string();
            pub_path.push(".pub");
            let pub_path = std::path::PathBuf::from(pub_path);
            std::fs::write(&pub_path, &public)?;
            eprintln!(
                "{} private key written to {} (mode 0600); public key to {}.\nRegister it with: menshen app key-add APP_ID --public-key {}",
                alg.name(),
                out.display(),
                pub_path.display(),
                pub_path.display()
            );
            print!("{public}");
        }
        Command::Masterkey {
            cmd: MasterkeyCmd::Generate { out },
        } => {
            if out.exists() {
                anyhow::bail!(
                    "--out {}: exists; refusing to overwrite a master key",
                    out.display()
                );
            }
            menshen::pki::write_private(&out, menshen_crypto::MasterKey::generate().as_bytes())
                .context("--out")?;
            menshen::out!("master key written to {} (mode 0600)", out.display());
        }
    }
    Ok(0)
}
