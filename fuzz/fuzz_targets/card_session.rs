//! The whole emulated card on arbitrary command sequences: every answer carries a status word,
//! and no retry counter rises without a successful VERIFY. The input is split into commands by
//! one length byte each; a length of 0xFF power-cycles the card instead.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_card_emu::card::Card;
use myna_card_emu::testing::test_card;
use std::sync::OnceLock;

/// Built once (RSA keys and signed records are slow); each input starts from a fresh copy.
fn template() -> &'static Card {
    static T: OnceLock<Card> = OnceLock::new();
    T.get_or_init(|| test_card("01F022FFEE01").unwrap().card().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let mut card: Card = template().clone();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0xFF {
            card.power_cycle();
            rest = tail;
            continue;
        }
        let n = usize::from(len).min(tail.len());
        let (apdu, tail) = tail.split_at(n);
        rest = tail;
        let before = card.counters();
        let response = card.process(apdu);
        assert!(response.len() >= 2, "no status word");
        let ok = response[response.len() - 2..] == [0x90, 0x00];
        for (b, a) in before.iter().zip(card.counters()) {
            assert!(
                a <= *b || (ok && apdu.get(1) == Some(&0x20)),
                "a counter rose without a successful VERIFY"
            );
        }
    }
});
