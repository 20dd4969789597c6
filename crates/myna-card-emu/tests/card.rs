#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The JPKI application state machine against the behaviour in the protocol reference.

use myna_card_emu::apdu::sw;
use myna_card_emu::card::{Card, JPKI_AID};
use myna_card_emu::profile::jpki_ef as ef;
use proptest::prelude::*;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

mod common;

/// The profile is built once: RSA key generation is slow.
fn fixture() -> &'static common::TestCard {
    static F: OnceLock<common::TestCard> = OnceLock::new();
    F.get_or_init(|| common::test_card("01C0FFEE0001"))
}

fn card() -> Card {
    fixture().card().unwrap()
}

fn sw_of(r: &[u8]) -> u16 {
    u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]])
}

fn select_jpki(c: &mut Card) -> u16 {
    let mut apdu = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
    apdu.extend_from_slice(&JPKI_AID);
    sw_of(&c.process(&apdu))
}

fn select_ef(c: &mut Card, id: u16) -> u16 {
    let [hi, lo] = id.to_be_bytes();
    sw_of(&c.process(&[0x00, 0xA4, 0x02, 0x0C, 0x02, hi, lo]))
}

fn verify(c: &mut Card, pin_ef: u16, secret: &[u8]) -> u16 {
    let mut apdu = vec![0x00, 0x20, 0x00, 0x80 | pin_ef as u8];
    if !secret.is_empty() {
        apdu.push(secret.len() as u8);
        apdu.extend_from_slice(secret);
    }
    sw_of(&c.process(&apdu))
}

#[test]
fn the_auth_certificate_reads_without_a_pin_in_few_apdus() {
    let mut c = card();
    let mut apdus = 0;
    assert_eq!(select_jpki(&mut c), sw::OK);
    assert_eq!(select_ef(&mut c, ef::AUTH_CERT), sw::OK);
    apdus += 2;
    // Header first, then the rest in chunks of at most 256 bytes.
    let head = c.process(&[0x00, 0xB0, 0x00, 0x00, 0x04]);
    apdus += 1;
    assert_eq!(sw_of(&head), sw::OK);
    let total = (usize::from(head[2]) << 8 | usize::from(head[3])) + 4;
    let mut cert = Vec::new();
    while cert.len() < total {
        let off = cert.len();
        let le = (total - off).min(256);
        let r = c.process(&[
            0x00,
            0xB0,
            (off >> 8) as u8,
            off as u8,
            if le == 256 { 0 } else { le as u8 },
        ]);
        apdus += 1;
        assert_eq!(sw_of(&r), sw::OK);
        cert.extend_from_slice(&r[..r.len() - 2]);
    }
    assert_eq!(cert, fixture().auth_cert, "byte-identical to the profile");
    assert!(apdus <= 10, "{apdus} APDUs");
    // One extended READ BINARY by SFI returns the whole file.
    let r = c.process(&[
        0x00,
        0xB0,
        0x80 | ef::AUTH_CERT as u8,
        0x00,
        0x00,
        0x00,
        0x00,
    ]);
    assert_eq!(&r[..r.len() - 2], &fixture().auth_cert[..]);
}

#[test]
fn reads_follow_the_card_rules() {
    let mut c = card();
    // Nothing selected yet.
    assert_eq!(select_ef(&mut c, ef::AUTH_CERT), sw::FILE_NOT_FOUND);
    select_jpki(&mut c);
    assert_eq!(
        sw_of(&c.process(&[0x00, 0xB0, 0x00, 0x00, 0x10])),
        sw::NO_CURRENT_EF
    );
    assert_eq!(select_ef(&mut c, 0x3F00), sw::FILE_NOT_FOUND);
    select_ef(&mut c, ef::TOKEN_INFO);
    let r = c.process(&[0x00, 0xB0, 0x00, 0x00, 0x20]);
    assert!(r.starts_with(b"JPKIAPICCTOKEN2 "));
    // Le beyond the end returns the remainder; an offset at the end is 6B00.
    let r = c.process(&[0x00, 0xB0, 0x00, 150, 0x00]);
    assert_eq!(r.len(), 10 + 2);
    assert_eq!(
        sw_of(&c.process(&[0x00, 0xB0, 0x00, 160, 0x01])),
        sw::WRONG_OFFSET
    );
    // The signing certificate needs the signing password; keys and PINs cannot be read.
    select_ef(&mut c, ef::SIGN_CERT);
    assert_eq!(
        sw_of(&c.process(&[0x00, 0xB0, 0x00, 0x00, 0x10])),
        sw::SECURITY_STATUS_NOT_SATISFIED
    );
    assert_eq!(verify(&mut c, ef::SIGN_PASSWORD, b"ABC123"), sw::OK);
    // VERIFY by short EF id made the password EF current, which cannot be read.
    assert_eq!(
        sw_of(&c.process(&[0x00, 0xB0, 0x00, 0x00, 0x10])),
        sw::COMMAND_INCOMPATIBLE_WITH_FILE
    );
    select_ef(&mut c, ef::SIGN_CERT);
    assert_eq!(sw_of(&c.process(&[0x00, 0xB0, 0x00, 0x00, 0x10])), sw::OK);
    select_ef(&mut c, ef::AUTH_KEY);
    assert_eq!(
        sw_of(&c.process(&[0x00, 0xB0, 0x00, 0x00, 0x10])),
        sw::COMMAND_INCOMPATIBLE_WITH_FILE
    );
    // Unknown instruction and class, and malformed lengths.
    assert_eq!(
        sw_of(&c.process(&[0x00, 0xEE, 0x00, 0x00])),
        sw::INS_NOT_SUPPORTED
    );
    assert_eq!(
        sw_of(&c.process(&[0x0C, 0xB0, 0x00, 0x00, 0x10])),
        sw::CLA_NOT_SUPPORTED
    );
    assert_eq!(sw_of(&c.process(&[0x00, 0xA4])), sw::WRONG_LENGTH);
}

