//! Reading the card: the JPKI auth certificate with no PIN, and the PIN retry counters.

use crate::failure::ReadFailure;
use crate::metered::Metered;
use myna_card::ap::jpki::JpkiAp;
use myna_card::ap::text::TextAp;
use myna_card::{Card, Command, Error, Retries, ShortEfId, Transmit};
use serde::Serialize;
use std::time::Instant;

/// 公的個人認証AP (JPKI-AP).
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
const TOKEN_INFO: u16 = 0x0006;
const AUTH_CERT: u16 = 0x000A;
/// The token label of a physical My Number card.
pub const CARD_TOKEN: &str = "JPKIAPICCTOKEN2";

/// One step of a read, with its cost.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub apdus: u32,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    pub micros: u64,
}

/// The result of reading the auth certificate.
#[derive(Debug, Clone, Serialize)]
pub struct AuthCertRead {
    #[serde(skip)]
    pub der: Vec<u8>,
    pub token: String,
    /// Whether the certificate came in one extended READ BINARY (else in 256-byte chunks).
    pub extended: bool,
    pub steps: Vec<Step>,
}

impl AuthCertRead {
    pub fn apdus(&self) -> u32 {
        self.steps.iter().map(|s| s.apdus).sum()
    }
    pub fn bytes(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.bytes_sent + s.bytes_received)
            .sum()
    }
    pub fn micros(&self) -> u64 {
        self.steps.iter().map(|s| s.micros).sum()
    }
}

struct StepClock {
    start: Instant,
    apdus: u32,
    sent: usize,
    received: usize,
}

