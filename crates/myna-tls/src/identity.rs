//! Machine identities over mutual TLS: a tablet proves itself to ems with a certificate from the
//! bureau's device CA, issued when an admin approves its enrollment; a bureau proves itself to
//! the provider with a certificate from the provider's organisation CA, whose subject names the
//! organisation.
//!
//! A device makes its key and sends only a certificate signing request; the CA takes nothing
//! from the request but its public key (checked by the request's own signature), so a request
//! cannot ask for a CA certificate, other names or a longer life.

use crate::TlsError;
use crate::devca::{Day, Generated};
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};

/// The longest certificate signing request accepted (a P-256 or RSA-4096 request is far
/// smaller).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How long a client certificate lives: a year, then the device enrolls again.
const CLIENT_YEARS: i32 = 1;

fn generate_err(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// A new key pair (ECDSA P-256) and a signing request for it, made on the device; the key
/// stays there.
pub struct NewRequest {
    pub csr_pem: String,
    pub key_pem: String,
}

/// Makes a key and a signing request naming `label` (informational: the CA sets the name).
pub fn new_request(label: &str) -> Result<NewRequest, TlsError> {
    let key = KeyPair::generate().map_err(generate_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, label);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).map_err(generate_err)?;
    Ok(NewRequest {
        csr_pem: csr.pem().map_err(generate_err)?,
        key_pem: key.serialize_pem(),
    })
}

/// A signing request whose signature verified: proof that the sender holds the key.
pub struct CheckedRequest {
    request: CertificateSigningRequestParams,
    key_sha256: [u8; 32],
}

