//! The JPKI application of an emulated My Number card, as a state machine:
//! `process(command APDU) -> response APDU`.

use crate::apdu::{Command, Response, sw};
use rsa::{Pkcs1v15Sign, PrivateKey};
use std::collections::HashSet;
use zeroize::Zeroizing;

/// 公的個人認証AP (JPKI-AP).
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];

/// A contact ATR seen on real cards (reference §10.1).
pub const ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// EF identifiers of the JPKI application (reference §2.1). Each is also its short EF id.
pub mod ef {
    pub const SIGN_CERT: u16 = 0x0001;
    pub const SIGN_CA: u16 = 0x0002;
    pub const TOKEN_INFO: u16 = 0x0006;
    pub const AUTH_CERT: u16 = 0x000A;
    pub const AUTH_CA: u16 = 0x000B;
    pub const AUTH_KEY: u16 = 0x0017;
    pub const AUTH_PIN: u16 = 0x0018;
    pub const SIGN_KEY: u16 = 0x001A;
    pub const SIGN_PASSWORD: u16 = 0x001B;
}

/// RSA-2048 keys sign at most k − 11 bytes of DigestInfo.
const MAX_SIGN_INPUT: usize = 245;

/// What the card holds for one person: certificates, keys and secrets.
#[derive(Clone)]
pub struct JpkiProfile {
    pub auth_cert: Vec<u8>,
    pub auth_ca: Vec<u8>,
    pub sign_cert: Vec<u8>,
    pub sign_ca: Vec<u8>,
    pub auth_key: PrivateKey,
    pub sign_key: PrivateKey,
    /// 利用者証明用暗証番号: 4 ASCII digits.
    pub auth_pin: Zeroizing<Vec<u8>>,
    /// 署名用パスワード: 6–16 upper-case letters and digits.
    pub sign_password: Zeroizing<Vec<u8>>,
    /// Token label, e.g. `JPKIAPICCTOKEN2` for a My Number card.
    pub token_label: String,
}

enum Body {
    Binary(Vec<u8>),
    Key(Box<PrivateKey>),
    /// A PIN and its retry counter, which lives with the file and so survives power cycles.
    Pin {
        secret: Zeroizing<Vec<u8>>,
        max_tries: u8,
        left: u8,
    },
}

struct Ef {
    id: u16,
    /// The PIN EF that must be verified first, if any.
    needs: Option<u16>,
    body: Body,
}

/// The JPKI token information EF: a 160-byte `CK_TOKEN_INFO` whose first 32 bytes are the
/// space-padded label (reference §7.2).
fn token_info(label: &str) -> Vec<u8> {
    let mut v = vec![b' '; 32];
    for (d, s) in v.iter_mut().zip(label.bytes()) {
        *d = s;
    }
    v.resize(160, 0);
    v
}

/// An emulated card: files, retry counters (which persist across power cycles) and the
/// volatile selection and security state.
pub struct Card {
    files: Vec<Ef>,
    selected_app: bool,
    current_ef: Option<u16>,
    /// PIN EFs verified since the application was selected.
    verified: HashSet<u16>,
}

impl Card {
    pub fn new(p: JpkiProfile) -> Self {
        let files = vec![
            Ef {
                id: ef::SIGN_CERT,
                needs: Some(ef::SIGN_PASSWORD),
                body: Body::Binary(p.sign_cert),
            },
            Ef {
                id: ef::SIGN_CA,
                needs: None,
                body: Body::Binary(p.sign_ca),
            },
            Ef {
                id: ef::TOKEN_INFO,
                needs: None,
                body: Body::Binary(token_info(&p.token_label)),
            },
            Ef {
                id: ef::AUTH_CERT,
                needs: None,
                body: Body::Binary(p.auth_cert),
            },
            Ef {
                id: ef::AUTH_CA,
                needs: None,
                body: Body::Binary(p.auth_ca),
            },
            Ef {
                id: ef::AUTH_KEY,
                needs: Some(ef::AUTH_PIN),
                body: Body::Key(Box::new(p.auth_key)),
            },
            Ef {
                id: ef::AUTH_PIN,
                needs: None,
                body: Body::Pin {
                    secret: p.auth_pin,
                    max_tries: 3,
                    left: 3,
                },
            },
            Ef {
                id: ef::SIGN_KEY,
                needs: Some(ef::SIGN_PASSWORD),
                body: Body::Key(Box::new(p.sign_key)),
            },
            Ef {
                id: ef::SIGN_PASSWORD,
                needs: None,
                body: Body::Pin {
                    secret: p.sign_password,
                    max_tries: 5,
                    left: 5,
                },
            },
        ];
        Card {
            files,
            selected_app: false,
            current_ef: None,
            verified: HashSet::new(),
        }
    }

