//! Checking the auth certificate's chain: to the J-LIS roots `myna-card` carries (production
//! cards), or to a configured test root (the project's test CA, for emulated cards).

use chrono::{DateTime, Utc};
use myna_card::Certificate;
use myna_card::certificate::roots::Accept;
use myna_card::data::Date;
use myna_pki::TrustAnchor;
use serde::Serialize;

/// What a certificate chain is checked against.
pub enum Trust {
    /// The J-LIS production roots (利用者証明用CA) that `myna-card` embeds.
    Jlis,
    /// A test root, e.g. `data/pki/ca.cert.der`.
    TestRoot(Box<TrustAnchor>),
}

/// The certificate's details and the outcome of the chain check.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// シリアル番号, the identifier the provider resolves (hex, as in `provider revoke`).
    pub serial: String,
    pub issuer: String,
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
    pub anchor: &'static str,
    pub chain_verified: bool,
    pub chain_error: Option<String>,
}

/// Parses the certificate and checks its chain on `now`.
pub fn check(der: &[u8], trust: &Trust, now: DateTime<Utc>) -> Result<CertificateReport, String> {
    let cert = Certificate::parse(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let (from, to) = cert.validity();
    let (anchor, result) = match trust {
        Trust::Jlis => {
            let today = Date::from_unix_seconds(now.timestamp());
            (
                "J-LIS roots",
                cert.verify_to_root(today, Accept::ProductionOnly)
                    .map_err(|e| e.to_string()),
            )
        }
        Trust::TestRoot(anchor) => (
            "test root",
            anchor
                .validate_auth_cert(der, now)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ),
    };
    Ok(CertificateReport {
        serial: myna_pki::serial_hex(&cert.serial_number()),
        issuer: cert.issuer(),
        subject: cert.subject(),
        not_before: from.to_string(),
        not_after: to.to_string(),
        anchor,
        chain_verified: result.is_ok(),
        chain_error: result.err(),
    })
}
