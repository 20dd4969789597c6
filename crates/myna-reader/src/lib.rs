//! The terminal's card module: what the crew's tablet does when a card is placed on the reader.
//!
//! - `read`: reads the JPKI user-authentication certificate (利用者証明用電子証明書) with no PIN,
//!   in as few APDUs as the card allows, timing each step; and reads the PIN retry counters
//!   without spending a try. Works over any `myna_card::Transmit`: PC/SC or the emulator.
//! - `failure`: every way a read can fail, each with a crew-facing message in Japanese (and
//!   English) that says what happened and what to do next.
//! - `pcsc`: lists readers and waits for a card with PC/SC presence events (no polling loop).
//! - `sign`: the patient's own sign-in: the auth PIN (typed, four digits, zeroed on drop), the
//!   auth key's PKCS#1 v1.5 signature over a DigestInfo, and each wrong PIN's tries left.
//! - `trust`: checks the certificate chain to the J-LIS roots `myna-card` carries, or to a
//!   configured test root.

pub mod failure;
pub mod metered;
pub mod pcsc;
pub mod read;
pub mod sign;
pub mod trust;

pub use failure::ReadFailure;
pub use read::{AuthCertRead, PinStatus, Step, pin_status, read_auth_certificate};
