//! Demo and test PKI: a CA and a server certificate for the gateway (rcgen).
//! Real deployments use the bank's own certificates.

use std::path::Path;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

/// Write `ca.pem`, `server.pem`, `server.key` (0600) into `dir`; the server
/// certificate names localhost, 127.0.0.1 and ::1.
pub fn write_demo_pki(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Menshen Demo CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "Menshen demo bank");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    ca.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut sp = CertificateParams::new(vec!["localhost".to_string()])?;
    sp.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    sp.subject_alt_names
        .push(SanType::IpAddress("::1".parse()?));
    sp.distinguished_name
        .push(DnType::CommonName, "menshen gateway (demo)");
    let now = time::OffsetDateTime::now_utc();
    sp.not_before = now - time::Duration::days(1);
    sp.not_after = now + time::Duration::days(397);
    let cert = sp.signed_by(&key, &ca_cert, &ca_key)?;

    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("server.pem"), cert.pem())?;
    write_private(&dir.join("server.key"), key.serialize_pem().as_bytes())?;
    // The demo CA key is not kept: nothing else is ever signed with it.
    Ok(())
}

/// Write a file readable only by its owner (0600).
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

/// A client CA and client certificates for mutual-TLS tests and demos.
pub struct ClientPki {
    /// Path of the client CA certificate (PEM), for `gateway.client_ca`.
    pub ca_file: std::path::PathBuf,
    /// (certificate PEM, private key PEM) per requested name.
    pub clients: Vec<(String, String)>,
}

/// Write `client-ca.pem` into `dir` and issue one client certificate per
/// name (CN = name), returned as PEM strings.
pub fn client_pki(dir: &Path, names: &[&str]) -> anyhow::Result<ClientPki> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Menshen Client CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_file = dir.join("client-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem())?;
    let mut clients = Vec::new();
    for n in names {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, *n);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(365);
        let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
        clients.push((cert.pem(), key.serialize_pem()));
    }
    Ok(ClientPki { ca_file, clients })
}
