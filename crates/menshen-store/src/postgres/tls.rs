//! TLS to PostgreSQL (`[store] tls`, `ca_file`, `client_cert`,
//! `client_key`), on rustls with the aws-lc-rs provider, applied to the
//! pooled connections and to the change listener alike.
//!
//! **Why tokio-postgres-rustls.** It is the rustls adapter the
//! tokio-postgres documentation points to, kept in step with rustls 0.23 and
//! tokio-postgres 0.7, small (one file), and it takes a
//! [`rustls::ClientConfig`] that we build ourselves: our CA, our client
//! certificate, our provider (aws-lc-rs, as the gateway and the Redis client
//! use), no OpenSSL. It also gives tokio-postgres the `tls-server-end-point`
//! channel binding, so `SCRAM-SHA-256-PLUS` works when the server offers it.
//! (`postgres_rustls` does the same but needs a newer compiler than the
//! workspace's minimum; `postgres-openssl`/`postgres-native-tls` would bring
//! OpenSSL.)
//!
//! **Modes** (`store.tls`), as libpq's `sslmode` of the same names:
//! - `verify-full`: TLS, the server's certificate must chain to `ca_file`
//!   and name the host of the URL (DNS name, or IP address SAN for an IP).
//! - `require`: TLS, the certificate is not checked (encryption against a
//!   passive listener only; an active man in the middle is not detected).
//!   A `ca_file` with it is refused: checking needs `verify-full`.
//! - `disable`: plain TCP.
//!
//! **Default**: `verify-full`, except when every host of the URL is a
//! loopback address, `localhost` or a unix socket directory, where nothing
//! crosses a network: then `disable`. A bank's database is on another host,
//! and a connection there must be encrypted and authenticated unless the
//! operator says otherwise in the config (`tls = "disable"`, e.g. on an
//! IPsec-protected segment); the node then warns at start-up. `sslmode` in
//! the URL is refused (tokio-postgres does not know `verify-full`, and one
//! place for the setting avoids a URL silently weakening it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio_postgres::config::Host;

/// `store.tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgTlsMode {
    /// Plain TCP.
    Disable,
    /// TLS without checking the server's certificate.
    Require,
    /// TLS; the certificate must chain to `ca_file` and name the host.
    VerifyFull,
}

impl PgTlsMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PgTlsMode::Disable => "disable",
            PgTlsMode::Require => "require",
            PgTlsMode::VerifyFull => "verify-full",
        }
    }

    /// The default for a URL: `disable` when every host is loopback,
    /// `localhost` or a unix socket, else `verify-full`.
    pub fn default_for(cfg: &tokio_postgres::Config) -> PgTlsMode {
        if cfg.get_hosts().iter().all(is_local) {
            PgTlsMode::Disable
        } else {
            PgTlsMode::VerifyFull
        }
    }
}

fn is_local(h: &Host) -> bool {
    match h {
        Host::Tcp(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }
}

/// TLS settings of a [`super::PgStore`] (the node's `[store]` section).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgTls {
    /// `None`: [`PgTlsMode::default_for`] the URL.
    pub mode: Option<PgTlsMode>,
    /// CA certificate(s) (PEM) that issued the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM), for certificate authentication.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

impl PgTls {
    /// The mode in force for `cfg`.
    pub fn effective(&self, cfg: &tokio_postgres::Config) -> PgTlsMode {
        self.mode.unwrap_or_else(|| PgTlsMode::default_for(cfg))
    }

    /// Check the combination with the URL (no file is read). The error
    /// starts with the field (`tls`, `ca_file`, `client_cert`, `client_key`)
    /// and says the fix; the caller prefixes the section.
    pub fn check(&self, cfg: &tokio_postgres::Config) -> Result<PgTlsMode, String> {
        let mode = self.effective(cfg);
        let why = if self.mode.is_some() {
            format!("tls = \"{}\"", mode.as_str())
        } else {
            format!(
                "tls is not set, so it is \"{}\" for this url",
                mode.as_str()
            )
        };
        if self.client_cert.is_some() != self.client_key.is_some() {
            let (set, missing) = if self.client_cert.is_some() {
                ("client_cert", "client_key")
            } else {
                ("client_key", "client_cert")
            };
            return Err(format!(
                "{missing}: required with {set} (certificate authentication needs the certificate and its private key), or remove {set}"
            ));
        }
        #[cfg(unix)]
        if mode != PgTlsMode::Disable && cfg.get_hosts().iter().any(|h| matches!(h, Host::Unix(_)))
        {
            return Err(format!(
                "tls: {why}, but the url names a unix socket directory, where TLS does not apply; set tls = \"disable\" or use a TCP host"
            ));
        }
        match mode {
            PgTlsMode::Disable => {
                if let Some(f) = [
                    ("ca_file", &self.ca_file),
                    ("client_cert", &self.client_cert),
                ]
                .into_iter()
                .find_map(|(n, v)| v.is_some().then_some(n))
                {
                    return Err(format!(
                        "{f}: set, but {why} (no TLS), so it would not be used; set tls = \"verify-full\" or remove {f}"
                    ));
                }
            }
            PgTlsMode::Require => {
                if self.ca_file.is_some() {
                    return Err(
                        "ca_file: set, but tls = \"require\" does not check the server's certificate; set tls = \"verify-full\" to check it against ca_file, or remove ca_file".into(),
                    );
                }
            }
            PgTlsMode::VerifyFull => {
                if self.ca_file.is_none() {
                    return Err(format!(
                        "ca_file: required: {why}; give the CA certificate (PEM) that issued the database server's certificate, e.g. ca_file = \"tls/postgres-ca.pem\" (the system bundle /etc/ssl/certs/ca-certificates.crt for a public CA), or set tls = \"disable\" if the network to the database is protected otherwise"
                    ));
                }
            }
        }
        Ok(mode)
    }

    /// The rustls client config for `mode` (files read here; errors name the
    /// field).
    pub fn client_config(&self, mode: PgTlsMode) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match (mode, &self.ca_file) {
            (PgTlsMode::VerifyFull, Some(ca)) => {
                let mut roots = RootCertStore::empty();
                for c in read_certs("ca_file", ca)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("ca_file: {}: {e}", ca.display()))?;
                }
                builder.with_root_certificates(roots)
            }
            (PgTlsMode::Require, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCertCheck(provider))),
            // Disable (never used for a handshake) or a missing CA (refused
            // by `check`): trust nothing.
            _ => builder.with_root_certificates(RootCertStore::empty()),
        };
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) if mode != PgTlsMode::Disable => {
                let chain = read_certs("client_cert", cert)?;
                check_key_file("client_key", key)?;
                let k = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    format!(
                        "client_key: cannot read a private key (PEM: PKCS#8, SEC1 or PKCS#1) from {}: {e}",
                        key.display()
                    )
                })?;
                builder
                    .with_client_auth_cert(chain, k)
                    .map_err(|e| format!("client_key: does not fit client_cert: {e}"))
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }
}

