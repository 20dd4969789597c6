#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The terminal's card module against the emulated card in process: what is read, at what
//! cost, and how each failure reaches the crew.

use myna_card_emu::card::{Card, JPKI_AID};
use myna_card_emu::profile::{Token, jpki_ef};
use myna_card_emu::reader::{EmulatedReader, Faults};
use myna_card_emu::testing::{TestCard, test_card};
use myna_pki::TrustAnchor;
use myna_reader::read::Tries;
use myna_reader::trust::{Trust, check};
use myna_reader::{ReadFailure, pin_status, read_auth_certificate};
use std::sync::OnceLock;
use std::time::Duration;

fn fixture() -> &'static TestCard {
    static F: OnceLock<TestCard> = OnceLock::new();
    F.get_or_init(|| test_card("01C0FFEE0100").unwrap())
}

fn reader(faults: Faults) -> EmulatedReader {
    EmulatedReader::new(fixture().card().unwrap(), faults)
}

#[test]
fn reads_the_auth_certificate_in_three_apdus_byte_identical() {
    let mut r = reader(Faults::default());
    let read = read_auth_certificate(&mut r).unwrap();
    assert_eq!(read.der, fixture().auth_cert);
    assert_eq!(read.token, "JPKIAPICCTOKEN2");
    assert!(read.extended);
    assert_eq!(read.apdus(), 3);
    let names: Vec<_> = read.steps.iter().map(|s| s.name).collect();
    assert_eq!(names, ["select_jpki", "token_info", "auth_certificate"]);
    // Bytes: SELECT 15 + 2; token 5 + 34; certificate 7 + len + 2.
    assert_eq!(read.bytes(), 17 + 39 + 9 + fixture().auth_cert.len());
}

#[test]
fn the_chain_verifies_to_the_test_root_and_not_to_the_jlis_roots() {
    let mut r = reader(Faults::default());
    let read = read_auth_certificate(&mut r).unwrap();
    let anchor = TrustAnchor::from_der(&fixture().ca_cert).unwrap();
    let now = chrono::Utc::now();
    let report = check(&read.der, &Trust::TestRoot(Box::new(anchor)), now).unwrap();
    assert!(report.chain_verified, "{:?}", report.chain_error);
    assert_eq!(report.serial, "01C0FFEE0100");
    let report = check(&read.der, &Trust::Jlis, now).unwrap();
    assert!(
        !report.chain_verified,
        "a test card must not chain to J-LIS"
    );
}

#[test]
fn latency_is_paid_per_command() {
    let mut r = reader(Faults {
        latency: Duration::from_millis(25),
        ..Faults::default()
    });
    let read = read_auth_certificate(&mut r).unwrap();
    assert!(read.micros() >= 75_000, "{} µs", read.micros());
}

#[test]
fn a_card_removed_mid_read_is_reported_as_removed() {
    for after in [0, 1, 2] {
        let mut r = reader(Faults {
            remove_after: Some(after),
            ..Faults::default()
        });
        assert_eq!(
            read_auth_certificate(&mut r).unwrap_err(),
            ReadFailure::CardRemoved,
            "removed after {after}"
        );
    }
}

#[test]
fn a_mute_card_is_an_io_timeout() {
    let mut r = reader(Faults {
        mute_after: Some(1),
        ..Faults::default()
    });
    r.mute_timeout = Duration::from_millis(50);
    assert_eq!(
        read_auth_certificate(&mut r).unwrap_err(),
        ReadFailure::Timeout
    );
}

#[test]
fn a_card_without_the_jpki_application_is_not_a_my_number_card() {
    let mut r = EmulatedReader::new(Card::with_apps(Vec::new()), Faults::default());
    assert_eq!(
        read_auth_certificate(&mut r).unwrap_err(),
        ReadFailure::NotMynaCard
    );
}

