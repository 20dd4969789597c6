//! The card's command-APDU parser on arbitrary bytes: parse, and re-encode what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_card_emu::apdu::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Command::parse(data) {
        let again = c.encode();
        let reparsed = Command::parse(&again);
        assert!(reparsed.is_ok(), "re-encoded command does not parse");
    }
});
