//! Card profiles: what one emulated card holds, and how it is laid out in the card's
//! applications (reference §2 and §7).

use crate::card::{
    App, Body, Card, Ef, JPKI_AID, JUKI_AID, JUKI_COMMON_AID, SURFACE_AID, TEXT_AID,
};
use crate::era;
use crate::tlv::{TlvWriter, tlv};
use chrono::{Datelike, NaiveDate};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, PrivateKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// EF identifiers of the JPKI application (reference §2.1). Each is also its short EF id.
pub mod jpki_ef {
    pub const SIGN_CERT: u16 = 0x0001;
    pub const SIGN_CA: u16 = 0x0002;
    pub const TOKEN_INFO: u16 = 0x0006;
    pub const CERT_AVAILABILITY: u16 = 0x0008;
    pub const AUTH_CERT: u16 = 0x000A;
    pub const AUTH_CA: u16 = 0x000B;
    pub const AUTH_KEY: u16 = 0x0017;
    pub const AUTH_PIN: u16 = 0x0018;
    pub const SIGN_KEY: u16 = 0x001A;
    pub const SIGN_PASSWORD: u16 = 0x001B;
}

/// EF identifiers of the 券面事項入力補助AP (reference §2.2).
pub mod text_ef {
    pub const MY_NUMBER: u16 = 0x0001;
    pub const ATTRIBUTES: u16 = 0x0002;
    pub const INTEGRITY: u16 = 0x0003;
    pub const CVC: u16 = 0x0004;
    pub const BASIC_INFO: u16 = 0x0005;
    pub const PIN: u16 = 0x0011;
    pub const OWN_KEY: u16 = 0x0013;
    pub const CODE_A: u16 = 0x0014;
    pub const CODE_B: u16 = 0x0015;
}

/// EF identifiers of the 券面事項確認AP (reference §2.3).
pub mod surface_ef {
    pub const AGE: u16 = 0x0001;
    pub const FACE: u16 = 0x0002;
    pub const BASIC_INFO: u16 = 0x0003;
    pub const CVC: u16 = 0x0004;
    pub const MY_NUMBER_IMAGE: u16 = 0x0005;
    pub const BIRTH_KEY: u16 = 0x0011;
    pub const CODE_B: u16 = 0x0012;
    pub const CODE_A: u16 = 0x0013;
    pub const OWN_KEY: u16 = 0x001A;
}

/// The PIN EF of both 住基-related applications.
pub const JUKI_PIN: u16 = 0x001C;

/// Tries before a 4-digit PIN locks (reference §3).
const PIN_TRIES: u8 = 3;
const SIGN_PASSWORD_TRIES: u8 = 5;
/// Reported, not confirmed, for 照合番号A/B and the 生年月日 key (reference §3, §13).
const CODE_TRIES: u8 = 10;

/// The token label the JPKI application reports in EF `0006` (reference §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// A My Number card: `JPKIAPICCTOKEN2`.
    MyNumberCard,
    /// An old 住基カード: `JPKIAPICCTOKEN`.
    JukiCard,
    /// スマホ用電子証明書 on Android's secure element: `JPKIAPGPSETOKEN`. Its auth certificate
    /// needs the PIN (reference §2.1).
    AndroidSe,
    /// スマホ用電子証明書 on an iPhone: `JPKIAPIOSTOKEN`.
    Iphone,
}

impl Token {
    pub fn label(self) -> &'static str {
        match self {
            Token::MyNumberCard => "JPKIAPICCTOKEN2",
            Token::JukiCard => "JPKIAPICCTOKEN",
            Token::AndroidSe => "JPKIAPGPSETOKEN",
            Token::Iphone => "JPKIAPIOSTOKEN",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            Token::MyNumberCard,
            Token::JukiCard,
            Token::AndroidSe,
            Token::Iphone,
        ]
        .into_iter()
        .find(|t| t.label() == s)
    }
}

