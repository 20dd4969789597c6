//! A card profile for tests: a fresh test CA, an auth certificate and the keys behind it.

#![allow(clippy::unwrap_used, dead_code)]

use myna_card_emu::card::JpkiProfile;
use myna_pki::{KeyPool, TestCa};
use zeroize::Zeroizing;

pub struct TestCard {
    pub profile: JpkiProfile,
    pub auth_cert: Vec<u8>,
    pub keys: KeyPool,
}

/// PIN `1234`, signing password `ABC123`, token `JPKIAPICCTOKEN2`.
pub fn test_card(serial: &str) -> TestCard {
    let now = chrono::Utc::now();
    let ca = TestCa::generate(now).unwrap();
    let keys = KeyPool::generate(2).unwrap();
    let auth_cert = ca
        .issue_auth_cert(
            serial,
            &keys.key(0).to_public_key(),
            now - chrono::Duration::days(1),
            now + chrono::Duration::days(100),
        )
        .unwrap();
    let profile = JpkiProfile {
        auth_cert: auth_cert.clone(),
        auth_ca: ca.cert_der().to_vec(),
        sign_cert: b"signing certificate stand-in".to_vec(),
        sign_ca: ca.cert_der().to_vec(),
        auth_key: keys.key(0).clone(),
        sign_key: keys.key(1).clone(),
        auth_pin: Zeroizing::new(b"1234".to_vec()),
        sign_password: Zeroizing::new(b"ABC123".to_vec()),
        token_label: "JPKIAPICCTOKEN2".into(),
    };
    TestCard {
        profile,
        auth_cert,
        keys,
    }
}
