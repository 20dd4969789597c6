//! A ready-made card for tests of the emulator and its hosts: a fresh test CA, an auth
//! certificate, the keys behind it and a synthetic holder.

use crate::card::Card;
use crate::profile::{CardProfile, FaceKeys, Holder, JpkiProfile, ProfileError, Token};
use chrono::NaiveDate;
use myna_pki::{KeyPool, TestCa};
use zeroize::Zeroizing;

pub struct TestCard {
    pub profile: CardProfile,
    pub auth_cert: Vec<u8>,
    pub ca_cert: Vec<u8>,
    pub keys: KeyPool,
}

impl TestCard {
    pub fn card(&self) -> Result<Card, ProfileError> {
        Card::new(&self.profile)
    }
}

/// Auth PIN `1234`, signing password `ABC123`, text PIN `5678`, token `JPKIAPICCTOKEN2`;
/// the holder was born 1980-02-17 (昭和55) and the card expires in 2035 with security code
/// 2285, so 照合番号B is `55021720352285`.
pub fn test_card(serial: &str) -> Result<TestCard, myna_pki::CertError> {
    let now = chrono::Utc::now();
    let ca = TestCa::generate(now)?;
    let keys = KeyPool::generate(2)?;
    let auth_cert = ca.issue_auth_cert(
        serial,
        &keys.key(0).to_public_key(),
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(100),
    )?;
    let jpki = JpkiProfile {
        auth_cert: auth_cert.clone(),
        auth_ca: ca.cert_der().to_vec(),
        sign_cert: b"signing certificate stand-in".to_vec(),
        sign_ca: ca.cert_der().to_vec(),
        auth_key: keys.key(0).clone(),
        sign_key: keys.key(1).clone(),
        auth_pin: Zeroizing::new(b"1234".to_vec()),
        sign_password: Zeroizing::new(b"ABC123".to_vec()),
        token: Token::MyNumberCard,
    };
    let holder = Holder {
        my_number: "123456789018".into(),
        name: "川崎\u{3000}花子".into(),
        address: "神奈川県川崎市川崎区宮本町１番地".into(),
        birth_date: NaiveDate::from_ymd_opt(1980, 2, 17).unwrap_or_default(),
        sex: b'2',
        card_expiry: NaiveDate::from_ymd_opt(2035, 2, 17).unwrap_or_default(),
        security_code: "2285".into(),
        text_pin: Zeroizing::new(b"5678".to_vec()),
        municipality_code: "14131".into(),
    };
    let face = FaceKeys {
        card: keys.key(1).clone(),
        issuer: keys.key(0).clone(),
        cvc_ca: keys.key(1).clone(),
    };
    Ok(TestCard {
        profile: CardProfile {
            jpki,
            holder,
            keys: face,
        },
        auth_cert,
        ca_cert: ca.cert_der().to_vec(),
        keys,
    })
}
