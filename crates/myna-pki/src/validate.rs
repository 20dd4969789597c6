//! Validation of a JPKI user-authentication certificate presented by a fire bureau.

use chrono::{DateTime, Utc};
use der::{Decode, Encode};
use rsa::PublicKey as RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use sha2::Sha256;
use spki::DecodePublicKey;
use x509_cert::certificate::{Certificate, Version};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::Name;

const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// Why a certificate was not accepted. Each maps to a distinct API error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate is not valid DER X.509: {0}")]
    Malformed(String),
    #[error("certificate uses an unsupported algorithm or key: {0}")]
    Unsupported(String),
    #[error("certificate does not chain to the trusted JPKI CA: {0}")]
    Untrusted(String),
    #[error("certificate expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("certificate is not valid before {0}")]
    NotYetValid(DateTime<Utc>),
    #[error("certificate is not a user-authentication certificate: {0}")]
    WrongKeyUsage(String),
    #[error("certificate issuance failed: {0}")]
    Issue(String),
}

/// The CA certificate the provider trusts, parsed once.
#[derive(Clone)]
pub struct TrustAnchor {
    subject_der: Vec<u8>,
    verifier: VerifyingKey<Sha256>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    der: Vec<u8>,
}

/// What the provider learns from an accepted certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedAuthCert {
    pub serial_hex: String,
    pub not_after: DateTime<Utc>,
}

fn to_chrono(t: &x509_cert::time::Time) -> DateTime<Utc> {
    let d = t.to_unix_duration();
    DateTime::<Utc>::from_timestamp(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn name_der(n: &Name) -> Result<Vec<u8>, CertError> {
    n.to_der().map_err(|e| CertError::Malformed(e.to_string()))
}

fn rsa_key(cert: &Certificate) -> Result<RsaPublicKey, CertError> {
    let spki_der = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    let key = RsaPublicKey::from_public_key_der(&spki_der)
        .map_err(|e| CertError::Unsupported(format!("subject key is not RSA: {e}")))?;
    if key.size() < 256 {
        return Err(CertError::Unsupported(format!(
            "RSA key of {} bits; at least 2048 required",
            key.size() * 8
        )));
    }
    Ok(key)
}

impl TrustAnchor {
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let cert = Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        let key = rsa_key(&cert)?;
        let bc = tbs
            .get_extension::<BasicConstraints>()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        if !matches!(bc, Some((_, BasicConstraints { ca: true, .. }))) {
            return Err(CertError::WrongKeyUsage(
                "trust anchor is not a CA certificate".into(),
            ));
        }
        Ok(Self {
            subject_der: name_der(tbs.subject())?,
            verifier: VerifyingKey::<Sha256>::new(key),
            not_before: to_chrono(&tbs.validity().not_before),
            not_after: to_chrono(&tbs.validity().not_after),
            der: der.to_vec(),
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Validates a user-authentication certificate at `now`: DER, algorithm, chain to this
    /// anchor, validity of both certificates, key usage. Revocation is the caller's check,
    /// against its revocation list, using the returned serial.
    pub fn validate_auth_cert(
        &self,
        der: &[u8],
        now: DateTime<Utc>,
    ) -> Result<ValidatedAuthCert, CertError> {
        let cert = Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
        let tbs = cert.tbs_certificate();
        if tbs.version() != Version::V3 {
            return Err(CertError::Malformed("not an X.509 v3 certificate".into()));
        }
        let alg = cert.signature_algorithm().oid.to_string();
        if alg != SHA256_WITH_RSA || tbs.signature().oid.to_string() != SHA256_WITH_RSA {
            return Err(CertError::Unsupported(format!(
                "signature algorithm {alg}; sha256WithRSAEncryption required"
            )));
        }
        if name_der(tbs.issuer())? != self.subject_der {
            return Err(CertError::Untrusted(format!(
                "issuer {} is not the trusted CA",
                tbs.issuer()
            )));
        }
        let tbs_der = tbs
            .to_der()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        let sig_bytes = cert
            .signature()
            .as_bytes()
            .ok_or_else(|| CertError::Malformed("signature has unused bits".into()))?;
        let signature = Signature::try_from(sig_bytes)
            .map_err(|_| CertError::Untrusted("malformed signature".into()))?;
        self.verifier.verify(&tbs_der, &signature).map_err(|_| {
            CertError::Untrusted("signature does not verify with the CA key".into())
        })?;
        if now < self.not_before || now > self.not_after {
            return Err(CertError::Untrusted(
                "the trusted CA certificate is outside its validity".into(),
            ));
        }
        let not_before = to_chrono(&tbs.validity().not_before);
        let not_after = to_chrono(&tbs.validity().not_after);
        if now > not_after {
            return Err(CertError::Expired(not_after));
        }
        if now < not_before {
            return Err(CertError::NotYetValid(not_before));
        }
        rsa_key(&cert)?;
        let ku = tbs
            .get_extension::<KeyUsage>()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        match ku {
            Some((true, ku))
                if ku.0.contains(KeyUsages::DigitalSignature)
                    && !ku.0.contains(KeyUsages::KeyCertSign) => {}
            Some((false, _)) => {
                return Err(CertError::WrongKeyUsage("keyUsage is not critical".into()));
            }
            _ => {
                return Err(CertError::WrongKeyUsage(
                    "keyUsage must be digitalSignature".into(),
                ));
            }
        }
        if let Some((_, BasicConstraints { ca: true, .. })) = tbs
            .get_extension::<BasicConstraints>()
            .map_err(|e| CertError::Malformed(e.to_string()))?
        {
            return Err(CertError::WrongKeyUsage(
                "a CA certificate is not a card certificate".into(),
            ));
        }
        if let Some((_, eku)) = tbs
            .get_extension::<ExtendedKeyUsage>()
            .map_err(|e| CertError::Malformed(e.to_string()))?
            && !eku.0.iter().any(|o| o.to_string() == CLIENT_AUTH)
        {
            return Err(CertError::WrongKeyUsage(
                "extendedKeyUsage lacks clientAuth".into(),
            ));
        }
        Ok(ValidatedAuthCert {
            serial_hex: crate::serial_hex(tbs.serial_number().as_bytes()),
            not_after,
        })
    }
}
