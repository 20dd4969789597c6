//! TLS for the services, on rustls with aws-lc-rs (the backend `myna-pki` already verifies
//! with).
//! - `server_config`: a listener's certificate chain and key from PEM files.
//! - `client_config` and `https_connector`: outgoing HTTPS (ems → provider, tablet → ems) to
//!   the platform's roots or to a named CA file, e.g. the development CA.
//! - `devca`: the project's development CA, which the demo makes on first run and whose
//!   certificate a user imports once to see the demo on HTTPS without a warning.

pub mod devca;
pub mod identity;

use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("generating a certificate: {0}")]
    Generate(String),
    #[error("certificate signing request: {0}")]
    Request(String),
}

fn file_error(path: &Path, problem: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        problem: problem.to_string(),
    }
}

/// Every certificate in a PEM file, in order (leaf first for a chain).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no certificate"));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server's TLS configuration: its chain and key, HTTP/1.1 only. With `client_ca`, a client
/// may present a certificate, which must chain to that CA and allow client authentication; a
/// client without one still connects (browsers at the desk), and the service decides what it
/// may do (`myna_web::serve::PeerCertificate`).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(ca)? {
                roots
                    .add(c)
                    .map_err(|e| file_error(ca, format!("not a usable CA: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| file_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certificates(cert)?, private_key(key)?)
        .map_err(|e| TlsError::Config(format!("{}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Which certificate authorities a client trusts.
#[derive(Debug, Clone)]
pub enum Roots {
    /// The operating system's store (`/etc/ssl/certs`).
    Platform,
    /// The CA certificates in a PEM file, and nothing else (a private deployment, the demo).
    File(PathBuf),
}

/// The client certificate (DER, the leaf) a TLS peer presented and the server's verifier
/// accepted; the services put it in each request's extensions. Absent on plain HTTP and when
/// the client sent none.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<[u8]>);

/// A client certificate chain and its key (PEM files), presented for mutual TLS.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A client's TLS configuration, presenting `identity` when given.
pub fn client_config(
    roots: &Roots,
    identity: Option<&ClientIdentity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::Platform => {
            let found = rustls_native_roots();
            for cert in found {
                // A platform store may hold a certificate rustls cannot use; skip it.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(TlsError::Config(
                    "no platform CA certificates found (install ca-certificates or set \
                     SSL_CERT_FILE), or name the CA to trust"
                        .into(),
                ));
            }
        }
        Roots::File(path) => {
            for cert in certificates(path)? {
                store
                    .add(cert)
                    .map_err(|e| file_error(path, format!("not a usable CA: {e}")))?;
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(store);
    let config = match identity {
        None => config.with_no_client_auth(),
        Some(id) => config
            .with_client_auth_cert(certificates(&id.cert)?, private_key(&id.key)?)
            .map_err(|e| file_error(&id.cert, e))?,
    };
    Ok(Arc::new(config))
}

/// The platform's CA bundle: `SSL_CERT_FILE` if set (as OpenSSL reads it), else Debian's.
fn rustls_native_roots() -> Vec<CertificateDer<'static>> {
    let path = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    certificates(&path).unwrap_or_default()
}

/// Refuses a plain `http://` address of another host: credentials and medical data never
/// cross a network in clear (a loopback address stays allowed: tests, a local proxy).
pub fn check_url(url: &str) -> Result<(), TlsError> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(TlsError::Config(format!(
            "{url}: plain http:// to another host is refused; use https://"
        )))
    }
}

/// The platform's roots, read once per process.
pub fn platform_client_config() -> Result<Arc<ClientConfig>, TlsError> {
    static CONFIG: std::sync::OnceLock<Arc<ClientConfig>> = std::sync::OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let config = client_config(&Roots::Platform, None)?;
    Ok(CONFIG.get_or_init(|| config).clone())
}

/// The connector type of our HTTP clients.
pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// An HTTP client connector that speaks HTTPS with `config` and plain HTTP to `http://` URLs
/// (loopback tests and a service behind a local proxy).
pub fn https_connector(
    config: Arc<ClientConfig>,
    connect_timeout: Option<std::time::Duration>,
) -> Connector {
    https_connector_from(config, connect_timeout, None)
}

/// `https_connector` whose connections leave from `local` (a load test gives each simulated
/// tablet its own loopback address, as each real tablet has its own).
pub fn https_connector_from(
    config: Arc<ClientConfig>,
    connect_timeout: Option<std::time::Duration>,
    local: Option<std::net::IpAddr>,
) -> Connector {
    let mut http = HttpConnector::new();
    http.set_local_address(local);
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*config).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_http_is_refused_off_loopback_only() {
        for ok in [
            "https://ems.example:8441",
            "http://127.0.0.1:8441",
            "http://localhost:1/x",
            "http://[::1]:8441/",
            "http://127.9.9.9",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for no in [
            "http://10.0.0.5:8441",
            "http://ems.example",
            "http://[fd00::1]:80/",
            "http://user@10.0.0.5/",
            "http://localhost.evil.example",
        ] {
            assert!(check_url(no).is_err(), "{no}");
        }
    }
}
