//! JPKI-shaped certificates: a test CA that issues user-authentication (利用者証明用) certificates,
//! and the validation the provider applies to a certificate read from a card.
//!
//! The certificate layout follows a production JPKI user-authentication certificate (issuer DN,
//! opaque subject CN, critical keyUsage digitalSignature, clientAuth EKU, critical JPKI policy,
//! key identifiers). The test CA marks itself `O=JPKI-TEST`, as J-LIS test cards do.
//!
//! Crypto backend: RustCrypto (`rsa`, `sha2`, `x509-cert`). The card emulator must sign a
//! caller-supplied DigestInfo with raw PKCS#1 v1.5 padding, which `rsa` exposes and aws-lc-rs
//! does not, so JPKI work uses RustCrypto throughout.

mod ca;
pub mod checkpoint;
mod validate;

pub use ca::{AUTH_POLICY_OID, CertShape, KeyPool, TestCa};
pub use validate::{CertError, TrustAnchor, ValidatedAuthCert, certificate_serial_hex};

pub use rsa::PrivateKey;

/// Parses a serial as an operator may type it (`01ab…`, `01:AB:…`, `0x01AB…`) into the form
/// `serial_hex` produces, so revocations and lookups match what validation reports.
pub fn parse_serial(input: &str) -> Result<String, CertError> {
    let bad = || CertError::Malformed(format!("certificate serial {input:?} is not hexadecimal"));
    let digits: String = input
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if digits.is_empty() || digits.len() > 40 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    let bytes = hex::decode(padded).map_err(|_| bad())?;
    Ok(serial_hex(&bytes))
}

/// Hex of a serial number's magnitude, upper case, without leading zero bytes.
pub fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    hex::encode_upper(bytes.get(start..).unwrap_or_default())
}
