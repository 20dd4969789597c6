//! 傷病者 (patient) of an incident, named by the card the crew read: a keyed hash of the card's
//! authentication-certificate serial. `ems` never stores the serial itself; the key is the
//! bureau's own secret, so the pseudonym means nothing outside that bureau.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The bureau's secret for patient pseudonyms (32 random bytes). Its `Debug` hides the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct PatientSecret([u8; 32]);

impl PatientSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// From stored bytes; `None` unless exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The patient a certificate serial (hex, any case) stands for.
    pub fn patient(&self, serial_hex: &str) -> PatientKey {
        // HMAC accepts keys of any length, so this cannot fail; the fallback keeps it total.
        let digest = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) {
            Ok(mut mac) => {
                mac.update(b"myna-kyukyu/patient/v1\0");
                mac.update(serial_hex.trim().to_ascii_uppercase().as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        };
        PatientKey(hex::encode(digest))
    }
}

impl std::fmt::Debug for PatientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientSecret(…)")
    }
}

/// A patient's pseudonym: HMAC-SHA256 of the certificate serial under the bureau's
/// `PatientSecret`, 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PatientKey(String);

impl PatientKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short form for logs and screens that must not show the whole key.
    pub fn short(&self) -> &str {
        self.0.get(..8).unwrap_or(&self.0)
    }
}

impl TryFrom<String> for PatientKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s))
        } else {
            Err("a patient key is 64 lowercase hex digits".into())
        }
    }
}

impl From<PatientKey> for String {
    fn from(k: PatientKey) -> String {
        k.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_same_serial_gives_the_same_patient_and_another_bureau_another_one() {
        let a = PatientSecret::from_bytes([7; 32]);
        let b = PatientSecret::from_bytes([8; 32]);
        assert_eq!(a.patient("01aa00000042"), a.patient("01AA00000042"));
        assert_ne!(a.patient("01AA00000042"), a.patient("01AA00000043"));
        assert_ne!(a.patient("01AA00000042"), b.patient("01AA00000042"));
        let k = a.patient("01AA00000042");
        assert!(!k.as_str().contains("01AA00000042"));
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<PatientKey>(&json).unwrap(), k);
        assert!(serde_json::from_str::<PatientKey>("\"01AA00000042\"").is_err());
        assert_eq!(format!("{a:?}"), "PatientSecret(…)");
    }
}
