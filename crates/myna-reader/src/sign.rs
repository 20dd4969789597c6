//! Signing with the card's JPKI user-authentication key, for the patient's own sign-in
//! (the patient portal). Unlike the crew's read, this needs the 4-digit 利用者証明用暗証番号,
//! which the patient types; it goes to the card and nowhere else, and is zeroed on drop.

use crate::failure::ReadFailure;
use crate::read::select_jpki;
use myna_card::ap::jpki::{JpkiAp, SignatureScheme};
use myna_card::ap::text::TextAp;
use myna_card::mf::MasterFile;
use myna_card::{Card, Error, Pin, Retries, Transmit};
use serde::Serialize;

/// 利用者証明用電子証明書の暗証番号: four digits, checked before anything reaches the card, so a
/// typo of the wrong length spends no try.
pub struct AuthPin(Pin);

/// Why a typed PIN was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the PIN is four digits")]
pub struct NotFourDigits;

impl AuthPin {
    pub fn parse(typed: &str) -> Result<Self, NotFourDigits> {
        let typed = typed.trim();
        if typed.len() != 4 || !typed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NotFourDigits);
        }
        Pin::numeric(typed).map(AuthPin).map_err(|_| NotFourDigits)
    }
}

impl std::fmt::Debug for AuthPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthPin(****)")
    }
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignFailure {
    /// 63Cx: the PIN was wrong; this many tries are left before the card locks.
    #[error("wrong PIN; {remaining} tries left")]
    WrongPin { remaining: u8 },
    /// 63C0 or 6984: no tries left. Only a municipal office can reset it.
    #[error("the PIN is locked")]
    Locked,
    #[error(transparent)]
    Card(ReadFailure),
}

impl SignFailure {
    fn of(e: &Error) -> Self {
        match e {
            Error::PinIncorrect {
                retries: Some(remaining),
            } => SignFailure::WrongPin {
                remaining: *remaining,
            },
            Error::PinBlocked => SignFailure::Locked,
            other => SignFailure::Card(ReadFailure::from_card_error(other)),
        }
    }
}

/// The card's answer: its auth certificate and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub certificate: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Tries left on the auth PIN, read with an empty VERIFY (spends none).
pub fn auth_pin_tries<T: Transmit>(transport: &mut T) -> Result<Retries, SignFailure> {
    let mut card = Card::new(transport);
    select_jpki(&mut card).map_err(SignFailure::Card)?;
    let mut jpki = JpkiAp::select(&mut card).map_err(|e| SignFailure::of(&e))?;
    jpki.auth_pin_retries().map_err(|e| SignFailure::of(&e))
}

