//! The card side of the My Number card (issue 3, in progress).
//!
//! So far this holds the ISO/IEC 7816-4 command-APDU codec the emulator's state machine will
//! be built on (`shared/reference/mynumber-card-protocol.md` §4–§6). The state machine, card
//! profiles, the vpcd transport and the `Transmit` adapter come next.

pub mod apdu;