    /// Power off and on (card removed, or reader reset with power-down): selection and security
    /// status are lost; retry counters are not.
    pub fn power_cycle(&mut self) -> &'static [u8] {
        self.selected_app = false;
        self.current_ef = None;
        self.verified.clear();
        &ATR
    }

    /// Remaining tries of a PIN EF.
    pub fn tries_left(&self, pin: u16) -> Option<u8> {
        match self.file(pin)?.body {
            Body::Pin { left, .. } => Some(left),
            _ => None,
        }
    }

    /// Answers one command APDU. Never panics, whatever the bytes.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        let response = match Command::parse(apdu) {
            Ok(c) => self.dispatch(&c),
            Err(_) => Response::status(sw::WRONG_LENGTH),
        };
        response.to_bytes()
    }

    fn dispatch(&mut self, c: &Command<'_>) -> Response {
        let result = match (c.cla, c.ins) {
            (0x00, 0xA4) => self.select(c),
            (0x00, 0xB0) => self.read_binary(c),
            (0x00, 0x20) => self.verify(c),
            (0x80, 0x2A) => self.sign(c),
            (0x00 | 0x80, _) => Err(sw::INS_NOT_SUPPORTED),
            _ => Err(sw::CLA_NOT_SUPPORTED),
        };
        result.unwrap_or_else(Response::status)
    }

    fn file(&self, id: u16) -> Option<&Ef> {
        self.files.iter().find(|f| f.id == id)
    }

    /// The EF a command names: by short EF id when the given P1/P2 byte has b8 set, else the
    /// current EF. Naming by SFI makes it current.
    fn target(&mut self, sfi_byte: u8) -> Result<u16, u16> {
        if !self.selected_app {
            return Err(sw::FILE_NOT_FOUND);
        }
        if sfi_byte & 0x80 != 0 && sfi_byte & 0x1F != 0 {
            let id = u16::from(sfi_byte & 0x1F);
            self.file(id).ok_or(sw::FILE_NOT_FOUND)?;
            self.current_ef = Some(id);
            Ok(id)
        } else {
            self.current_ef.ok_or(sw::NO_CURRENT_EF)
        }
    }

    /// Refuses use of `file` until the PIN guarding it has been verified.
    fn check_access(&self, file: &Ef) -> Result<(), u16> {
        match file.needs {
            Some(pin) if !self.verified.contains(&pin) => Err(sw::SECURITY_STATUS_NOT_SATISFIED),
            _ => Ok(()),
        }
    }

    fn select(&mut self, c: &Command<'_>) -> Result<Response, u16> {
        match (c.p1, c.p2) {
            (0x04, 0x0C) => {
                if c.data != JPKI_AID {
                    return Err(sw::FILE_NOT_FOUND);
                }
                // Re-selecting the same application keeps its security status (reference §6).
                if !self.selected_app {
                    self.verified.clear();
                }
                self.selected_app = true;
                self.current_ef = None;
                Ok(Response::status(sw::OK))
            }
            (0x02, 0x0C) => {
                let [hi, lo] = c.data else {
                    return Err(sw::WRONG_LENGTH);
                };
                let id = u16::from_be_bytes([*hi, *lo]);
                if !self.selected_app || self.file(id).is_none() {
                    return Err(sw::FILE_NOT_FOUND);
                }
                self.current_ef = Some(id);
                Ok(Response::status(sw::OK))
            }
            _ => Err(sw::WRONG_P1_P2),
        }
    }

    fn read_binary(&mut self, c: &Command<'_>) -> Result<Response, u16> {
        let (id, offset) = if c.p1 & 0x80 != 0 {
            (self.target(c.p1)?, usize::from(c.p2))
        } else {
            (
                self.target(0)?,
                usize::from(c.p1 & 0x7F) << 8 | usize::from(c.p2),
            )
        };
        let file = self.file(id).ok_or(sw::FILE_NOT_FOUND)?;
        // Keys and PINs are internal EFs: never readable, whatever has been verified.
        let Body::Binary(content) = &file.body else {
            return Err(sw::COMMAND_INCOMPATIBLE_WITH_FILE);
        };
        self.check_access(file)?;
        if offset >= content.len() {
            return Err(sw::WRONG_OFFSET);
        }
        let end = content.len().min(offset + c.le.unwrap_or(256));
        Ok(Response::ok(
            content.get(offset..end).unwrap_or_default().to_vec(),
        ))
    }

    fn verify(&mut self, c: &Command<'_>) -> Result<Response, u16> {
        if c.p1 != 0x00 || c.p2 & 0x80 == 0 {
            return Err(sw::WRONG_P1_P2);
        }
        let id = self.target(c.p2)?;
        let file = self
            .files
            .iter_mut()
            .find(|f| f.id == id)
            .ok_or(sw::FILE_NOT_FOUND)?;
        let Body::Pin {
            secret,
            max_tries,
            left,
        } = &mut file.body
        else {
            return Err(sw::REFERENCED_DATA_NOT_FOUND);
        };
        if c.data.is_empty() {
            return Err(sw::tries_left(*left));
        }
        if *left == 0 {
            return Err(sw::AUTH_METHOD_BLOCKED);
        }
        if c.data == secret.as_slice() {
            *left = *max_tries;
            self.verified.insert(id);
            Ok(Response::status(sw::OK))
        } else {
            *left -= 1;
            Err(sw::tries_left(*left))
        }
    }

    fn sign(&mut self, c: &Command<'_>) -> Result<Response, u16> {
        if c.p1 != 0x00 || c.p2 & 0x80 == 0 {
            return Err(sw::WRONG_P1_P2);
        }
        let id = self.target(c.p2)?;
        let file = self.file(id).ok_or(sw::FILE_NOT_FOUND)?;
        let Body::Key(key) = &file.body else {
            return Err(sw::COMMAND_INCOMPATIBLE_WITH_FILE);
        };
        self.check_access(file)?;
        if c.data.is_empty() || c.data.len() > MAX_SIGN_INPUT {
            return Err(sw::WRONG_LENGTH);
        }
        // The card pads the caller's DigestInfo (PKCS#1 v1.5 type 1) and signs it raw.
        key.sign(Pkcs1v15Sign::new_unprefixed(), c.data)
            .map(Response::ok)
            .map_err(|_| sw::CONDITIONS_NOT_SATISFIED)
    }
}

/// In-process transport: `myna-card` (and anything built on it) talks to the emulated card
/// without PC/SC, for fast tests.
impl myna_card::transport::Transmit for Card {
    fn transmit(&mut self, command: &[u8]) -> myna_card::Result<Vec<u8>> {
        Ok(self.process(command))
    }
}
