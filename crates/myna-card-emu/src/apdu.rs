//! Command and response APDUs as the card sees them (ISO/IEC 7816-4 §5.1).
//!
//! A card must answer every byte string without panicking: anything that is not a well-formed
//! case 1–4 command, short or extended, is a `CommandError` the card answers with `6700`.

/// Status words the My Number card uses (reference §5).
pub mod sw {
    pub const OK: u16 = 0x9000;
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// Selected file deactivated (ISO 7816-4).
    pub const FILE_DEACTIVATED: u16 = 0x6283;
    pub const SECURITY_STATUS_NOT_SATISFIED: u16 = 0x6982;
    pub const AUTH_METHOD_BLOCKED: u16 = 0x6984;
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    pub const COMMAND_INCOMPATIBLE_WITH_FILE: u16 = 0x6981;
    pub const FILE_NOT_FOUND: u16 = 0x6A82;
    pub const RECORD_NOT_FOUND: u16 = 0x6A83;
    pub const WRONG_P1_P2: u16 = 0x6A86;
    /// No current EF for a command that needs one.
    pub const NO_CURRENT_EF: u16 = 0x6986;
    /// The referenced key or PIN does not exist.
    pub const REFERENCED_DATA_NOT_FOUND: u16 = 0x6A88;
    pub const WRONG_OFFSET: u16 = 0x6B00;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;

    /// `63Cx`: verification failed (or queried), `tries` left (0–15).
    pub fn tries_left(tries: u8) -> u16 {
        0x63C0 | u16::from(tries.min(15))
    }
}

/// A parsed command APDU, borrowing its data field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// The command data field (empty for cases 1 and 2).
    pub data: &'a [u8],
    /// Ne, the most response bytes the reader accepts: `None` for cases 1 and 3; a short Le of
    /// `00` means 256 and an extended Le of `0000` means 65536.
    pub le: Option<usize>,
    /// Whether Lc/Le used the extended (three- or two-byte) form.
    pub extended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("a command APDU has at least 4 bytes, got {0}")]
    TooShort(usize),
    #[error("length fields do not match the {0}-byte command")]
    BadLength(usize),
}

impl<'a> Command<'a> {
    /// Parses one command APDU (cases 1, 2S, 3S, 4S, 2E, 3E, 4E).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CommandError> {
        let n = bytes.len();
        let (header, body) = match bytes {
            [cla, ins, p1, p2, body @ ..] => ([*cla, *ins, *p1, *p2], body),
            _ => return Err(CommandError::TooShort(n)),
        };
        let [cla, ins, p1, p2] = header;
        let make = |data: &'a [u8], le: Option<usize>, extended: bool| Command {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
            extended,
        };
        let short_le = |b: u8| if b == 0 { 256 } else { usize::from(b) };
        let ext_len = |hi: u8, lo: u8| usize::from(hi) << 8 | usize::from(lo);
        let bad = Err(CommandError::BadLength(n));
        match body {
            // Case 1.
            [] => Ok(make(&[], None, false)),
            // Case 2S.
            [le] => Ok(make(&[], Some(short_le(*le)), false)),
            // Extended forms start with a 00 byte followed by two length bytes.
            [0, hi, lo, rest @ ..] => {
                let first = ext_len(*hi, *lo);
                if rest.is_empty() {
                    // Case 2E: Le only.
                    let le = if first == 0 { 65_536 } else { first };
                    return Ok(make(&[], Some(le), true));
                }
                if first == 0 {
                    return bad;
                }
                match rest.len().checked_sub(first) {
                    // Case 3E.
                    Some(0) => Ok(make(&rest[..first], None, true)),
                    // Case 4E: two Le bytes follow the data.
                    Some(2) => {
                        let le = ext_len(rest[first], rest[first + 1]);
                        Ok(make(
                            &rest[..first],
                            Some(if le == 0 { 65_536 } else { le }),
                            true,
                        ))
                    }
                    _ => bad,
                }
            }
            [lc, rest @ ..] if *lc != 0 => {
                let lc = usize::from(*lc);
                match rest.len().checked_sub(lc) {
                    // Case 3S.
                    Some(0) => Ok(make(rest, None, false)),
                    // Case 4S.
                    Some(1) => Ok(make(&rest[..lc], Some(short_le(rest[lc])), false)),
                    _ => bad,
                }
            }
            _ => bad,
        }
    }

    /// Encodes the command, choosing the short form when Lc ≤ 255 and Ne ≤ 256.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        let extended = self.extended || self.data.len() > 255 || self.le.is_some_and(|l| l > 256);
        if extended {
            if !self.data.is_empty() {
                out.push(0);
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
                out.extend_from_slice(self.data);
            }
            if let Some(le) = self.le {
                if self.data.is_empty() {
                    out.push(0);
                }
                let le = if le >= 65_536 { 0 } else { le as u16 };
                out.extend_from_slice(&le.to_be_bytes());
            }
        } else {
            if !self.data.is_empty() {
                out.push(self.data.len() as u8);
                out.extend_from_slice(self.data);
            }
            if let Some(le) = self.le {
                out.push(if le >= 256 { 0 } else { le as u8 });
            }
        }
        out
    }
}

/// A response APDU: data followed by SW1 SW2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl Response {
    pub fn ok(data: Vec<u8>) -> Self {
        Response { data, sw: sw::OK }
    }
    pub fn status(sw: u16) -> Self {
        Response {
            data: Vec::new(),
            sw,
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend_from_slice(&self.sw.to_be_bytes());
        out
    }
}