/// Verifies the auth PIN and signs `digest_info` (a DER DigestInfo) with the auth key:
/// PKCS#1 v1.5, `80 2A 00 80+SFI`. The PIN is sent only when the card reports tries left. The
/// signature is checked against the card's own certificate before it is returned. Whatever
/// happens after the PIN, another application is selected before returning, which clears the
/// JPKI application's verified state (protocol reference §6.2), so nothing can sign with the
/// key after this call without the PIN; over PC/SC, `pcsc::with_card_exclusive` also powers the
/// card down.
pub fn sign_with_auth_key<T: Transmit>(
    transport: &mut T,
    pin: &AuthPin,
    digest_info: &[u8],
) -> Result<Signed, SignFailure> {
    let mut card = Card::new(transport);
    select_jpki(&mut card).map_err(SignFailure::Card)?;
    let mut jpki = JpkiAp::select(&mut card).map_err(|e| SignFailure::of(&e))?;
    match jpki.auth_pin_retries() {
        Ok(Retries::Remaining(_) | Retries::NotReported | Retries::Unlimited) => {}
        Ok(Retries::Blocked) => return Err(SignFailure::Locked),
        // Not knowing the tries left, a PIN is not risked.
        Err(e) => return Err(SignFailure::of(&e)),
    }
    let signed = (|| {
        jpki.verify_auth_pin(&pin.0)
            .map_err(|e| SignFailure::of(&e))?;
        let certificate = jpki
            .read_auth_certificate_der()
            .map_err(|e| SignFailure::of(&e))?;
        let signature = jpki
            .sign_with_auth_key(SignatureScheme::Verbatim, digest_info)
            .map_err(|e| SignFailure::of(&e))?;
        // Checked with the certificate just read (what `sign_with_auth_key_checked` would read
        // a second time).
        myna_card::Certificate::parse(&certificate)
            .and_then(|c| c.public_key())
            .and_then(|key| SignatureScheme::Verbatim.verify(&key, digest_info, &signature))
            .map_err(|e| SignFailure::of(&e))?;
        Ok(Signed {
            certificate,
            signature,
        })
    })();
    // Another application clears the JPKI one's verified state; should the card refuse that
    // one, the master file does too.
    let cleared = TextAp::select(&mut card)
        .map(|_| ())
        .or_else(|_| MasterFile::select(&mut card).map(|_| ()));
    match (signed, cleared) {
        (Ok(_), Err(e)) => Err(SignFailure::of(&e)),
        (signed, _) => signed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_card_emu::testing;

    const DIGEST_INFO: [u8; 51] = {
        let mut d = [0u8; 51];
        let prefix = [
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        let mut i = 0;
        while i < 19 {
            d[i] = prefix[i];
            i += 1;
        }
        d
    };

    #[test]
    fn only_four_digits_are_a_pin() {
        for bad in ["", "123", "12345", "12a4", "１２３４", " 12 3"] {
            assert_eq!(AuthPin::parse(bad).err(), Some(NotFourDigits), "{bad:?}");
        }
        assert!(AuthPin::parse(" 1234 ").is_ok());
        assert_eq!(
            format!("{:?}", AuthPin::parse("1234").ok()),
            "Some(AuthPin(****))"
        );
    }

    #[test]
    fn the_right_pin_signs_and_wrong_ones_count_down_to_a_lock() {
        let t = testing::test_card("01AF00000001").unwrap();
        let mut card = t.card().unwrap();
        let right = AuthPin::parse("1234").unwrap();
        let wrong = AuthPin::parse("0000").unwrap();
        let signed = sign_with_auth_key(&mut card, &right, &DIGEST_INFO).unwrap();
        assert_eq!(signed.certificate, t.auth_cert);
        assert_eq!(signed.signature.len(), 256);
        assert_eq!(
            sign_with_auth_key(&mut card, &wrong, &DIGEST_INFO),
            Err(SignFailure::WrongPin { remaining: 2 })
        );
        // The right PIN resets the counter.
        sign_with_auth_key(&mut card, &right, &DIGEST_INFO).unwrap();
        assert_eq!(auth_pin_tries(&mut card), Ok(Retries::Remaining(3)));
        for left in [2, 1] {
            assert_eq!(
                sign_with_auth_key(&mut card, &wrong, &DIGEST_INFO),
                Err(SignFailure::WrongPin { remaining: left })
            );
        }
        assert_eq!(
            sign_with_auth_key(&mut card, &wrong, &DIGEST_INFO),
            Err(SignFailure::Locked),
            "the third wrong PIN locks"
        );
        assert_eq!(
            sign_with_auth_key(&mut card, &right, &DIGEST_INFO),
            Err(SignFailure::Locked),
            "a locked card refuses the right PIN too"
        );
        assert_eq!(auth_pin_tries(&mut card), Ok(Retries::Blocked));
    }

    /// After a sign-in, a signing command sent without the PIN (another program on the same
    /// card) is refused, whether or not it selects the JPKI application again.
    #[test]
    fn the_key_is_locked_again_after_signing() {
        let t = testing::test_card("01AF00000002").unwrap();
        let mut card = t.card().unwrap();
        sign_with_auth_key(&mut card, &AuthPin::parse("1234").unwrap(), &DIGEST_INFO).unwrap();
        let mut sign = vec![0x80, 0x2A, 0x00, 0x97, DIGEST_INFO.len() as u8];
        sign.extend_from_slice(&DIGEST_INFO);
        sign.push(0x00);
        let answer = card.process(&sign);
        assert_eq!(answer.len(), 2, "no signature: {answer:02X?}");
        assert_ne!(answer, vec![0x90, 0x00]);
        let mut select = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
        select.extend_from_slice(&crate::read::JPKI_AID);
        assert_eq!(card.process(&select), vec![0x90, 0x00]);
        let answer = card.process(&sign);
        assert_eq!(answer[answer.len() - 2..], [0x69, 0x82], "{answer:02X?}");
        // A wrong PIN's path clears it as well (nothing was verified, nothing to sign with).
        assert!(
            sign_with_auth_key(&mut card, &AuthPin::parse("0000").unwrap(), &DIGEST_INFO).is_err()
        );
        assert_eq!(card.process(&select), vec![0x90, 0x00]);
        let answer = card.process(&sign);
        assert_eq!(answer, vec![0x69, 0x82]);
    }
}
