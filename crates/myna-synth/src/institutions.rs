//! Hospitals, clinics and pharmacies of the synthetic Kawasaki.
//!
//! Hospital names are real Kawasaki emergency hospitals (shared/reference/maina-kyukyu-facts.md
//! §6.4); every 医療機関番号 here is synthetic (digit 4 = 9 marks it), as are clinics and pharmacies.

use crate::names::WARDS;
use myna_domain::records::{Institution, InstitutionKind};

/// (name, ward)
const HOSPITALS: &[(&str, &str)] = &[
    ("川崎市立川崎病院", "川崎区"),
    ("川崎協同病院", "川崎区"),
    ("川崎幸病院", "幸区"),
    ("日本医科大学武蔵小杉病院", "中原区"),
    ("関東労災病院", "中原区"),
    ("川崎市立井田病院", "中原区"),
    ("帝京大学医学部附属溝口病院", "高津区"),
    ("総合高津中央病院", "高津区"),
    ("聖マリアンナ医科大学病院", "宮前区"),
    ("川崎市立多摩病院", "多摩区"),
    ("麻生総合病院", "麻生区"),
    ("新百合ケ丘総合病院", "麻生区"),
];

/// Clinic specialities (name suffix, department).
pub const CLINIC_KINDS: &[(&str, &str)] = &[
    ("内科クリニック", "内科"),
    ("整形外科", "整形外科"),
    ("眼科", "眼科"),
    ("メンタルクリニック", "精神科"),
    ("透析クリニック", "腎臓内科"),
];

#[derive(Debug, Clone)]
pub struct WardInstitutions {
    pub hospitals: Vec<Institution>,
    /// Indexed like `CLINIC_KINDS`: one list per speciality, one clinic per town.
    pub clinics: Vec<Vec<Institution>>,
    pub pharmacies: Vec<Institution>,
}

#[derive(Debug, Clone)]
pub struct Institutions {
    /// Indexed like `names::WARDS`.
    pub wards: Vec<WardInstitutions>,
}

fn code(kind_digit: u8, serial: usize) -> String {
    format!("14{kind_digit}9{serial:06}")
}

impl Institutions {
    pub fn kawasaki() -> Self {
        let mut serial = 0usize;
        let mut next = || {
            serial += 1;
            serial
        };
        let wards = WARDS
            .iter()
            .map(|ward| {
                let hospitals = HOSPITALS
                    .iter()
                    .filter(|(_, w)| *w == ward.name)
                    .map(|(name, _)| Institution {
                        code: code(1, next()),
                        name: (*name).to_owned(),
                        kind: InstitutionKind::Hospital,
                    })
                    .collect();
                let clinics = CLINIC_KINDS
                    .iter()
                    .map(|(suffix, _)| {
                        ward.towns
                            .iter()
                            .map(|(town, _)| Institution {
                                code: code(1, next()),
                                name: format!("{town}{suffix}"),
                                kind: InstitutionKind::Clinic,
                            })
                            .collect()
                    })
                    .collect();
                let pharmacies = ward
                    .towns
                    .iter()
                    .map(|(town, _)| Institution {
                        code: code(4, next()),
                        name: format!("{town}調剤薬局"),
                        kind: InstitutionKind::Pharmacy,
                    })
                    .collect();
                WardInstitutions {
                    hospitals,
                    clinics,
                    pharmacies,
                }
            })
            .collect();
        Self { wards }
    }
}