impl StepClock {
    fn start<T: Transmit>(card: &Card<Metered<T>>) -> Self {
        let m = card.transport();
        StepClock {
            start: Instant::now(),
            apdus: m.apdus,
            sent: m.sent,
            received: m.received,
        }
    }
    fn stop<T: Transmit>(self, card: &Card<Metered<T>>, name: &'static str) -> Step {
        let m = card.transport();
        Step {
            name,
            apdus: m.apdus - self.apdus,
            bytes_sent: m.sent - self.sent,
            bytes_received: m.received - self.received,
            micros: u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }
}

fn sfi(id: u16) -> Result<ShortEfId, ReadFailure> {
    ShortEfId::from_ef_id(id).map_err(|e| ReadFailure::from_card_error(&e))
}

/// The total length of a DER object from its first bytes, if the header is complete.
pub fn der_total_len(head: &[u8]) -> Option<usize> {
    match head {
        [_, n, ..] if *n < 0x80 => Some(2 + usize::from(*n)),
        [_, 0x81, n, ..] => Some(3 + usize::from(*n)),
        [_, 0x82, hi, lo, ..] => Some(4 + (usize::from(*hi) << 8 | usize::from(*lo))),
        _ => None,
    }
}

/// Selects the JPKI application: the card is identified by this AID, not by its ATR.
pub(crate) fn select_jpki<T: Transmit>(card: &mut Card<T>) -> Result<(), ReadFailure> {
    let select = Command::with_data(0x00, 0xA4, 0x04, 0x0C, JPKI_AID.to_vec());
    let response = card
        .call(&select)
        .map_err(|e| ReadFailure::from_card_error(&e))?;
    match response.status.value() {
        0x9000 => Ok(()),
        // Deactivated (ISO 7816-4 §5.1.3) or locked application.
        0x6283 | 0x6A81 => Err(ReadFailure::Blocked),
        _ => Err(ReadFailure::NotMynaCard),
    }
}

/// Reads the user-authentication certificate with no PIN, as the real programme does:
/// SELECT the JPKI application, read the token label (a smartphone token is refused), then
/// read EF `000A` by its short id — in one extended READ BINARY when the reader and card
/// take it, else in 256-byte chunks. 3 APDUs, or 3 + ⌈(len − 256) / 256⌉ in chunks.
pub fn read_auth_certificate<T: Transmit>(transport: &mut T) -> Result<AuthCertRead, ReadFailure> {
    let mut card = Card::new(Metered::new(transport));
    let mut steps = Vec::new();
    let fail = |e: Error| ReadFailure::from_card_error(&e);

    let clock = StepClock::start(&card);
    select_jpki(&mut card)?;
    steps.push(clock.stop(&card, "select_jpki"));

    let clock = StepClock::start(&card);
    let raw = card
        .read_binary_chunk_sfi(sfi(TOKEN_INFO)?, 0, 32)
        .map_err(fail)?;
    let token = String::from_utf8_lossy(&raw)
        .trim_end_matches([' ', '\0'])
        .to_owned();
    steps.push(clock.stop(&card, "token_info"));
    match token.as_str() {
        CARD_TOKEN => {}
        "JPKIAPGPSETOKEN" | "JPKIAPIOSTOKEN" => {
            return Err(ReadFailure::SmartphoneToken { label: token });
        }
        _ => return Err(ReadFailure::NotMynaCard),
    }

    let clock = StepClock::start(&card);
    let cert_sfi = sfi(AUTH_CERT)?;
    let (der, extended) = match card.read_binary_chunk_sfi(cert_sfi, 0, 65_536) {
        Ok(whole) if der_total_len(&whole).is_some_and(|n| n <= whole.len()) => {
            let n = der_total_len(&whole).unwrap_or(whole.len());
            (whole.get(..n).unwrap_or_default().to_vec(), true)
        }
        // Wrong length, or a reader that cannot carry extended APDUs: read in short chunks.
        Ok(_) | Err(Error::Status(_)) | Err(Error::Pcsc(::pcsc::Error::InsufficientBuffer)) => {
            let mut der = card.read_binary_chunk_sfi(cert_sfi, 0, 256).map_err(fail)?;
            let total = der_total_len(&der).ok_or_else(|| ReadFailure::Unexpected {
                detail: "EF 000A does not start with a DER header".into(),
            })?;
            if total > der.len() {
                let rest = card
                    .read_binary(der.len(), total - der.len())
                    .map_err(fail)?;
                der.extend(rest);
            }
            der.truncate(total);
            (der, false)
        }
        Err(e) => return Err(fail(e)),
    };
    steps.push(clock.stop(&card, "auth_certificate"));
    if der_total_len(&der) != Some(der.len()) {
        return Err(ReadFailure::Unexpected {
            detail: "EF 000A ended before the certificate it announces".into(),
        });
    }
    Ok(AuthCertRead {
        der,
        token,
        extended,
        steps,
    })
}

/// Remaining tries of a PIN, as the card reports them to an empty VERIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "left", rename_all = "snake_case")]
pub enum Tries {
    Remaining(u8),
    Blocked,
    Unlimited,
    NotReported,
}

impl From<Retries> for Tries {
    fn from(r: Retries) -> Self {
        match r {
            Retries::Remaining(n) => Tries::Remaining(n),
            Retries::Blocked => Tries::Blocked,
            Retries::Unlimited => Tries::Unlimited,
            Retries::NotReported => Tries::NotReported,
        }
    }
}

/// The retry counters a crew or help desk may need, read without spending a try.
#[derive(Debug, Clone, Serialize)]
pub struct PinStatus {
    /// 利用者証明用暗証番号 (3 tries).
    pub auth_pin: Tries,
    /// 署名用パスワード (5 tries).
    pub sign_password: Tries,
    /// 券面事項入力補助用暗証番号 (3 tries).
    pub text_pin: Tries,
}

/// Reads the retry counters with empty VERIFY commands, which never spend a try.
pub fn pin_status<T: Transmit>(transport: &mut T) -> Result<PinStatus, ReadFailure> {
    let mut card = Card::new(transport);
    let fail = |e: Error| ReadFailure::from_card_error(&e);
    select_jpki(&mut card)?;
    let mut jpki = JpkiAp::select(&mut card).map_err(fail)?;
    let auth_pin = jpki.auth_pin_retries().map_err(fail)?.into();
    let sign_password = jpki.sign_pin_retries().map_err(fail)?.into();
    let mut text = TextAp::select(&mut card).map_err(fail)?;
    let text_pin = text.retries(0x0011).map_err(fail)?.into();
    Ok(PinStatus {
        auth_pin,
        sign_password,
        text_pin,
    })
}