/// The JPKI application's contents: certificates, keys and secrets.
#[derive(Clone)]
pub struct JpkiProfile {
    pub auth_cert: Vec<u8>,
    pub auth_ca: Vec<u8>,
    pub sign_cert: Vec<u8>,
    pub sign_ca: Vec<u8>,
    pub auth_key: PrivateKey,
    pub sign_key: PrivateKey,
    /// 利用者証明用暗証番号: 4 ASCII digits.
    pub auth_pin: Zeroizing<Vec<u8>>,
    /// 署名用パスワード: 6–16 upper-case letters and digits.
    pub sign_password: Zeroizing<Vec<u8>>,
    pub token: Token,
}

/// The card holder as printed on the card face: the 券面事項 both 券面 applications carry.
#[derive(Clone)]
pub struct Holder {
    /// 個人番号: 12 digits, the last a check digit.
    pub my_number: String,
    /// 氏名, family and given name separated by U+3000.
    pub name: String,
    /// 住所.
    pub address: String,
    /// 生年月日 (Gregorian).
    pub birth_date: NaiveDate,
    /// 性別, JIS X 0303: `1` male, `2` female, `9` not applicable, `0` unknown.
    pub sex: u8,
    /// 有効期限 of the card.
    pub card_expiry: NaiveDate,
    /// セキュリティコード printed on the face: 4 digits.
    pub security_code: String,
    /// 券面事項入力補助用暗証番号 (also used for the 住基 PIN here): 4 digits.
    pub text_pin: Zeroizing<Vec<u8>>,
    /// 全国地方公共団体コード of the issuing municipality (5 digits).
    pub municipality_code: String,
}

impl Holder {
    /// 照合番号B: the birth date in the Japanese era (YYMMDD), the card's expiry year and the
    /// security code — 14 digits (reference §3).
    pub fn code_b(&self) -> Result<String, ProfileError> {
        let birth = era::wareki_yymmdd(self.birth_date).ok_or(ProfileError::BeforeMeiji)?;
        Ok(format!(
            "{birth}{:04}{}",
            self.card_expiry.year(),
            self.security_code
        ))
    }
}

/// The keys behind the 券面 applications' records.
#[derive(Clone)]
pub struct FaceKeys {
    /// The card's own key (DF24 / DF12 / DF42 carry its public half).
    pub card: PrivateKey,
    /// The issuer-side key that signs the records; certified by the CVC in EF `0004`.
    pub issuer: PrivateKey,
    /// The test CVC authority that certifies `issuer`.
    pub cvc_ca: PrivateKey,
}

/// Everything one emulated card holds.
#[derive(Clone)]
pub struct CardProfile {
    pub jpki: JpkiProfile,
    pub holder: Holder,
    pub keys: FaceKeys,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("個人番号 must be 12 digits with a valid check digit")]
    MyNumber,
    #[error("birth date before the Meiji era has no 和暦 form")]
    BeforeMeiji,
    #[error("security code must be 4 digits")]
    SecurityCode,
    #[error("PIN must be 4 digits")]
    Pin,
    #[error("sex must be one of 0, 1, 2, 9")]
    Sex,
    #[error("signing a record failed: {0}")]
    Sign(String),
    #[error("a record is longer than a transparent EF allows")]
    TooLong,
}

/// The check digit of a 個人番号 over its first 11 digits (番号法施行令 第8条).
pub fn my_number_check_digit(first11: &[u8; 11]) -> u8 {
    let sum: u32 = (1..=11u32)
        .map(|n| {
            let p = u32::from(first11[11 - n as usize] - b'0');
            let q = if n <= 6 { n + 1 } else { n - 5 };
            p * q
        })
        .sum();
    let r = sum % 11;
    if r <= 1 { 0 } else { (11 - r) as u8 }
}

fn valid_my_number(s: &str) -> bool {
    let b = s.as_bytes();
    let Ok(first11) = <[u8; 11]>::try_from(b.get(..11).unwrap_or_default()) else {
        return false;
    };
    b.len() == 12
        && b.iter().all(u8::is_ascii_digit)
        && b.get(11)
            .is_some_and(|c| c - b'0' == my_number_check_digit(&first11))
}