#[test]
fn pin_counters_count_down_block_and_persist() {
    let mut c = card();
    select_jpki(&mut c);
    assert_eq!(
        verify(&mut c, ef::AUTH_PIN, b""),
        sw::tries_left(3),
        "query spends nothing"
    );
    assert_eq!(verify(&mut c, ef::AUTH_PIN, b"0000"), 0x63C2);
    assert_eq!(
        verify(&mut c, ef::AUTH_PIN, b"1234"),
        sw::OK,
        "success restores the counter"
    );
    assert_eq!(c.tries_left(&JPKI_AID, ef::AUTH_PIN), Some(3));
    assert_eq!(verify(&mut c, ef::AUTH_PIN, b"0000"), 0x63C2);
    c.power_cycle();
    select_jpki(&mut c);
    assert_eq!(
        verify(&mut c, ef::AUTH_PIN, b""),
        0x63C2,
        "counters survive a power cycle"
    );
    assert_eq!(verify(&mut c, ef::AUTH_PIN, b"0000"), 0x63C1);
    assert_eq!(verify(&mut c, ef::AUTH_PIN, b"0000"), 0x63C0);
    assert_eq!(
        verify(&mut c, ef::AUTH_PIN, b"1234"),
        sw::AUTH_METHOD_BLOCKED,
        "blocked even with the right PIN"
    );
    assert_eq!(verify(&mut c, ef::AUTH_PIN, b""), 0x63C0);
    // The signing password has its own counter of 5.
    assert_eq!(verify(&mut c, ef::SIGN_PASSWORD, b""), sw::tries_left(5));
}

#[test]
fn signing_needs_the_pin_and_verifies_against_the_certificate() {
    let mut c = card();
    select_jpki(&mut c);
    let message = b"challenge from the reader";
    let mut digest_info = vec![
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    digest_info.extend_from_slice(&Sha256::digest(message));
    let mut sign = vec![
        0x80,
        0x2A,
        0x00,
        0x80 | ef::AUTH_KEY as u8,
        digest_info.len() as u8,
    ];
    sign.extend_from_slice(&digest_info);
    sign.push(0x00);
    assert_eq!(sw_of(&c.process(&sign)), sw::SECURITY_STATUS_NOT_SATISFIED);
    assert_eq!(verify(&mut c, ef::AUTH_PIN, b"1234"), sw::OK);
    let r = c.process(&sign);
    assert_eq!(sw_of(&r), sw::OK);
    let sig = Signature::try_from(&r[..r.len() - 2]).unwrap();
    VerifyingKey::<Sha256>::new(fixture().keys.key(0).to_public_key())
        .verify(message, &sig)
        .unwrap();
    // Selecting the application again keeps the PIN; a power cycle clears it.
    select_jpki(&mut c);
    assert_eq!(sw_of(&c.process(&sign)), sw::OK);
    c.power_cycle();
    select_jpki(&mut c);
    assert_eq!(sw_of(&c.process(&sign)), sw::SECURITY_STATUS_NOT_SATISFIED);
}

/// A command strategy that reaches the interesting states: application and EF selection, right
/// and wrong secrets for every PIN EF, reads and signatures, mixed with arbitrary bytes.
fn command() -> impl Strategy<Value = Vec<u8>> {
    let aids = prop_oneof![
        Just(JPKI_AID.to_vec()),
        Just(myna_card_emu::card::TEXT_AID.to_vec()),
        Just(myna_card_emu::card::SURFACE_AID.to_vec()),
        Just(myna_card_emu::card::JUKI_AID.to_vec()),
    ];
    let secrets = prop_oneof![
        Just(b"1234".to_vec()),
        Just(b"5678".to_vec()),
        Just(b"ABC123".to_vec()),
        Just(b"55021720352285".to_vec()),
        Just(b"550217".to_vec()),
        Just(b"123456789018".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    prop_oneof![
        aids.prop_map(|aid| [vec![0x00, 0xA4, 0x04, 0x0C, 0x0A], aid].concat()),
        (0u8..0x20).prop_map(|id| vec![0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, id]),
        (0u8..0x20, secrets).prop_map(|(sfi, s)| {
            let mut v = vec![0x00, 0x20, 0x00, 0x80 | sfi];
            if !s.is_empty() {
                v.push(s.len() as u8);
                v.extend(s);
            }
            v
        }),
        (0u8..0x20, any::<u8>()).prop_map(|(sfi, le)| vec![0x00, 0xB0, 0x80 | sfi, 0x00, le]),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..60)).prop_map(|(p2, d)| [
            vec![0x80, 0x2A, 0x00, p2, d.len() as u8],
            d,
            vec![0]
        ]
        .concat()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of commands: no panic, every answer ends in a status word, and no retry
    /// counter of any application goes up except through a successful VERIFY.
    #[test]
    fn arbitrary_commands_never_panic_or_raise_counters(
        apdus in proptest::collection::vec(command(), 1..80),
        power_cycle_at in 0usize..80,
    ) {
        let mut c = card();
        for (i, apdu) in apdus.iter().enumerate() {
            if i == power_cycle_at {
                c.power_cycle();
            }
            let before = c.counters();
            let r = c.process(apdu);
            prop_assert!(r.len() >= 2);
            let after = c.counters();
            for (b, a) in before.iter().zip(&after) {
                if a > b {
                    prop_assert_eq!(apdu.get(1), Some(&0x20));
                    prop_assert_eq!(sw_of(&r), sw::OK);
                }
            }
        }
    }
}
