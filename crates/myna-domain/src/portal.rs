//! 閲覧履歴 (the patient's own access history), as マイナポータル shows it: the patient proves
//! they hold the card by having its JPKI user-authentication key sign a challenge from the
//! provider, and sees every access to their data by the organisation that made it, never the
//! individual.
//!
//! Pure: the message the card signs, its PKCS#1 DigestInfo, and what one access shows.

use crate::access::{AccessEntry, Consent};
use crate::summary::{View, Window, Windows};
use sha2::{Digest, Sha256};

/// Bytes of a challenge's random part.
pub const NONCE_LEN: usize = 32;

/// Tags the signed message, so a signature made here cannot be taken for one made for
/// another purpose of the same key (a TLS client authentication, another service's login).
const SIGN_IN_TAG: &[u8] = b"myna-kyukyu/patient-portal/sign-in/v1\0";

/// What the card signs for a sign-in: the tag, then the provider's challenge as issued.
pub fn signed_message(challenge: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_IN_TAG.len() + challenge.len());
    m.extend_from_slice(SIGN_IN_TAG);
    m.extend_from_slice(challenge);
    m
}

/// DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The SHA-256 DigestInfo of `message`: what the card pads (PKCS#1 v1.5, type 1) and signs
/// with `80 2A 00 80+SFI`. A verifier of sha256WithRSAEncryption over `message` accepts it.
pub fn sha256_digest_info(message: &[u8]) -> [u8; 51] {
    let mut out = [0u8; 51];
    out[..19].copy_from_slice(&SHA256_DIGEST_INFO_PREFIX);
    out[19..].copy_from_slice(&Sha256::digest(message));
    out
}

/// A section of the medical information an access read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// 受診歴.
    Visits,
    /// 薬剤情報 (claims).
    Drugs,
    /// 電子処方箋の調剤.
    EPrescriptions,
    /// 手術.
    Surgeries,
    /// 診療行為.
    Procedures,
    /// 透析.
    Dialysis,
    /// 特定健診.
    HealthChecks,
}

impl Section {
    pub fn label_ja(self) -> &'static str {
        match self {
            Section::Visits => "受診歴",
            Section::Drugs => "薬剤情報",
            Section::EPrescriptions => "電子処方箋の調剤",
            Section::Surgeries => "手術",
            Section::Procedures => "診療行為",
            Section::Dialysis => "透析",
            Section::HealthChecks => "特定健診",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Section::Visits => "visits",
            Section::Drugs => "medicines",
            Section::EPrescriptions => "e-prescription dispensings",
            Section::Surgeries => "surgeries",
            Section::Procedures => "procedures",
            Section::Dialysis => "dialysis",
            Section::HealthChecks => "health checks",
        }
    }
}

/// The sections a view reads and how far back each goes: what the patient is told was read.
pub fn sections(view: View) -> [(Section, Window); 7] {
    let w = Windows::for_view(view);
    [
        (Section::Visits, w.visits),
        (Section::Drugs, w.claims_drugs),
        (Section::EPrescriptions, w.e_prescriptions),
        (Section::Surgeries, w.surgeries),
        (Section::Procedures, w.procedures),
        (Section::Dialysis, w.dialysis),
        (Section::HealthChecks, w.health_checks),
    ]
}

/// How far back a window reaches, in words.
pub fn window_ja(w: Window) -> String {
    match w {
        Window::Months(m) if m % 12 == 0 => format!("{}年", m / 12),
        Window::Months(m) => format!("{m}か月"),
        Window::Days(d) => format!("{d}日"),
        Window::Rounds(n) => format!("直近{n}回"),
    }
}

pub fn window_en(w: Window) -> String {
    let plural = |n: u32, one: &str| {
        if n == 1 {
            one.to_owned()
        } else {
            format!("{one}s")
        }
    };
    match w {
        Window::Months(m) if m % 12 == 0 => format!("{} {}", m / 12, plural(m / 12, "year")),
        Window::Months(m) => format!("{m} {}", plural(m, "month")),
        Window::Days(d) => format!("{d} {}", plural(d, "day")),
        Window::Rounds(n) => format!("latest {n}"),
    }
}

/// One access as the patient sees it: when, which organisation, consent or the exception,
/// which view. The team, the crew member (or the hospital's staff member), the incident and
/// the serial stay at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenAccess {
    /// When the data was read: for a hospital's read, when its staff read the copy.
    pub at_ms: i64,
    /// The organisation that obtained the data (for a hospital's read, the bureau whose
    /// crew passed it on).
    pub organisation_id: String,
    /// The hospital that read the crew's copy, by name, when the entry is such a read.
    pub hospital: Option<String>,
    pub consent: Consent,
    pub view: View,
}

impl SeenAccess {
    pub fn of(entry: &AccessEntry) -> Self {
        SeenAccess {
            at_ms: entry
                .hospital_read
                .as_ref()
                .map_or(entry.at_ms, |r| r.read_at_ms),
            organisation_id: entry.organisation_id.clone(),
            hospital: entry
                .hospital_read
                .as_ref()
                .map(|r| r.hospital_name.clone()),
            consent: entry.consent,
            view: entry.view,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_info_is_the_der_of_sha256_over_the_message() {
        let m = signed_message(b"challenge");
        let di = sha256_digest_info(&m);
        // SEQUENCE { SEQUENCE { OID 2.16.840.1.101.3.4.2.1, NULL }, OCTET STRING (32) }
        assert_eq!(di[0], 0x30);
        assert_eq!(usize::from(di[1]), di.len() - 2);
        assert_eq!(&di[4..6], &[0x06, 0x09]);
        assert_eq!(&di[17..19], &[0x04, 0x20]);
        assert_eq!(&di[19..], Sha256::digest(&m).as_slice());
    }

    #[test]
    fn the_message_is_tagged_so_a_bare_challenge_signs_differently() {
        let c = [7u8; NONCE_LEN];
        assert_ne!(signed_message(&c), c.to_vec());
        assert!(signed_message(&c).ends_with(&c));
        assert_ne!(signed_message(&c), signed_message(&[8u8; NONCE_LEN]));
    }

    #[test]
    fn the_full_view_reads_the_same_sections_further_back() {
        let s = sections(View::Summary);
        let f = sections(View::Full);
        assert_eq!(
            s.map(|(sec, _)| sec),
            f.map(|(sec, _)| sec),
            "both views read every section"
        );
        assert_eq!(window_ja(s[0].1), "3か月");
        assert_eq!(window_ja(f[0].1), "5年");
        assert_eq!(window_en(f[0].1), "5 years");
        assert_eq!(window_ja(s[6].1), "直近1回");
        assert_eq!(window_en(s[2].1), "45 days");
    }
}
