//! The emulator's own test card.

#![allow(clippy::unwrap_used, dead_code)]

pub use myna_card_emu::testing::TestCard;

pub fn test_card(serial: &str) -> TestCard {
    myna_card_emu::testing::test_card(serial).unwrap()
}
