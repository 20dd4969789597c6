//! The emulated card as a state machine: `process(command APDU) -> response APDU`.
//!
//! The card holds applications (DFs selected by AID), each with transparent EFs, internal key
//! EFs and PIN EFs. The profile module decides what goes in them; this module owns the rules of
//! reference §5–§6: current DF and EF, security status per DF, retry counters that persist across
//! power cycles, and the status words of each failure.

use crate::apdu::{Command, Response, sw};
use rsa::{Pkcs1v15Sign, PrivateKey};
use std::collections::HashSet;
use zeroize::Zeroizing;

/// 公的個人認証AP (JPKI-AP).
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
/// 券面事項入力補助AP (text AP: 個人番号 and 基本4情報).
pub const TEXT_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];
/// 券面事項確認AP (surface AP: the card face).
pub const SURFACE_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02];
/// The two 住基-related applications; only SELECT and their PIN matter here (reference §2.4).
pub const JUKI_COMMON_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x01, 0x00];
pub const JUKI_AID: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x01];

/// A contact ATR seen on real cards (reference §10.1).
pub const ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// RSA-2048 keys sign at most k − 11 bytes of DigestInfo.
const MAX_SIGN_INPUT: usize = 245;

/// What an EF holds.
#[derive(Clone)]
pub enum Body {
    /// A transparent EF.
    Binary(Vec<u8>),
    /// An internal EF holding a private key: usable by COMPUTE DIGITAL SIGNATURE, never readable.
    Key(Box<PrivateKey>),
    /// A PIN or 照合番号 and its retry counter, which lives with the file and so survives
    /// power cycles.
    Pin {
        secret: Zeroizing<Vec<u8>>,
        max_tries: u8,
        left: u8,
    },
}

impl Body {
    pub fn pin(secret: &[u8], max_tries: u8) -> Self {
        Body::Pin {
            secret: Zeroizing::new(secret.to_vec()),
            max_tries,
            left: max_tries,
        }
    }
}

/// One EF of an application.
#[derive(Clone)]
pub struct Ef {
    pub id: u16,
    /// PIN EFs of the same application, any one of which opens this file. Empty: free.
    pub opened_by: Vec<u16>,
    pub body: Body,
}

impl Ef {
    pub fn free(id: u16, content: Vec<u8>) -> Self {
        Ef {
            id,
            opened_by: Vec::new(),
            body: Body::Binary(content),
        }
    }
    pub fn guarded(id: u16, opened_by: &[u16], body: Body) -> Self {
        Ef {
            id,
            opened_by: opened_by.to_vec(),
            body,
        }
    }
}

/// One application (DF) of the card.
#[derive(Clone)]
pub struct App {
    pub aid: [u8; 10],
    pub files: Vec<Ef>,
    /// The application's own signing key, used by `80 2A 00 00` with no credential.
    pub own_key: Option<u16>,
    /// A deactivated application (for example a suspended JPKI certificate): SELECT answers
    /// `6283` and does not select it. The status word is ISO 7816-4's "selected file
    /// deactivated"; the reference records no trace of a real blocked card, so this is assumed.
    pub deactivated: bool,
}

impl App {
    fn file(&self, id: u16) -> Option<&Ef> {
        self.files.iter().find(|f| f.id == id)
    }
}

/// An emulated card: applications, retry counters (which persist across power cycles) and the
/// volatile selection and security state. Cloning copies the counters and state too.
#[derive(Clone)]
pub struct Card {
    apps: Vec<App>,
    current_app: Option<usize>,
    current_ef: Option<u16>,
    /// PIN EFs of the current application verified since it was selected.
    verified: HashSet<u16>,
}

impl Card {
    /// A card with the given applications; `profile::CardProfile::build` makes the usual set.
    pub fn with_apps(apps: Vec<App>) -> Self {
        Card {
            apps,
            current_app: None,
            current_ef: None,
            verified: HashSet::new(),
        }
    }

