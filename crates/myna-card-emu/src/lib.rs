//! The card side of the My Number card: a faithful emulator for tests and the demo.
//!
//! - `apdu`: the ISO/IEC 7816-4 command-APDU codec and status words.
//! - `card`: the state machine (`process(command) -> response`): applications by AID, EFs by id
//!   and short id, READ BINARY, VERIFY with persistent retry counters, COMPUTE DIGITAL
//!   SIGNATURE, and the security status per DF (reference §5–§6).
//! - `profile`: what one card holds (JPKI certificates and keys, the holder's 券面事項, PINs) and
//!   how it is laid out in the JPKI, 券面事項入力補助, 券面事項確認 and 住基 applications.
//! - `reader`: an emulated reader around the card, with per-command latency and fault
//!   injection (card removed after N commands, mute card).
//! - `vpcd`: the vsmartcard protocol, so a real `pcscd` with `vsmartcard-vpcd` sees the card.
//! - `testing`: a ready-made test card (fresh test CA, keys, holder) for hosts' tests.
//! - `Card` implements `myna_card::transport::Transmit` for in-process use.

pub mod apdu;
pub mod card;
pub mod era;
pub mod profile;
pub mod reader;
pub mod testing;
pub mod tlv;
pub mod vpcd;