fn digits(s: &[u8], n: usize) -> bool {
    s.len() == n && s.iter().all(u8::is_ascii_digit)
}

const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// A DER DigestInfo for SHA-256 around `digest` (any length, as the card face uses 96 bytes).
pub fn sha256_digest_info(digest: &[u8]) -> Vec<u8> {
    let mut alg = SHA256_DIGEST_INFO_PREFIX[2..17].to_vec();
    alg.push(0x04);
    alg.extend(der_len(digest.len()));
    alg.extend_from_slice(digest);
    let mut out = vec![0x30];
    out.extend(der_len(alg.len()));
    out.extend(alg);
    out
}

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..0x80 => vec![n as u8],
        0x80..0x100 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn sign_digest_info(key: &PrivateKey, digest_info: &[u8]) -> Result<Vec<u8>, ProfileError> {
    key.sign(Pkcs1v15Sign::new_unprefixed(), digest_info)
        .map_err(|e| ProfileError::Sign(e.to_string()))
}

/// PKCS#1 v1.5 with SHA-256 over `message`.
fn sign_sha256(key: &PrivateKey, message: &[u8]) -> Result<Vec<u8>, ProfileError> {
    sign_digest_info(key, &sha256_digest_info(&Sha256::digest(message)))
}

/// An RSA public key in the card's `90` (exponent) / `91` (modulus) encoding.
pub fn card_public_key(key: &PrivateKey) -> Vec<u8> {
    let public = key.to_public_key();
    let mut out = tlv(0x90, &public.e().to_be_bytes_trimmed_vartime());
    out.extend(tlv(0x91, &public.n().to_be_bytes_trimmed_vartime()));
    out
}

/// A 16-byte key identifier: 7 ASCII digits, 2 bytes, 3 ASCII digits and 4 padding bytes.
fn key_id(number: &str, group: &str) -> Vec<u8> {
    let mut id = number.as_bytes().to_vec();
    id.extend_from_slice(&[0x00, 0x01]);
    id.extend_from_slice(group.as_bytes());
    id.extend_from_slice(&[0x00; 4]);
    id
}

/// Test CVC key ids start with 6 (reference §7.4); production ones with 5.
const CVC_CA_KEY_ID: &str = "6000033";
const CVC_GROUP: &str = "001";

/// A card-verifiable certificate (`7F21`) certifying `subject` under `ca`.
fn cvc(ca: &PrivateKey, subject: &PrivateKey, subject_id: &str) -> Result<Vec<u8>, ProfileError> {
    let mut body = key_id(CVC_CA_KEY_ID, CVC_GROUP);
    body.extend(key_id(subject_id, CVC_GROUP));
    body.extend(card_public_key(subject));
    let signature = sign_sha256(ca, &body)?;
    let mut inner = tlv(0x5F4E, &body);
    inner.extend(tlv(0x5F37, &signature));
    Ok(tlv(0x7F21, &inner))
}

/// A blank 1-bit greyscale PNG of the given size. The real card renders the printed text here;
/// the emulator has no font, so these are stand-ins of the right format and size.
fn blank_png(width: u32, height: u32) -> Result<Vec<u8>, ProfileError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder
        .write_header()
        .map_err(|e| ProfileError::Sign(e.to_string()))?;
    let row = (width as usize).div_ceil(8);
    writer
        .write_image_data(&vec![0xFF; row * height as usize])
        .map_err(|e| ProfileError::Sign(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| ProfileError::Sign(e.to_string()))?;
    Ok(out)
}

/// The JP2 signature and file-type boxes only: the format marker of the 顔写真 without a
/// codestream. No JPEG 2000 encoder is in the build, so the photograph is a stand-in.
fn photo_stand_in() -> Vec<u8> {
    let mut jp2 = vec![
        0x00, 0x00, 0x00, 0x0C, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A,
    ];
    jp2.extend_from_slice(&[0x00, 0x00, 0x00, 0x14, b'f', b't', b'y', b'p']);
    jp2.extend_from_slice(b"jp2 \x00\x00\x00\x00jp2 ");
    jp2
}

