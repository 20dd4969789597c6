//! The project's development CA: a self-signed ECDSA P-256 root, valid ten years, that issues
//! the demo's server certificates (at most 393 days, under the browsers' 398, with their host names
//! and addresses as subject alternative names). Pure generation: the caller writes the files,
//! the keys owner-only.

use crate::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::net::IpAddr;

/// The common name of the development CA, as a browser's certificate list shows it.
pub const CA_NAME: &str = "Myna Kyukyu development CA (not for production)";

/// A certificate and its key, PEM.
pub struct Generated {
    pub cert_pem: String,
    pub key_pem: String,
}

fn generate_err(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// A date as `(year, month, day)`; the caller passes today (the crate has no clock).
pub type Day = (i32, u8, u8);

/// The first of this month: a start safely in the past whatever the time zone.
fn month_start((y, m, _): Day) -> Day {
    (y, m, 1)
}

/// The same day `years` later (the 29th to 31st become the 28th, so the date exists).
fn years_later((y, m, d): Day, years: i32) -> Day {
    (y + years, m, d.min(28))
}

fn ca_params(name: &str, today: Day) -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(generate_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "Myna Kyukyu");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let (y, m, d) = month_start(today);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = years_later(today, 10);
    p.not_after = rcgen::date_time_ymd(y, m, d);
    Ok(p)
}

/// A new development CA.
pub fn new_ca(today: Day) -> Result<Generated, TlsError> {
    new_named_ca(CA_NAME, today)
}

/// A new CA with its own name, e.g. the bureau's device CA that issues the tablets'
/// certificates, or the provider's organisation CA.
pub fn new_named_ca(name: &str, today: Day) -> Result<Generated, TlsError> {
    let key = KeyPair::generate().map_err(generate_err)?;
    let cert = ca_params(name, today)?
        .self_signed(&key)
        .map_err(generate_err)?;
    Ok(Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A server certificate from the CA whose key is `ca_key_pem`, for `hosts` (DNS names or IP
/// addresses).
pub fn issue_server(ca_key_pem: &str, hosts: &[String], today: Day) -> Result<Generated, TlsError> {
    if hosts.is_empty() {
        return Err(TlsError::Generate(
            "a server certificate needs a host name".into(),
        ));
    }
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(generate_err)?;
    let issuer = Issuer::new(ca_params(CA_NAME, today)?, ca_key);
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(generate_err)?;
    for host in hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.clone()
                    .try_into()
                    .map_err(|e: rcgen::Error| TlsError::Generate(format!("{host}: {e}")))?,
            ),
        };
        p.subject_alt_names.push(san);
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, hosts[0].as_str());
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // From the month's first to the same day a year later: at most 393 days, under the
    // browsers' 398-day limit.
    let (y, m, d) = month_start(today);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = years_later(today, 1);
    p.not_after = rcgen::date_time_ymd(y, m, d);
    let key = KeyPair::generate().map_err(generate_err)?;
    let cert = p.signed_by(&key, &issuer).map_err(generate_err)?;
    Ok(Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{Roots, client_config, server_config};
    use rustls_pki_types::ServerName;
    use std::io::Write;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        path
    }

    /// A handshake in memory between a server with `cert` and a client trusting `ca`.
    fn handshake(
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
        name: &str,
    ) -> Result<(), String> {
        let server = server_config(cert, key, None).map_err(|e| e.to_string())?;
        let client = client_config(&Roots::File(ca.to_owned()), None).map_err(|e| e.to_string())?;
        let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
        let mut c = rustls::ClientConnection::new(client, name).map_err(|e| e.to_string())?;
        let mut s = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            s.process_new_packets().map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            c.process_new_packets().map_err(|e| e.to_string())?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        Err("the handshake did not finish".into())
    }

    #[test]
    fn a_server_certificate_from_the_dev_ca_is_trusted_for_its_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let today = (2026, 11, 26);
        let ca = new_ca(today).unwrap();
        let ca_path = write(dir.path(), "ca.pem", &ca.cert_pem);
        let server = issue_server(
            &ca.key_pem,
            &["localhost".into(), "127.0.0.1".into()],
            today,
        )
        .unwrap();
        let cert = write(dir.path(), "ems.pem", &server.cert_pem);
        let key = write(dir.path(), "ems.key", &server.key_pem);
        assert_eq!(handshake(&ca_path, &cert, &key, "localhost"), Ok(()));
        assert_eq!(handshake(&ca_path, &cert, &key, "127.0.0.1"), Ok(()));
        let other_name = handshake(&ca_path, &cert, &key, "ems.example");
        assert!(
            other_name.is_err(),
            "a name not in the certificate was accepted"
        );

        // Another CA's client does not trust it.
        let other = new_ca(today).unwrap();
        let other_path = write(dir.path(), "other.pem", &other.cert_pem);
        assert!(handshake(&other_path, &cert, &key, "localhost").is_err());
    }

    #[test]
    fn bad_files_are_reported_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), "empty.pem", "");
        let err = server_config(&empty, &empty, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("empty.pem"), "{err}");
        assert!(issue_server("not a key", &["localhost".into()], (2026, 1, 1)).is_err());
        let ca = new_ca((2026, 1, 1)).unwrap();
        assert!(issue_server(&ca.key_pem, &[], (2026, 1, 1)).is_err());
    }
}
