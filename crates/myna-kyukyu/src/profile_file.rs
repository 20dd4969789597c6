//! Card profile files: everything one emulated card holds, in one JSON file that
//! `card emulate --profile` loads. The keys are test keys of the project's test CA and key
//! pool, so the file is written owner-only.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use myna_card_emu::profile::{
    CardProfile, FaceKeys, Holder, JpkiProfile, Token, my_number_check_digit,
};
use myna_pki::KeyPool;
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub id: String,
    pub token: String,
    pub auth_cert_b64: String,
    pub auth_ca_b64: String,
    pub sign_cert_b64: String,
    pub sign_ca_b64: String,
    /// PKCS#8 DER, base64: auth key, sign key, card key, 券面 issuer key, CVC authority key.
    pub keys_pkcs8_b64: [String; 5],
    pub auth_pin: String,
    pub sign_password: String,
    pub holder: HolderFile,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderFile {
    pub my_number: String,
    pub name: String,
    pub address: String,
    pub birth_date: NaiveDate,
    pub sex: u8,
    pub card_expiry: NaiveDate,
    pub security_code: String,
    pub text_pin: String,
    pub municipality_code: String,
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>> {
    B64.decode(s)
        .with_context(|| format!("{what} is not base64"))
}

impl ProfileFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading card profile {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        crate::secret_file::write(path, serde_json::to_string_pretty(self)?.as_bytes())
    }

    pub fn to_profile(&self) -> Result<CardProfile> {
        let Some(token) = Token::parse(&self.token) else {
            bail!("unknown token label {:?}", self.token);
        };
        let ders = self
            .keys_pkcs8_b64
            .iter()
            .map(|k| b64(k, "a key"))
            .collect::<Result<Vec<_>>>()?;
        let pool = KeyPool::from_pkcs8(&ders)?;
        let h = &self.holder;
        let sex = match h.sex {
            0 => b'0',
            1 => b'1',
            2 => b'2',
            9 => b'9',
            other => bail!("sex code {other} is not one of 0, 1, 2, 9"),
        };
        Ok(CardProfile {
            jpki: JpkiProfile {
                auth_cert: b64(&self.auth_cert_b64, "auth_cert_b64")?,
                auth_ca: b64(&self.auth_ca_b64, "auth_ca_b64")?,
                sign_cert: b64(&self.sign_cert_b64, "sign_cert_b64")?,
                sign_ca: b64(&self.sign_ca_b64, "sign_ca_b64")?,
                auth_key: pool.key(0).clone(),
                sign_key: pool.key(1).clone(),
                auth_pin: Zeroizing::new(self.auth_pin.as_bytes().to_vec()),
                sign_password: Zeroizing::new(self.sign_password.as_bytes().to_vec()),
                token,
            },
            holder: Holder {
                my_number: h.my_number.clone(),
                name: h.name.clone(),
                address: h.address.clone(),
                birth_date: h.birth_date,
                sex,
                card_expiry: h.card_expiry,
                security_code: h.security_code.clone(),
                text_pin: Zeroizing::new(h.text_pin.as_bytes().to_vec()),
                municipality_code: h.municipality_code.clone(),
            },
            keys: FaceKeys {
                card: pool.key(2).clone(),
                issuer: pool.key(3).clone(),
                cvc_ca: pool.key(4).clone(),
            },
        })
    }
}

/// A synthetic 個人番号 for the person with this index: `99` and 9 digits of the index, plus
/// the check digit. It is valid in form only; nothing ties it to a real person.
pub fn synthetic_my_number(index: u64) -> String {
    let base = format!("{:011}", 99_000_000_000u64 + index % 1_000_000_000);
    let mut first11 = [0u8; 11];
    for (d, s) in first11.iter_mut().zip(base.bytes()) {
        *d = s;
    }
    format!("{base}{}", my_number_check_digit(&first11))
}

/// 全国地方公共団体コード (without the check digit) of Kawasaki's wards.
pub fn municipality_code(municipality: &str) -> &'static str {
    const WARDS: [(&str, &str); 7] = [
        ("川崎区", "14131"),
        ("幸区", "14132"),
        ("中原区", "14133"),
        ("高津区", "14134"),
        ("多摩区", "14135"),
        ("宮前区", "14136"),
        ("麻生区", "14137"),
    ];
    WARDS
        .iter()
        .find(|(ward, _)| municipality.ends_with(ward))
        .map_or("14130", |(_, code)| code)
}

pub fn encode(der: &[u8]) -> String {
    B64.encode(der)
}
