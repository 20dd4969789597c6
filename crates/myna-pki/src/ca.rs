//! The test JPKI CA and a small pool of RSA-2048 holder keys.

use chrono::{DateTime, Utc};
use der::asn1::{Ia5String, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rsa::PrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use sha2::{Digest, Sha256};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use std::str::FromStr;
use std::time::Duration;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::pkix::certpolicy::{PolicyInformation, PolicyQualifierInfo};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, IssuerAltName, KeyUsage,
    KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::validate::CertError;

/// JPKI user-authentication certificate policy (seen on production cards).
pub const AUTH_POLICY_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.3.30");
const CPS_QUALIFIER_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.2.1");
const OCSP_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const CLIENT_AUTH_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
/// Subject of the test CA: the production DN with O=JPKI-TEST, RFC 4514 order (last RDN first).
pub const TEST_CA_DN: &str = "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for user authentication,O=JPKI-TEST,C=JP";

/// The issuer's Japanese names: the CA's subjectAltName and its certificates' issuerAltName.
const ISSUER_ALT_DN: &str = "OU=地方公共団体情報システム機構,OU=公的個人認証サービス利用者証明用,O=公的個人認証サービス,C=JP";
/// The CRL distribution point of end-entity certificates: per municipality on real cards.
const CRLDP_DN: &str = "CN=Kawasaki-shi CRLDP,OU=Kanagawa-ken,OU=CRL Distribution Points,OU=JPKI for user authentication,O=JPKI-TEST,C=JP";

fn dir_name(dn: &str) -> x509_cert::builder::Result<GeneralName> {
    Name::from_str(dn)
        .map(GeneralName::DirectoryName)
        .map_err(x509_cert::builder::Error::Asn1)
}

fn crl_dp(dn: &str) -> x509_cert::builder::Result<CrlDistributionPoints> {
    Ok(CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![dir_name(dn)?])),
        reasons: None,
        crl_issuer: None,
    }]))
}

fn pki_err(e: impl std::fmt::Display) -> CertError {
    CertError::Issue(e.to_string())
}

fn sha1_like_key_id(spk: SubjectPublicKeyInfoRef<'_>) -> Result<OctetString, CertError> {
    // Key identifier: first 20 bytes of SHA-256 of the subjectPublicKey bits (RFC 7093 method 1).
    let digest = Sha256::digest(spk.subject_public_key.raw_bytes());
    OctetString::new(digest.get(..20).unwrap_or_default()).map_err(pki_err)
}

fn unix(t: DateTime<Utc>) -> Result<Time, CertError> {
    let secs =
        u64::try_from(t.timestamp()).map_err(|_| CertError::Issue("time before 1970".into()))?;
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(secs)).map_err(pki_err)?;
    Ok(Time::from(dt))
}

struct CaProfile {
    subject: Name,
}

impl BuilderProfile for CaProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        // The order of a real JPKI CA certificate: KU, SAN, BC, CRLDP, SKI.
        let key_usage = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)
            .to_extension(tbs.subject(), &[])?;
        let mut ext = vec![key_usage];
        ext.push(SubjectAltName(vec![dir_name(ISSUER_ALT_DN)?]).to_extension(tbs.subject(), &ext)?);
        ext.push(
            (
                true,
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
            )
                .to_extension(tbs.subject(), &ext)?,
        );
        ext.push(crl_dp(&self.subject.to_string())?.to_extension(tbs.subject(), &ext)?);
        let ski = SubjectKeyIdentifier(
            sha1_like_key_id(spk)
                .map_err(|_| x509_cert::builder::Error::Signature(signature_error()))?,
        );
        ext.push(ski.to_extension(tbs.subject(), &ext)?);
        Ok(ext)
    }
}

fn signature_error() -> rsa::signature::Error {
    rsa::signature::Error::new()
}

/// The layout of an issued end-entity certificate. Only `JpkiAuth` is what cards carry; the
/// others exist so tests can show the validator refuses near misses from the trusted CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertShape {
    /// A JPKI user-authentication (利用者証明用) certificate.
    JpkiAuth,
    /// Shaped like a 署名用 (signing) certificate: digitalSignature + nonRepudiation, no EKU,
    /// no authentication policy.
    SigningLike,
    /// Authentication layout without the certificate policy.
    NoPolicy,
    /// Authentication layout plus a critical extension nobody understands.
    UnknownCriticalExtension,
}

