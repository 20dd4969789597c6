//! Japanese code systems used in claims data and their FHIR JP Core URIs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// FHIR URIs of the code and identifier systems this service emits (JP Core 1.2.0 URL forms).
pub mod uri {
    pub const YJ: &str = "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code";
    /// レセプト電算 医薬品コード; JP Core has no URL yet, so the OID form is used.
    pub const RECEIPT_DRUG: &str = "urn:oid:1.2.392.100495.20.2.71";
    pub const RECEIPT_PROCEDURE: &str =
        "http://jpfhir.jp/fhir/core/CodeSystem/JP_ProcedureCodesMedical_CS";
    pub const INSURER_NUMBER: &str = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsurerNumber";
    pub const INSURED_SYMBOL: &str = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonSymbol";
    pub const INSURED_NUMBER: &str = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/InsuredPersonNumber";
    pub const MEDICAL_INSTITUTION_NO: &str =
        "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no";
    pub const SPECIFIC_HEALTH_CHECK_ITEM: &str = "urn:oid:1.2.392.200119.6.1005";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error(
        "YJ code must be 12 characters: 7 digits, a form letter, then 4 digits or capitals; got {0:?}"
    )]
    Yj(String),
    #[error("YJ code {code:?} fails its check digit: its 12th character would be {expected}")]
    YjCheckDigit { code: String, expected: char },
    #[error("レセ電 drug code must be 9 digits; got {0:?}")]
    ReceiptDrug(String),
    #[error("medical institution number must be 10 digits; got {0:?}")]
    Institution(String),
}

/// 個別医薬品コード (YJ code): 4-digit 薬効分類, 3-digit ingredient and route, form letter,
/// strength digit, 2 brand characters and a check character.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct YjCode(String);

/// The YJ code's check digit over its first 11 characters. Letters count A–I = 1–9, J–R = 1–9,
/// S–Z = 2–9; weights 2, 3, 4, 5, 6, 7, 2, … from the right; the digit is 11 minus the sum
/// mod 11, with 10 and 11 written 0. Empirical: no published text states it, and it holds for
/// every one of the master's distinct codes (`myna-drug-master`'s tests check them all).
pub fn yj_check_digit(first11: &[u8]) -> Option<u8> {
    if first11.len() != 11 {
        return None;
    }
    let mut sum: u32 = 0;
    for (i, c) in first11.iter().rev().enumerate() {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'I' => c - b'A' + 1,
            b'J'..=b'R' => c - b'J' + 1,
            b'S'..=b'Z' => c - b'S' + 2,
            _ => return None,
        };
        let weight = [2, 3, 4, 5, 6, 7][i % 6];
        sum += u32::from(v) * weight;
    }
    let d = 11 - (sum % 11);
    Some(if d >= 10 { 0 } else { u8::try_from(d).ok()? })
}

impl YjCode {
    /// Checks the shape (7 digits, the dosage-form letter, 4 more characters) and the check
    /// digit (`yj_check_digit`).
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        let b = s.as_bytes();
        let shaped = b.len() == 12
            && b[..7].iter().all(u8::is_ascii_digit)
            && b[7].is_ascii_uppercase()
            && b[8..]
                .iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
        if !shaped {
            return Err(CodeError::Yj(s.to_owned()));
        }
        match yj_check_digit(&b[..11]) {
            Some(d) if b[11] == b'0' + d => Ok(Self(s.to_owned())),
            Some(d) => Err(CodeError::YjCheckDigit {
                code: s.to_owned(),
                expected: char::from(b'0' + d),
            }),
            None => Err(CodeError::Yj(s.to_owned())),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// 薬効分類 (therapeutic class), the first 4 digits.
    pub fn class4(&self) -> &str {
        &self.0[..4]
    }
    /// Ingredient and route, the first 7 characters.
    pub fn ingredient7(&self) -> &str {
        &self.0[..7]
    }
    /// The 3-digit ingredient number; 001–399 oral, 400–699 injection, 700–999 external.
    pub fn route(&self) -> Route {
        Self::route_of_ingredient(&self.0[..7]).unwrap_or(Route::Oral)
    }

    /// The route of a 7-digit ingredient code, by the same ranges; `None` if it is not one.
    pub fn route_of_ingredient(ingredient: &str) -> Option<Route> {
        let n: u16 = ingredient.get(4..7)?.parse().ok()?;
        Some(match n {
            400..=699 => Route::Injection,
            700..=999 => Route::External,
            _ => Route::Oral,
        })
    }
}

impl TryFrom<String> for YjCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, CodeError> {
        Self::parse(&s)
    }
}
impl From<YjCode> for String {
    fn from(c: YjCode) -> String {
        c.0
    }
}
impl fmt::Display for YjCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Oral,
    Injection,
    External,
}

/// レセプト電算処理システム 医薬品コード (9 digits), the code claims data carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct ReceiptDrugCode(String);

impl ReceiptDrugCode {
    pub fn parse(s: &str) -> Result<Self, CodeError> {
        if s.len() == 9 && s.bytes().all(|c| c.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(CodeError::ReceiptDrug(s.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for ReceiptDrugCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, CodeError> {
        Self::parse(&s)
    }
}
impl From<ReceiptDrugCode> for String {
    fn from(c: ReceiptDrugCode) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn yj_parts() {
        let c = YjCode::parse("2456001F1310").unwrap();
        assert_eq!(c.class4(), "2456");
        assert_eq!(c.ingredient7(), "2456001");
        assert_eq!(c.route(), Route::Oral);
        assert_eq!(
            YjCode::parse("2492416G2024").unwrap().route(),
            Route::Injection
        );
        assert_eq!(
            YjCode::parse("2646713M1136").unwrap().route(),
            Route::External
        );
    }

    #[test]
    fn yj_rejects_malformed() {
        for bad in [
            "",
            "2456001F131",
            "2456001f1310",
            "24560O1F1310",
            "2456001F13100",
            // The right shape with a wrong check digit.
            "2456001F1311",
            "3332001F1084",
        ] {
            assert!(YjCode::parse(bad).is_err(), "{bad}");
        }
        // A wrong check digit says so, with the one that fits.
        assert_eq!(
            YjCode::parse("2456001F1311"),
            Err(CodeError::YjCheckDigit {
                code: "2456001F1311".into(),
                expected: '0'
            })
        );
    }

    #[test]
    fn the_check_digit_follows_the_masters_rule() {
        // Real codes with letters in the weighted part (M, Q, G) and a remainder giving 0.
        for good in [
            "2646713M1136",
            "3332001F1083",
            "2492416G2024",
            "2456001F1310",
        ] {
            let b = good.as_bytes();
            assert_eq!(yj_check_digit(&b[..11]), Some(b[11] - b'0'), "{good}");
        }
        assert_eq!(yj_check_digit(b"short"), None);
        assert_eq!(yj_check_digit(b"2456001f131"), None);
    }

    proptest! {
        #[test]
        fn yj_parse_never_panics(s in ".{0,20}") {
            let _ = YjCode::parse(&s);
            let _ = ReceiptDrugCode::parse(&s);
        }
    }
}