    /// Power off and on (card removed, or reader reset with power-down): selection and security
    /// status are lost; retry counters are not.
    pub fn power_cycle(&mut self) -> &'static [u8] {
        self.current_app = None;
        self.current_ef = None;
        self.verified.clear();
        &ATR
    }

    /// Deactivates (or reactivates) the application with this AID.
    pub fn set_deactivated(&mut self, aid: &[u8], deactivated: bool) {
        for app in self.apps.iter_mut().filter(|a| a.aid == aid) {
            app.deactivated = deactivated;
        }
    }

    /// Remaining tries of a PIN EF of an application.
    pub fn tries_left(&self, aid: &[u8], pin: u16) -> Option<u8> {
        let app = self.apps.iter().find(|a| a.aid == aid)?;
        match app.file(pin)?.body {
            Body::Pin { left, .. } => Some(left),
            _ => None,
        }
    }

    /// All retry counters, in a fixed order: for property tests of the counters.
    pub fn counters(&self) -> Vec<u8> {
        self.apps
            .iter()
            .flat_map(|a| a.files.iter())
            .filter_map(|f| match f.body {
                Body::Pin { left, .. } => Some(left),
                _ => None,
            })
            .collect()
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

    fn app(&self) -> Result<&App, u16> {
        self.current_app
            .and_then(|i| self.apps.get(i))
            .ok_or(sw::FILE_NOT_FOUND)
    }

    fn file(&self, id: u16) -> Result<&Ef, u16> {
        self.app()?.file(id).ok_or(sw::FILE_NOT_FOUND)
    }

    /// The EF a command names: by short EF id when the given P1/P2 byte has b8 set, else the
    /// current EF. Naming by SFI makes it current.
    fn target(&mut self, sfi_byte: u8) -> Result<u16, u16> {
        self.app()?;
        if sfi_byte & 0x80 != 0 && sfi_byte & 0x1F != 0 {
            let id = u16::from(sfi_byte & 0x1F);
            self.file(id)?;
            self.current_ef = Some(id);
            Ok(id)
        } else {
            self.current_ef.ok_or(sw::NO_CURRENT_EF)
        }
    }

    /// Refuses use of `file` until one of the PINs guarding it has been verified.
    fn check_access(&self, file: &Ef) -> Result<(), u16> {
        if file.opened_by.is_empty() || file.opened_by.iter().any(|p| self.verified.contains(p)) {
            Ok(())
        } else {
            Err(sw::SECURITY_STATUS_NOT_SATISFIED)
        }
    }

    fn select(&mut self, c: &Command<'_>) -> Result<Response, u16> {
        match (c.p1, c.p2) {
            (0x04, 0x0C) => {
                let index = self
                    .apps
                    .iter()
                    .position(|a| a.aid == c.data)
                    .ok_or(sw::FILE_NOT_FOUND)?;
                if self.apps.get(index).is_some_and(|a| a.deactivated) {
                    return Err(sw::FILE_DEACTIVATED);
                }
                // Selecting another application clears the security status; re-selecting the
                // same one keeps it (reference §6, JICSAP 5.1.3).
                if self.current_app != Some(index) {
                    self.verified.clear();
                }
                self.current_app = Some(index);
                self.current_ef = None;
                Ok(Response::status(sw::OK))
            }
            (0x02, 0x0C) => {
                let [hi, lo] = c.data else {
                    return Err(sw::WRONG_LENGTH);
                };
                let id = u16::from_be_bytes([*hi, *lo]);
                self.file(id)?;
                self.current_ef = Some(id);
                Ok(Response::status(sw::OK))
            }
            // No usable MF: `00 A4 00 00` is refused (reference §1).
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
        let file = self.file(id)?;
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
        let app = self
            .current_app
            .and_then(|i| self.apps.get_mut(i))
            .ok_or(sw::FILE_NOT_FOUND)?;
        let file = app
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
        if c.p1 != 0x00 {
            return Err(sw::WRONG_P1_P2);
        }
        // P2 = 00: the application's own key, no credential. Otherwise a key EF by SFI or the
        // current EF.
        let id = if c.p2 == 0x00 {
            self.app()?.own_key.ok_or(sw::WRONG_P1_P2)?
        } else if c.p2 & 0x80 != 0 {
            self.target(c.p2)?
        } else {
            return Err(sw::WRONG_P1_P2);
        };
        let file = self.file(id)?;
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
