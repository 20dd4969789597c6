//! The insured person and their coverage. The 12-digit My Number (個人番号) is never modelled.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Internal, opaque key of an insured person at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonId(pub i64);

/// Sex as coded on the card (JIS X 0303 / ISO 5218).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
    NotApplicable,
    Unknown,
}

impl Sex {
    pub fn code(self) -> u8 {
        match self {
            Sex::Unknown => 0,
            Sex::Male => 1,
            Sex::Female => 2,
            Sex::NotApplicable => 9,
        }
    }
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Sex::Unknown),
            1 => Some(Sex::Male),
            2 => Some(Sex::Female),
            9 => Some(Sex::NotApplicable),
            _ => None,
        }
    }
    pub fn label_ja(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
            Sex::NotApplicable => "適用不能",
            Sex::Unknown => "不明",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// 郵便番号, "210-0001" form.
    pub postal_code: String,
    pub prefecture: String,
    /// City and ward, e.g. 川崎市中原区.
    pub municipality: String,
    /// Town, block and building.
    pub street: String,
}

impl Address {
    pub fn one_line(&self) -> String {
        format!("{}{}{}", self.prefecture, self.municipality, self.street)
    }
}

/// 被保険者 (insured person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    /// Kanji name, family and given separated by U+3000.
    pub name: String,
    /// Full-width katakana reading, separated by U+3000.
    pub name_kana: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub address: Address,
    pub coverage: Coverage,
}

impl Person {
    /// Age in completed years on `today`.
    pub fn age_on(&self, today: NaiveDate) -> u32 {
        let mut years = today.year() - self.birth_date.year();
        if (today.month(), today.day()) < (self.birth_date.month(), self.birth_date.day()) {
            years -= 1;
        }
        u32::try_from(years).unwrap_or(0)
    }
}

/// 保険資格 (coverage): 保険者番号 and 被保険者証 記号・番号・枝番.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coverage {
    /// 保険者番号: 8 digits (6 for 国保).
    pub insurer_number: String,
    pub insurer_name: String,
    /// 記号.
    pub symbol: String,
    /// 番号.
    pub number: String,
    /// 枝番, 2 digits.
    pub branch: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_completed_years() {
        let p = Person {
            id: PersonId(1),
            name: "川崎　太郎".into(),
            name_kana: "カワサキ　タロウ".into(),
            birth_date: NaiveDate::from_ymd_opt(1980, 2, 17).unwrap(),
            sex: Sex::Male,
            address: Address {
                postal_code: "211-0004".into(),
                prefecture: "神奈川県".into(),
                municipality: "川崎市中原区".into(),
                street: "新丸子東1-1".into(),
            },
            coverage: Coverage {
                insurer_number: "06140012".into(),
                insurer_name: "synthetic".into(),
                symbol: "1".into(),
                number: "2".into(),
                branch: "00".into(),
            },
        };
        assert_eq!(p.age_on(NaiveDate::from_ymd_opt(2026, 2, 16).unwrap()), 45);
        assert_eq!(p.age_on(NaiveDate::from_ymd_opt(2026, 2, 17).unwrap()), 46);
    }

    #[test]
    fn sex_codes_round_trip() {
        for s in [Sex::Male, Sex::Female, Sex::NotApplicable, Sex::Unknown] {
            assert_eq!(Sex::from_code(s.code()), Some(s));
        }
        assert_eq!(Sex::from_code(3), None);
    }
}