/// A private key file must be readable by its owner only (as the master key
/// file): `FIELD: PATH can be read by group or others; chmod 600 PATH`.
pub fn check_key_file(field: &str, path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{field}: {} can be read by group or others; chmod 600 {}",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

fn read_certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            format!(
                "{field}: cannot read PEM certificates from {}: {e}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "{field}: {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// `tls = "require"`: the handshake's signatures are checked (the peer
/// holds the key of the certificate it sent), the certificate itself is not.
#[derive(Debug)]
struct NoCertCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn pg(url: &str) -> tokio_postgres::Config {
        tokio_postgres::Config::from_str(url).unwrap()
    }

    #[test]
    fn default_is_verify_full_off_loopback_and_disable_on_it() {
        for (url, mode) in [
            ("postgres://u@127.0.0.1:5432/d", PgTlsMode::Disable),
            ("postgres://u@localhost/d", PgTlsMode::Disable),
            ("postgres://u@[::1]:5432/d", PgTlsMode::Disable),
            ("postgres://u@%2Frun%2Fpostgresql/d", PgTlsMode::Disable),
            ("postgres://u@db.bank.example/d", PgTlsMode::VerifyFull),
            ("postgres://u@10.1.2.3/d", PgTlsMode::VerifyFull),
            (
                "postgres://u@127.0.0.1,db.bank.example/d",
                PgTlsMode::VerifyFull,
            ),
        ] {
            assert_eq!(PgTlsMode::default_for(&pg(url)), mode, "{url}");
        }
    }

    #[test]
    fn invalid_combinations_name_the_field_and_the_fix() {
        let remote = pg("postgres://u@db.bank.example/d");
        let local = pg("postgres://u@127.0.0.1/d");
        let ca = Some(PathBuf::from("ca.pem"));
        for (tls, url, says) in [
            (
                PgTls::default(),
                &remote,
                "ca_file: required: tls is not set",
            ),
            (
                PgTls {
                    mode: Some(PgTlsMode::Require),
                    ca_file: ca.clone(),
                    ..PgTls::default()
                },
                &remote,
                "ca_file: set, but tls = \"require\"",
            ),
            (
                PgTls {
                    ca_file: ca.clone(),
                    ..PgTls::default()
                },
                &local,
                "ca_file: set, but tls is not set, so it is \"disable\"",
            ),
            (
                PgTls {
                    mode: Some(PgTlsMode::VerifyFull),
                    ca_file: ca.clone(),
                    client_cert: Some("c.pem".into()),
                    ..PgTls::default()
                },
                &remote,
                "client_key: required with client_cert",
            ),
            (
                PgTls {
                    mode: Some(PgTlsMode::VerifyFull),
                    ca_file: ca.clone(),
                    ..PgTls::default()
                },
                &pg("postgres://u@%2Frun%2Fpostgresql/d"),
                "tls: tls = \"verify-full\", but the url names a unix socket",
            ),
        ] {
            let e = tls.check(url).unwrap_err();
            assert!(e.starts_with(says), "{e}");
        }
        let ok = PgTls {
            ca_file: ca,
            ..PgTls::default()
        };
        assert_eq!(ok.check(&remote), Ok(PgTlsMode::VerifyFull));
        let off = PgTls {
            mode: Some(PgTlsMode::Disable),
            ..PgTls::default()
        };
        assert_eq!(off.check(&remote), Ok(PgTlsMode::Disable));
    }
}
