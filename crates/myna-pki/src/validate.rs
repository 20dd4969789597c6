//! Validation of a JPKI user-authentication certificate presented by a fire bureau.

use crate::AUTH_POLICY_OID;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use chrono::{DateTime, Utc};
use der::asn1::UintRef;
use der::flagset::FlagSet;
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use x509_cert::certificate::{Certificate, Version};
use x509_cert::ext::pkix::{
    BasicConstraints, CertificatePolicies, ExtendedKeyUsage, KeyUsage, KeyUsages,
};
use x509_cert::name::Name;

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
/// Extensions the validator understands or may safely ignore when marked critical.
const KNOWN_EXTENSIONS: &[ObjectIdentifier] = &[
    ObjectIdentifier::new_unwrap("2.5.29.14"), // subjectKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.15"), // keyUsage
    ObjectIdentifier::new_unwrap("2.5.29.17"), // subjectAltName
    ObjectIdentifier::new_unwrap("2.5.29.18"), // issuerAltName
    ObjectIdentifier::new_unwrap("2.5.29.19"), // basicConstraints
    ObjectIdentifier::new_unwrap("2.5.29.31"), // cRLDistributionPoints
    ObjectIdentifier::new_unwrap("2.5.29.32"), // certificatePolicies
    ObjectIdentifier::new_unwrap("2.5.29.35"), // authorityKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.37"), // extKeyUsage
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1"), // authorityInfoAccess
];

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
///
/// Signature verification uses aws-lc-rs, the backend rustls uses for TLS: it runs on every
/// summary request and is several times faster than RustCrypto's constant-time big integers,
/// which only need to be constant-time for private-key operations.
#[derive(Clone)]
pub struct TrustAnchor {
    subject_der: Vec<u8>,
    /// The CA's key, parsed once rather than on every certificate it checks.
    public_key: ParsedPublicKey,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    der: Vec<u8>,
}

/// What the provider learns from an accepted certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedAuthCert {
    pub serial_hex: String,
    pub not_after: DateTime<Utc>,
    /// The subject's RSAPublicKey (PKCS#1 DER), at least 2048 bits.
    pub public_key: Vec<u8>,
}

/// A signature that does not verify with the certificate's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signature does not verify with the certificate's key")]
pub struct BadSignature;

impl ValidatedAuthCert {
    /// Checks a PKCS#1 v1.5 signature over the SHA-256 DigestInfo of `message` (what a JPKI
    /// card makes with `80 2A 00 80+SFI` from that DigestInfo) with this certificate's key.
    pub fn verify_sha256_signature(
        &self,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), BadSignature> {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key)
            .verify(message, signature)
            .map_err(|_| BadSignature)
    }
}