struct AuthProfile {
    issuer: Name,
    issuer_serial: SerialNumber,
    subject: Name,
    ocsp_url: String,
    shape: CertShape,
}

impl BuilderProfile for AuthProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let sig_err = |_| x509_cert::builder::Error::Signature(signature_error());
        let mut ext = Vec::new();
        let shape = self.shape;
        if shape == CertShape::SigningLike {
            ext.push(
                KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation)
                    .to_extension(tbs.subject(), &ext)?,
            );
        } else {
            ext.push(
                KeyUsage(KeyUsages::DigitalSignature.into()).to_extension(tbs.subject(), &ext)?,
            );
            ext.push(ExtendedKeyUsage(vec![CLIENT_AUTH_OID]).to_extension(tbs.subject(), &ext)?);
        }
        let policies = CertificatePolicies(vec![PolicyInformation {
            policy_identifier: AUTH_POLICY_OID,
            policy_qualifiers: Some(vec![PolicyQualifierInfo {
                policy_qualifier_id: CPS_QUALIFIER_OID,
                qualifier: Some(der::Any::encode_from(&Ia5String::new(
                    "http://jpki.test/cps.html",
                )?)?),
            }]),
        }]);
        if shape == CertShape::JpkiAuth || shape == CertShape::UnknownCriticalExtension {
            ext.push((true, &policies).to_extension(tbs.subject(), &ext)?);
        }
        ext.push(IssuerAltName(vec![dir_name(ISSUER_ALT_DN)?]).to_extension(tbs.subject(), &ext)?);
        ext.push(crl_dp(CRLDP_DN)?.to_extension(tbs.subject(), &ext)?);
        if shape == CertShape::UnknownCriticalExtension {
            ext.push(Extension {
                extn_id: ObjectIdentifier::new_unwrap("1.2.3.4.5.6.7"),
                critical: true,
                extn_value: OctetString::new(vec![0x05, 0x00])?,
            });
        }
        let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
            access_method: OCSP_OID,
            access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(
                &self.ocsp_url,
            )?),
        }]);
        ext.push(aia.to_extension(tbs.subject(), &ext)?);
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(sha1_like_key_id(issuer_spk).map_err(sig_err)?),
            authority_cert_issuer: Some(vec![GeneralName::DirectoryName(self.issuer.clone())]),
            authority_cert_serial_number: Some(self.issuer_serial.clone()),
        };
        ext.push(aki.to_extension(tbs.subject(), &ext)?);
        let ski = SubjectKeyIdentifier(sha1_like_key_id(spk).map_err(sig_err)?);
        ext.push(ski.to_extension(tbs.subject(), &ext)?);
        Ok(ext)
    }
}

/// A test certification authority for JPKI user-authentication certificates.
pub struct TestCa {
    key: PrivateKey,
    cert: Certificate,
    cert_der: Vec<u8>,
}

impl TestCa {
    /// A new CA with a fresh RSA-2048 key, valid for 10 years from `now`.
    pub fn generate(now: DateTime<Utc>) -> Result<Self, CertError> {
        let mut rng = rand::rng();
        let key = PrivateKey::new(&mut rng, 2048).map_err(pki_err)?;
        Self::with_key(key, now)
    }

    /// A CA certificate for an existing key (for example one loaded from disk).
    pub fn with_key(key: PrivateKey, now: DateTime<Utc>) -> Result<Self, CertError> {
        let subject = Name::from_str(TEST_CA_DN).map_err(pki_err)?;
        let spki = SubjectPublicKeyInfoOwned::from_key(&key.to_public_key()).map_err(pki_err)?;
        let validity = Validity::new(
            unix(now - chrono::Duration::days(1))?,
            unix(now + chrono::Duration::days(3652))?,
        );
        let serial = SerialNumber::new(&[0x00, 0xBF, 0xCD]).map_err(pki_err)?;
        let builder = CertificateBuilder::new(CaProfile { subject }, serial, validity, spki)
            .map_err(pki_err)?;
        let signer = SigningKey::<Sha256>::new(key.clone());
        let cert = builder
            .build::<_, rsa::pkcs1v15::Signature>(&signer)
            .map_err(pki_err)?;
        let cert_der = cert.to_der().map_err(pki_err)?;
        Ok(Self {
            key,
            cert,
            cert_der,
        })
    }