/// Parses a PEM signing request and checks its signature.
pub fn check_request(csr_pem: &str) -> Result<CheckedRequest, TlsError> {
    if csr_pem.len() > MAX_REQUEST_BYTES {
        return Err(TlsError::Request(format!(
            "longer than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    let request = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| TlsError::Request(e.to_string()))?;
    let key_sha256 = Sha256::digest(rcgen::PublicKeyData::der_bytes(&request.public_key)).into();
    Ok(CheckedRequest {
        request,
        key_sha256,
    })
}

impl CheckedRequest {
    /// Eight digits from the public key's hash, shown on the device and on the admin's screen:
    /// the admin approves only when both show the same code, so a request someone else sent
    /// under the same label is not approved by mistake.
    pub fn comparison_code(&self) -> String {
        comparison_code(&self.key_sha256)
    }

    /// The SHA-256 of the request's public key.
    pub fn key_sha256(&self) -> [u8; 32] {
        self.key_sha256
    }
}

/// `NNNN-NNNN` from the first bytes of a key hash (10^8 codes: a forged request matches one by
/// chance once in a hundred million).
pub fn comparison_code(key_sha256: &[u8; 32]) -> String {
    let mut first = [0u8; 8];
    first.copy_from_slice(&key_sha256[..8]);
    let n = u64::from_be_bytes(first) % 100_000_000;
    format!("{:04}-{:04}", n / 10_000, n % 10_000)
}

/// Whom a client certificate names: the common name (a tablet's label, an organisation's
/// code) and the organisation (the bureau's code for a tablet).
#[derive(Debug, Clone)]
pub struct ClientSubject {
    pub common_name: String,
    pub organization: String,
}

fn client_params(subject: &ClientSubject, today: Day) -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(generate_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject.common_name.as_str());
    dn.push(DnType::OrganizationName, subject.organization.as_str());
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    // A random serial: two certificates for one key differ, as RFC 5280 wants of an issuer.
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| TlsError::Generate("no randomness".into()))?;
    serial[0] &= 0x7f;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    // From today's UTC midnight (the caller passes the UTC date, so it is already past).
    let (y, m, d) = today;
    p.not_before = rcgen::date_time_ymd(y, m, d);
    p.not_after = rcgen::date_time_ymd(y + CLIENT_YEARS, m, d.min(28));
    Ok(p)
}

fn issuer<'a>(ca_cert_pem: &str, ca_key_pem: &str) -> Result<Issuer<'a, KeyPair>, TlsError> {
    let key = KeyPair::from_pem(ca_key_pem).map_err(generate_err)?;
    Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(generate_err)
}

/// Issues a client certificate (PEM) for a checked request, from the CA `ca_cert_pem` /
/// `ca_key_pem`. Only the request's public key is used.
pub fn issue_for_request(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    mut request: CheckedRequest,
    subject: &ClientSubject,
    today: Day,
) -> Result<String, TlsError> {
    let issuer = issuer(ca_cert_pem, ca_key_pem)?;
    request.request.params = client_params(subject, today)?;
    let cert = request.request.signed_by(&issuer).map_err(generate_err)?;
    Ok(cert.pem())
}

/// Issues a client certificate with a new key, for an identity the CA operator hands over
/// (the provider issuing a bureau's, the demo).
pub fn issue_with_key(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    subject: &ClientSubject,
    today: Day,
) -> Result<Generated, TlsError> {
    let issuer = issuer(ca_cert_pem, ca_key_pem)?;
    let key = KeyPair::generate().map_err(generate_err)?;
    let cert = client_params(subject, today)?
        .signed_by(&key, &issuer)
        .map_err(generate_err)?;
    Ok(Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The SHA-256 of a certificate's DER: how a relying party remembers one certificate.
pub fn certificate_sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// What a relying party reads of a client certificate, from one parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The subject's common name, if it has exactly one that is text.
    pub common_name: Option<String>,
    /// The validity, in Unix milliseconds.
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    /// SHA-256 of the subject's public key (SubjectPublicKeyInfo DER). Unlike the whole
    /// certificate's hash, the CA's signature does not enter it: an ECDSA signature can be
    /// rewritten into another valid encoding, giving the same certificate a new hash, and a
    /// key certified again keeps it. A denylist must use this.
    pub public_key_sha256: [u8; 32],
}

/// The facts of a certificate (DER); None if it does not parse.
pub fn certificate_facts(der: &[u8]) -> Option<CertificateFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut names = cert.subject().iter_common_name();
    let first = names
        .next()
        .and_then(|n| n.as_str().ok())
        .map(str::to_owned);
    let common_name = if names.next().is_some() { None } else { first };
    let v = cert.validity();
    Some(CertificateFacts {
        public_key_sha256: Sha256::digest(cert.public_key().raw).into(),
        common_name,
        not_before_ms: v.not_before.timestamp().checked_mul(1000)?,
        not_after_ms: v.not_after.timestamp().checked_mul(1000)?,
    })
}

/// The end of a certificate's validity (DER), in Unix milliseconds.
pub fn not_after_ms(der: &[u8]) -> Option<i64> {
    certificate_facts(der).map(|f| f.not_after_ms)
}

/// The subject's common name of a certificate (DER), if it has exactly one that is text.
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    certificate_facts(der)?.common_name
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::devca::new_ca;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    const TODAY: Day = (2026, 11, 26);

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_request_is_issued_as_a_client_leaf_with_the_cas_name_not_the_requesters() {
        let ca = new_ca(TODAY).unwrap();
        // A request that asks to be a CA, for a server name.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["ems.example".to_string()]).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let checked = check_request(&csr).unwrap();
        let code = checked.comparison_code();
        let subject = ClientSubject {
            common_name: "川崎1".into(),
            organization: "kawasaki-fd".into(),
        };
        let pem = issue_for_request(&ca.cert_pem, &ca.key_pem, checked, &subject, TODAY).unwrap();
        let der = der(&pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(!cert.is_ca(), "a request made itself a CA");
        assert!(cert.subject_alternative_name().unwrap().is_none());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(subject_common_name(&der).as_deref(), Some("川崎1"));
        let not_after = not_after_ms(&der).unwrap();
        assert_eq!(
            certificate_facts(&der).unwrap().not_before_ms,
            1_795_651_200_000,
            "2026-11-26 00:00 UTC"
        );
        // 2027-11-26 00:00 UTC: a year from the day of issue, not longer.
        assert_eq!(not_after, 1_827_187_200_000);
        assert!(cert.tbs_certificate.serial.bits() > 64, "a random serial");
        // The certificate carries the request's key: the code matches it.
        let spki = cert.public_key().subject_public_key.data.to_vec();
        let mut h = [0u8; 32];
        h.copy_from_slice(&Sha256::digest(&spki));
        assert_eq!(comparison_code(&h), code);
    }

    #[test]
    fn a_request_with_a_forged_signature_or_garbage_is_refused() {
        let ok = new_request("tablet").unwrap();
        assert!(check_request(&ok.csr_pem).is_ok());
        // Flip one byte inside the base64 body.
        let mut bad = ok.csr_pem.clone().into_bytes();
        let at = bad.len() / 2;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        assert!(check_request(&String::from_utf8(bad).unwrap()).is_err());
        assert!(check_request("not a request").is_err());
        assert!(check_request(&"A".repeat(MAX_REQUEST_BYTES + 1)).is_err());
    }

    #[test]
    fn codes_are_eight_digits() {
        assert_eq!(comparison_code(&[0; 32]), "0000-0000");
        let code = comparison_code(&[0xff; 32]);
        assert_eq!(code.len(), 9);
        assert!(code.chars().all(|c| c.is_ascii_digit() || c == '-'));
    }
}