fn to_chrono(t: &x509_cert::time::Time) -> DateTime<Utc> {
    let d = t.to_unix_duration();
    DateTime::<Utc>::from_timestamp(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn name_der(n: &Name) -> Result<Vec<u8>, CertError> {
    n.to_der().map_err(|e| CertError::Malformed(e.to_string()))
}

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The subject's RSAPublicKey DER, after checking it is RSA with a modulus of 2048 bits or more.
fn rsa_key(cert: &Certificate) -> Result<Vec<u8>, CertError> {
    let spki = cert.tbs_certificate().subject_public_key_info();
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(CertError::Unsupported(format!(
            "subject key algorithm {} is not RSA",
            spki.algorithm.oid
        )));
    }
    let bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CertError::Malformed("subject key has unused bits".into()))?;
    let key = rsa::pkcs1::RsaPublicKey::<UintRef<'_>>::from_der(bytes).map_err(|e| {
        CertError::Unsupported(format!("subject key is not an RSA public key: {e}"))
    })?;
    let modulus = key.modulus.as_bytes();
    let bits = modulus.len() * 8 - modulus.first().map_or(8, |b| b.leading_zeros() as usize);
    if bits < 2048 {
        return Err(CertError::Unsupported(format!(
            "RSA key of {bits} bits; at least 2048 required"
        )));
    }
    Ok(bytes.to_vec())
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
        let public_key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key)
            .map_err(|e| CertError::Unsupported(format!("the CA's RSA key: {e}")))?;
        Ok(Self {
            subject_der: name_der(tbs.subject())?,
            public_key,
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
        let alg = cert.signature_algorithm().oid;
        if alg != SHA256_WITH_RSA || tbs.signature().oid != SHA256_WITH_RSA {
            return Err(CertError::Unsupported(format!(
                "signature algorithm {alg}; sha256WithRSAEncryption required"
            )));
        }
        // RFC 5280 4.1.1.2: the unsigned outer identifier must equal the signed one, and
        // sha256WithRSAEncryption takes NULL parameters (absent is tolerated).
        let params_ok = tbs
            .signature()
            .parameters
            .as_ref()
            .is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty());
        if cert.signature_algorithm() != tbs.signature() || !params_ok {
            return Err(CertError::Malformed(
                "signatureAlgorithm differs from the signed algorithm identifier".into(),
            ));
        }
        if name_der(tbs.issuer())? != self.subject_der {
            return Err(CertError::Untrusted(format!(
                "issuer {} is not the trusted CA",
                tbs.issuer()
            )));
        }
        let tbs_der = received_tbs(der).map_err(|e| CertError::Malformed(e.to_string()))?;
        // The decoder tolerates a few non-DER forms (a DEFAULT value written out, a SET out of
        // order) and would read them as their DER twin: refuse them, so that what was signed
        // is exactly what is read.
        let reencoded = tbs
            .to_der()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        if reencoded != tbs_der {
            return Err(CertError::Malformed("tbsCertificate is not DER".into()));
        }
        let sig_bytes = cert
            .signature()
            .as_bytes()
            .ok_or_else(|| CertError::Malformed("signature has unused bits".into()))?;
        self.public_key
            .verify_sig(tbs_der, sig_bytes)
            .map_err(|_| {
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
        let public_key = rsa_key(&cert)?;
        let ku = tbs
            .get_extension::<KeyUsage>()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        // A JPKI authentication certificate has digitalSignature only; a signing (署名用)
        // certificate adds nonRepudiation, a CA keyCertSign.
        let digital_signature_only: FlagSet<KeyUsages> = KeyUsages::DigitalSignature.into();
        match ku {
            Some((true, ku)) if ku.0 == digital_signature_only => {}
            Some((false, _)) => {
                return Err(CertError::WrongKeyUsage("keyUsage is not critical".into()));
            }
            _ => {
                return Err(CertError::WrongKeyUsage(
                    "keyUsage must be digitalSignature only".into(),
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
            && !eku.0.contains(&CLIENT_AUTH)
        {
            return Err(CertError::WrongKeyUsage(
                "extendedKeyUsage lacks clientAuth".into(),
            ));
        }
        let policies = tbs
            .get_extension::<CertificatePolicies>()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        if !policies
            .is_some_and(|(_, p)| p.0.iter().any(|i| i.policy_identifier == AUTH_POLICY_OID))
        {
            return Err(CertError::WrongKeyUsage(
                "certificatePolicies lacks the JPKI user-authentication policy".into(),
            ));
        }
        // RFC 5280 4.2: a certificate with a critical extension we do not process is refused.
        if let Some(unknown) = tbs
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.critical && !KNOWN_EXTENSIONS.contains(&e.extn_id))
        {
            return Err(CertError::Unsupported(format!(
                "unrecognised critical extension {}",
                unknown.extn_id
            )));
        }
        Ok(ValidatedAuthCert {
            serial_hex: crate::serial_hex(tbs.serial_number().as_bytes()),
            not_after,
            public_key,
        })
    }
}

/// The signed `tbsCertificate` as it was received: the first of the certificate SEQUENCE's
/// three elements, itself a SEQUENCE, with nothing after the certificate. The signature is
/// checked over these bytes (RFC 5280 4.1.1.3).
fn received_tbs(der: &[u8]) -> Result<&[u8], der::Error> {
    let mut reader = SliceReader::new(der)?;
    let tbs = reader.sequence(|certificate| {
        Tag::peek(certificate)?.assert_eq(Tag::Sequence)?;
        let tbs = certificate.tlv_bytes()?;
        // signatureAlgorithm, signatureValue; `sequence` refuses anything after them.
        certificate.tlv_bytes()?;
        certificate.tlv_bytes()?;
        Ok::<_, der::Error>(tbs)
    })?;
    reader.finish()?;
    Ok(tbs)
}

/// The serial of a certificate, without validating anything else: what an intermediary (`ems`)
/// records before the provider, which holds the trust anchor, judges the certificate.
pub fn certificate_serial_hex(der: &[u8]) -> Result<String, CertError> {
    let cert = Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
    Ok(crate::serial_hex(
        cert.tbs_certificate().serial_number().as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{KeyPool, TestCa};

    #[test]
    fn the_received_tbs_is_the_certificates_first_element_as_received() {
        let now: DateTime<Utc> = "2026-11-24T03:00:00Z".parse().unwrap();
        let ca = TestCa::generate(now).unwrap();
        let key = KeyPool::generate(1).unwrap().key(0).to_public_key();
        let der = ca
            .issue_auth_cert("01A1", &key, now, now + chrono::Duration::days(1))
            .unwrap();
        let tbs = received_tbs(&der).unwrap();
        // Borrowed from the input right after the outer header (30 82 LL LL), and as long as
        // the decoded tbsCertificate.
        assert_eq!(tbs.as_ptr() as usize - der.as_ptr() as usize, 4);
        let decoded = Certificate::from_der(&der).unwrap();
        assert_eq!(tbs, decoded.tbs_certificate().to_der().unwrap().as_slice());
    }

    #[test]
    fn received_tbs_refuses_what_is_not_one_certificate() {
        let refused = |bytes: &[u8]| received_tbs(bytes).is_err();
        assert!(refused(b"\x02\x01\x00"), "outer element not a SEQUENCE");
        assert!(
            refused(b"\x30\x03\x02\x01\x00"),
            "first element not a SEQUENCE"
        );
        assert!(refused(b"\x30\x01\x30\x00"), "read past the outer length");
        assert!(refused(b"\x30\x02\x30\x00"), "no algorithm and signature");
        let three = b"\x30\x06\x30\x00\x05\x00\x03\x00";
        assert!(
            received_tbs(three).is_ok(),
            "three elements, the first a SEQUENCE"
        );
        assert!(
            refused(b"\x30\x08\x30\x00\x05\x00\x03\x00\x05\x00"),
            "a fourth element"
        );
        let mut trailing = three.to_vec();
        trailing.push(0);
        assert!(refused(&trailing), "bytes after the certificate");
        assert!(refused(&three[..5]), "cut short");
    }
}
