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
mod validate;

pub use ca::{AUTH_POLICY_OID, KeyPool, TestCa};
pub use validate::{CertError, TrustAnchor, ValidatedAuthCert};

pub use rsa::PrivateKey;

/// Hex of a serial number's magnitude, upper case, without leading zero bytes.
pub fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    hex::encode_upper(bytes.get(start..).unwrap_or_default())
}
