//! The card side of the My Number card (issue 3, in progress).
//!
//! - `apdu`: the ISO/IEC 7816-4 command-APDU codec and status words.
//! - `card`: the state machine of the card's JPKI application (公的個人認証AP), following
//!   `shared/reference/mynumber-card-protocol.md` §2.1, §3, §4 and §6: SELECT by AID and EF id,
//!   READ BINARY (offsets, SFI, short and extended Le), VERIFY with persistent retry counters
//!   and the empty-data query, and COMPUTE DIGITAL SIGNATURE over a caller-supplied DigestInfo.
//!
//! - `vpcd`: the vsmartcard protocol, so a real `pcscd` with `vsmartcard-vpcd` sees the card.
//! - `Card` implements `myna_card::transport::Transmit` for in-process use.
//!
//! Still to come: the 券面事項入力補助AP and 券面事項確認AP, latency and fault injection, the
//! `card emulate` command and the interop tests through `pcscd` and OpenSC.

pub mod apdu;
pub mod card;
pub mod vpcd;
