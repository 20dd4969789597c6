//! Hospitals, clinics and pharmacies of the synthetic Kawasaki.
//!
//! Hospitals are the registry's real Kawasaki emergency hospitals
//! (`myna_domain::hospitals::Registry`, from shared/reference/maina-kyukyu-facts.md §6.4), with
//! the registry's synthetic 医療機関番号, so a patient's かかりつけ in the claims is a hospital
//! the ranking knows. Every 医療機関番号 here is synthetic (digit 4 = 9 marks it), as are the
//! clinics and pharmacies.

use crate::names::WARDS;
use myna_domain::hospitals::Registry;
use myna_domain::records::{Institution, InstitutionKind};

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
    pub fn kawasaki(registry: &Registry) -> Self {
        let mut serial = 0usize;
        let mut next = || {
            serial += 1;
            serial
        };
        let wards = WARDS
            .iter()
            .map(|ward| {
                let hospitals = registry
                    .hospitals()
                    .iter()
                    .filter(|h| h.ward == ward.name)
                    .map(|h| Institution {
                        code: h.institution_code.clone(),
                        name: h.name.clone(),
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