    /// Restores a CA from its PKCS#8 key and DER certificate.
    pub fn from_parts(key_pkcs8: &[u8], cert_der: &[u8]) -> Result<Self, CertError> {
        let key = PrivateKey::from_pkcs8_der(key_pkcs8).map_err(pki_err)?;
        let cert =
            Certificate::from_der(cert_der).map_err(|e| CertError::Malformed(e.to_string()))?;
        let spki = SubjectPublicKeyInfoOwned::from_key(&key.to_public_key()).map_err(pki_err)?;
        if spki != *cert.tbs_certificate().subject_public_key_info() {
            return Err(CertError::Issue(
                "CA key does not match CA certificate".into(),
            ));
        }
        Ok(Self {
            key,
            cert,
            cert_der: cert_der.to_vec(),
        })
    }

    pub fn key_pkcs8_der(&self) -> Result<Vec<u8>, CertError> {
        Ok(self
            .key
            .to_pkcs8_der()
            .map_err(pki_err)?
            .as_bytes()
            .to_vec())
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// Issues a user-authentication certificate for the holder key, with the given serial (hex)
    /// and validity. The subject is an opaque CN derived from the serial, as on real cards.
    pub fn issue_auth_cert(
        &self,
        serial_hex: &str,
        holder: &rsa::PublicKey,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<Vec<u8>, CertError> {
        self.issue_shaped(
            serial_hex,
            holder,
            not_before,
            not_after,
            CertShape::JpkiAuth,
        )
    }

    /// Issues an end-entity certificate of the given shape (see `CertShape`).
    pub fn issue_shaped(
        &self,
        serial_hex: &str,
        holder: &rsa::PublicKey,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
        shape: CertShape,
    ) -> Result<Vec<u8>, CertError> {
        let serial_bytes =
            hex::decode(serial_hex).map_err(|e| CertError::Issue(format!("serial: {e}")))?;
        let serial = SerialNumber::new(&serial_bytes).map_err(pki_err)?;
        let subject = Name::from_str(&format!(
            "CN={}13221003A,C=JP",
            serial_hex.get(..12).unwrap_or(serial_hex)
        ))
        .map_err(pki_err)?;
        let profile = AuthProfile {
            issuer: self.cert.tbs_certificate().subject().clone(),
            issuer_serial: self.cert.tbs_certificate().serial_number().clone(),
            subject,
            ocsp_url: "http://ocsp.jpki.test".into(),
            shape,
        };
        let spki = SubjectPublicKeyInfoOwned::from_key(holder).map_err(pki_err)?;
        let validity = Validity::new(unix(not_before)?, unix(not_after)?);
        let builder = CertificateBuilder::new(profile, serial, validity, spki).map_err(pki_err)?;
        let signer = SigningKey::<Sha256>::new(self.key.clone());
        let cert = builder
            .build::<_, rsa::pkcs1v15::Signature>(&signer)
            .map_err(pki_err)?;
        cert.to_der().map_err(pki_err)
    }
}

/// A small pool of RSA-2048 holder keys. Generating RSA keys is slow, so emulated cards share
/// keys from the pool; each card still has its own certificate and serial.
pub struct KeyPool {
    keys: Vec<PrivateKey>,
}

impl KeyPool {
    pub fn generate(size: usize) -> Result<Self, CertError> {
        let mut rng = rand::rng();
        let keys = (0..size.max(1))
            .map(|_| PrivateKey::new(&mut rng, 2048).map_err(pki_err))
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    pub fn from_pkcs8(ders: &[Vec<u8>]) -> Result<Self, CertError> {
        let keys = ders
            .iter()
            .map(|d| PrivateKey::from_pkcs8_der(d).map_err(pki_err))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(CertError::Issue("key pool is empty".into()));
        }
        Ok(Self { keys })
    }

    pub fn to_pkcs8(&self) -> Result<Vec<Vec<u8>>, CertError> {
        self.keys
            .iter()
            .map(|k| Ok(k.to_pkcs8_der().map_err(pki_err)?.as_bytes().to_vec()))
            .collect()
    }

    /// The key for card `n`.
    pub fn key(&self, n: usize) -> &PrivateKey {
        &self.keys[n % self.keys.len()]
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