/// The JPKI token information EF: a 160-byte `CK_TOKEN_INFO` whose first 32 bytes are the
/// space-padded label (reference §7.2).
fn token_info(label: &str) -> Vec<u8> {
    let mut v = vec![b' '; 32];
    for (d, s) in v.iter_mut().zip(label.bytes()) {
        *d = s;
    }
    v.resize(160, 0);
    v
}

/// Appends filler, as transparent EFs on the card are larger than the object they hold.
fn with_filler(mut object: Vec<u8>, filler: usize) -> Vec<u8> {
    object.extend(std::iter::repeat_n(0xFF, filler));
    object
}

impl JpkiProfile {
    fn app(&self) -> App {
        use jpki_ef::*;
        // A smartphone token on Android guards its auth certificate with the PIN (§2.1).
        let auth_cert_guard: &[u16] = if self.token == Token::AndroidSe {
            &[AUTH_PIN]
        } else {
            &[]
        };
        App {
            aid: JPKI_AID,
            own_key: None,
            deactivated: false,
            files: vec![
                Ef::guarded(
                    SIGN_CERT,
                    &[SIGN_PASSWORD],
                    Body::Binary(self.sign_cert.clone()),
                ),
                Ef::free(SIGN_CA, self.sign_ca.clone()),
                Ef::free(TOKEN_INFO, token_info(self.token.label())),
                Ef::free(CERT_AVAILABILITY, vec![0x8F, 0x8F, 0x00]),
                Ef::guarded(
                    AUTH_CERT,
                    auth_cert_guard,
                    Body::Binary(self.auth_cert.clone()),
                ),
                Ef::free(AUTH_CA, self.auth_ca.clone()),
                Ef::guarded(
                    AUTH_KEY,
                    &[AUTH_PIN],
                    Body::Key(Box::new(self.auth_key.clone())),
                ),
                Ef::guarded(AUTH_PIN, &[], Body::pin(&self.auth_pin, PIN_TRIES)),
                Ef::guarded(
                    SIGN_KEY,
                    &[SIGN_PASSWORD],
                    Body::Key(Box::new(self.sign_key.clone())),
                ),
                Ef::guarded(
                    SIGN_PASSWORD,
                    &[],
                    Body::pin(&self.sign_password, SIGN_PASSWORD_TRIES),
                ),
            ],
        }
    }
}

/// The offset table (`DF21`) of an `FF20` record: each field's offset from the file start.
fn with_offset_table(outer_tag: u16, fields: &[Vec<u8>]) -> Result<Vec<u8>, ProfileError> {
    let table_len = 2 * fields.len();
    let body_len = 2 + 1 + table_len + fields.iter().map(Vec::len).sum::<usize>();
    // The outer header's length depends on the body's, and the offsets on the header's.
    let header_len = 2 + der_len(body_len).len();
    let mut offsets = Vec::with_capacity(table_len);
    let mut at = header_len + 3 + table_len;
    for f in fields {
        let at16 = u16::try_from(at).map_err(|_| ProfileError::TooLong)?;
        offsets.extend_from_slice(&at16.to_be_bytes());
        at += f.len();
    }
    let mut body = tlv(0xDF21, &offsets);
    for f in fields {
        body.extend_from_slice(f);
    }
    Ok(tlv(outer_tag, &body))
}

impl CardProfile {
    fn validate(&self) -> Result<(), ProfileError> {
        let h = &self.holder;
        if !valid_my_number(&h.my_number) {
            return Err(ProfileError::MyNumber);
        }
        if !digits(h.security_code.as_bytes(), 4) {
            return Err(ProfileError::SecurityCode);
        }
        if !digits(&h.text_pin, 4) {
            return Err(ProfileError::Pin);
        }
        if !matches!(h.sex, b'0' | b'1' | b'2' | b'9') {
            return Err(ProfileError::Sex);
        }
        Ok(())
    }