#[test]
fn smartphone_tokens_and_juki_cards_are_refused_by_label() {
    for (token, expected) in [
        (
            Token::AndroidSe,
            ReadFailure::SmartphoneToken {
                label: "JPKIAPGPSETOKEN".into(),
            },
        ),
        (
            Token::Iphone,
            ReadFailure::SmartphoneToken {
                label: "JPKIAPIOSTOKEN".into(),
            },
        ),
        (Token::JukiCard, ReadFailure::NotMynaCard),
    ] {
        let mut profile = fixture().profile.clone();
        profile.jpki.token = token;
        let mut r = EmulatedReader::new(Card::new(&profile).unwrap(), Faults::default());
        assert_eq!(read_auth_certificate(&mut r).unwrap_err(), expected);
    }
}

#[test]
fn a_deactivated_jpki_application_is_blocked() {
    let mut card = fixture().card().unwrap();
    card.set_deactivated(&JPKI_AID, true);
    let mut r = EmulatedReader::new(card, Faults::default());
    assert_eq!(
        read_auth_certificate(&mut r).unwrap_err(),
        ReadFailure::Blocked
    );
}

#[test]
fn pin_status_reads_counters_without_spending_a_try() {
    let mut card = fixture().card().unwrap();
    // One wrong auth PIN first.
    let mut select = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
    select.extend_from_slice(&JPKI_AID);
    card.process(&select);
    card.process(&[0x00, 0x20, 0x00, 0x98, 0x04, b'9', b'9', b'9', b'9']);
    for _ in 0..3 {
        let status = pin_status(&mut card).unwrap();
        assert_eq!(status.auth_pin, Tries::Remaining(2));
        assert_eq!(status.sign_password, Tries::Remaining(5));
        assert_eq!(status.text_pin, Tries::Remaining(3));
    }
    assert_eq!(card.tries_left(&JPKI_AID, jpki_ef::AUTH_PIN), Some(2));
}

#[test]
fn every_failure_has_a_distinct_japanese_message_with_a_next_action() {
    let all = [
        ReadFailure::NoReader,
        ReadFailure::NoCard,
        ReadFailure::CardRemoved,
        ReadFailure::NotMynaCard,
        ReadFailure::SmartphoneToken {
            label: "JPKIAPIOSTOKEN".into(),
        },
        ReadFailure::Blocked,
        ReadFailure::Timeout,
        ReadFailure::Unexpected { detail: "x".into() },
    ];
    let mut seen = std::collections::HashSet::new();
    for f in &all {
        let ja = f.message_ja();
        assert!(!ja.what.is_empty() && !ja.next.is_empty());
        assert!(!ja.what.is_ascii(), "Japanese first: {}", ja.what);
        assert!(seen.insert(ja.what), "duplicate message {}", ja.what);
        assert!(!f.message_en().what.is_empty());
    }
}

/// A reader that carries only short APDUs: it answers `6700` to extended-length commands, as a
/// card behind such a reader effectively does.
struct ShortApdusOnly(EmulatedReader);

impl myna_card::Transmit for ShortApdusOnly {
    fn transmit(&mut self, command: &[u8]) -> myna_card::Result<Vec<u8>> {
        let extended = command.len() > 5 && command[4] == 0x00;
        if extended {
            return Ok(vec![0x67, 0x00]);
        }
        myna_card::Transmit::transmit(&mut self.0, command)
    }
}

#[test]
fn without_extended_apdus_the_certificate_comes_in_256_byte_chunks() {
    let mut r = ShortApdusOnly(reader(Faults::default()));
    let read = read_auth_certificate(&mut r).unwrap();
    assert_eq!(read.der, fixture().auth_cert);
    assert!(!read.extended);
    let chunks = fixture().auth_cert.len().div_ceil(256) as u32;
    // SELECT, token label, the refused extended READ, then the chunks.
    assert_eq!(read.apdus(), 3 + chunks, "{:?}", read.steps);
    assert!(read.apdus() <= 10);
}

#[test]
fn a_certificate_shorter_than_its_header_says_is_not_accepted() {
    let mut profile = fixture().profile.clone();
    profile.jpki.auth_cert.truncate(600);
    let mut r = EmulatedReader::new(Card::new(&profile).unwrap(), Faults::default());
    assert!(matches!(
        read_auth_certificate(&mut r).unwrap_err(),
        ReadFailure::Unexpected { .. }
    ));
}