    /// Lays the profile out in the card's applications.
    pub fn build(&self) -> Result<Card, ProfileError> {
        self.validate()?;
        Ok(Card::with_apps(vec![
            self.jpki.app(),
            self.text_app()?,
            self.surface_app()?,
            juki_app(JUKI_COMMON_AID, &self.holder.text_pin),
            juki_app(JUKI_AID, &self.holder.text_pin),
        ]))
    }

    fn birth_ascii(&self) -> String {
        self.holder.birth_date.format("%Y%m%d").to_string()
    }

    fn text_app(&self) -> Result<App, ProfileError> {
        use text_ef::*;
        let h = &self.holder;
        let k = &self.keys;
        let mut my_number = vec![0xFF, 0x10, 0x0C];
        my_number.extend_from_slice(h.my_number.as_bytes());
        let my_number = with_filler(my_number, 2);
        let attribute_fields = [
            tlv(0xDF22, h.name.as_bytes()),
            tlv(0xDF23, h.address.as_bytes()),
            tlv(0xDF24, self.birth_ascii().as_bytes()),
            tlv(0xDF25, &[h.sex]),
        ];
        let attributes = with_offset_table(0xFF20, &attribute_fields)?;
        // DF32 covers the outer value from DF22 on, i.e. the fields without the offset table.
        let attr_source = attribute_fields.concat();
        let mut w = TlvWriter::default();
        w.put(0xDF31, &Sha256::digest(&my_number));
        w.put(0xDF32, &Sha256::digest(&attr_source));
        let signature = sign_sha256(&k.issuer, w.bytes())?;
        w.put(0xDF33, &signature);
        let integrity = tlv(0xFF30, w.bytes());
        let issuer_id = subject_key_id(&h.my_number, '3');
        let mut info = TlvWriter::default();
        info.put(0xDF41, &[0x01, 0x03, 0x0E, 0x01]);
        info.put(0xDF42, &key_id(&issuer_id, CVC_GROUP));
        let mut df43 = Sha256::digest(h.my_number.as_bytes()).to_vec();
        df43.extend([0xFF; 96]);
        info.put(0xDF43, &df43);
        let pin_a_b: &[u16] = &[PIN, CODE_A, CODE_B];
        Ok(App {
            aid: TEXT_AID,
            own_key: Some(OWN_KEY),
            deactivated: false,
            files: vec![
                Ef::guarded(MY_NUMBER, &[PIN, CODE_A], Body::Binary(my_number)),
                Ef::guarded(
                    ATTRIBUTES,
                    &[PIN, CODE_B],
                    Body::Binary(with_filler(attributes, 16)),
                ),
                Ef::guarded(INTEGRITY, pin_a_b, Body::Binary(integrity)),
                Ef::free(CVC, cvc(&k.cvc_ca, &k.issuer, &issuer_id)?),
                Ef::free(BASIC_INFO, tlv(0xFF40, info.bytes())),
                Ef::guarded(PIN, &[], Body::pin(&h.text_pin, PIN_TRIES)),
                Ef::guarded(OWN_KEY, &[], Body::Key(Box::new(k.card.clone()))),
                Ef::guarded(CODE_A, &[], Body::pin(h.my_number.as_bytes(), CODE_TRIES)),
                Ef::guarded(CODE_B, &[], Body::pin(h.code_b()?.as_bytes(), CODE_TRIES)),
            ],
        })
    }

    fn surface_app(&self) -> Result<App, ProfileError> {
        use surface_ef::*;
        let h = &self.holder;
        let k = &self.keys;
        let card_key = card_public_key(&k.card);

        let mut age = TlvWriter::default();
        age.put(0xDF11, self.birth_ascii().as_bytes());
        age.put(0xDF12, &card_key);
        let signature = sign_sha256(&k.issuer, age.bytes())?;
        age.put(0xDF13, &signature);

        let g1 = [
            tlv(0xDF22, self.birth_ascii().as_bytes()),
            tlv(0xDF23, &[h.sex]),
            tlv(0xDF24, &card_key),
        ]
        .concat();
        let g2 = [
            tlv(0xDF25, &blank_png(256, 32)?),
            tlv(0xDF26, &blank_png(256, 48)?),
        ]
        .concat();
        let g3 = tlv(0xDF27, &photo_stand_in());
        let mut digests = Vec::with_capacity(96);
        for g in [&g1, &g2, &g3] {
            digests.extend_from_slice(&Sha256::digest(g));
        }
        let face_signature = sign_digest_info(&k.issuer, &sha256_digest_info(&digests))?;
        let face = with_offset_table(
            0xFF20,
            &[
                tlv(0xDF22, self.birth_ascii().as_bytes()),
                tlv(0xDF23, &[h.sex]),
                tlv(0xDF24, &card_key),
                tlv(0xDF25, &blank_png(256, 32)?),
                tlv(0xDF26, &blank_png(256, 48)?),
                g3,
                tlv(0xDF28, &face_signature),
                tlv(
                    0xDF29,
                    h.card_expiry.format("%Y%m%d").to_string().as_bytes(),
                ),
                tlv(0xDF2A, &blank_png(24, 12)?),
            ],
        )?;

        let mut image = TlvWriter::default();
        image.put(0xDF41, &blank_png(72, 12)?);
        image.put(0xDF42, &card_key);
        let signature = sign_sha256(&k.issuer, image.bytes())?;
        image.put(0xDF43, &signature);

        let issuer_id = subject_key_id(&h.my_number, '2');
        let mut info = TlvWriter::default();
        info.put(0xDF31, &[0x01, 0x03, 0x0E, 0x01]);
        info.put(0xDF32, &key_id(&issuer_id, CVC_GROUP));
        info.put(0xDF33, &[0x01]);
        info.put(0xDF34, h.municipality_code.as_bytes());
        let mut df35 = key_id(&issuer_id, CVC_GROUP);
        df35.extend([0xFF; 256]);
        info.put(0xDF35, &df35);

        let birth_key = era::wareki_yymmdd(h.birth_date).ok_or(ProfileError::BeforeMeiji)?;
        Ok(App {
            aid: SURFACE_AID,
            own_key: Some(OWN_KEY),
            deactivated: false,
            files: vec![
                Ef::guarded(AGE, &[BIRTH_KEY], Body::Binary(tlv(0xFF10, age.bytes()))),
                Ef::guarded(FACE, &[CODE_A, CODE_B], Body::Binary(face)),
                Ef::free(BASIC_INFO, tlv(0xFF30, info.bytes())),
                Ef::free(CVC, cvc(&k.cvc_ca, &k.issuer, &issuer_id)?),
                Ef::guarded(
                    MY_NUMBER_IMAGE,
                    &[CODE_A],
                    Body::Binary(tlv(0xFF40, image.bytes())),
                ),
                Ef::guarded(BIRTH_KEY, &[], Body::pin(birth_key.as_bytes(), CODE_TRIES)),
                Ef::guarded(CODE_B, &[], Body::pin(h.code_b()?.as_bytes(), CODE_TRIES)),
                Ef::guarded(CODE_A, &[], Body::pin(h.my_number.as_bytes(), CODE_TRIES)),
                Ef::guarded(OWN_KEY, &[], Body::Key(Box::new(k.card.clone()))),
            ],
        })
    }
}

/// A 7-digit key number for the issuer key of one card's 券面 application, under the test
/// authority's `6…` numbering; `kind` is `3` for the text AP and `2` for the surface AP.
fn subject_key_id(my_number: &str, kind: char) -> String {
    let tail = my_number.get(6..11).unwrap_or("00000");
    format!("6{kind}{tail}")
}

fn juki_app(aid: [u8; 10], pin: &[u8]) -> App {
    App {
        aid,
        own_key: None,
        deactivated: false,
        files: vec![Ef::guarded(JUKI_PIN, &[], Body::pin(pin, PIN_TRIES))],
    }
}

impl Card {
    /// A card laid out from a profile.
    pub fn new(profile: &CardProfile) -> Result<Self, ProfileError> {
        profile.build()
    }
}
