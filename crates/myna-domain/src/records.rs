//! Claims-based medical records the provider holds per person.
//!
//! Every record has a `service_date` (when care happened) and an `available_on` date (when the
//! data reached the provider). Claims arrive about a month late; the summary shows nothing whose
//! `available_on` is after today, which is how the claims lag shows up for the crew.

use crate::codes::{ReceiptDrugCode, YjCode};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// レセプト (claims) from 支払基金 / 国保中央会.
    Claims,
    /// 電子処方箋管理サービス, dispensing part; near real time.
    EPrescription,
    /// 特定健診 results reported by the insurer.
    Insurer,
}

impl Source {
    pub fn label_ja(self) -> &'static str {
        match self {
            Source::Claims => "レセプト",
            Source::EPrescription => "電子処方箋",
            Source::Insurer => "保険者（特定健診）",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Claims => "claims",
            Source::EPrescription => "e_prescription",
            Source::Insurer => "insurer",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "claims" => Some(Source::Claims),
            "e_prescription" => Some(Source::EPrescription),
            "insurer" => Some(Source::Insurer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InstitutionKind {
    Hospital,
    Clinic,
    Pharmacy,
}

/// 保険医療機関・保険薬局.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Institution {
    /// 医療機関番号, 10 digits.
    pub code: String,
    pub name: String,
    pub kind: InstitutionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CareSetting {
    Outpatient,
    Inpatient,
}

/// 受診歴 (visit history): one claims month at one institution, or one admission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Visit {
    pub service_date: NaiveDate,
    pub available_on: NaiveDate,
    pub institution: Institution,
    /// 診療科.
    pub department: String,
    pub setting: CareSetting,
    pub source: Source,
}

/// The drug as dispensed, with the codes claims and e-prescriptions carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrugRef {
    pub yj: YjCode,
    pub receipt_code: Option<ReceiptDrugCode>,
    /// Product name as dispensed (brand or generic name with strength).
    pub name: String,
    pub generic_name: String,
    /// 規格 (strength per unit), e.g. "5mg".
    pub strength: String,
}

/// 薬剤情報 (dispensing), from claims or from the e-prescription service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dispensing {
    pub service_date: NaiveDate,
    pub available_on: NaiveDate,
    pub drug: DrugRef,
    /// Quantity per day in `unit` (e.g. 2 錠).
    pub daily_quantity: f64,
    pub unit: String,
    /// 投与日数 (days supplied).
    pub days: u32,
    pub prescriber: Institution,
    pub pharmacy: Option<Institution>,
    pub source: Source,
}

impl Dispensing {
    /// Last day covered by the supply.
    pub fn supply_end(&self) -> NaiveDate {
        self.service_date
            .checked_add_days(chrono::Days::new(u64::from(self.days.max(1)) - 1))
            .unwrap_or(NaiveDate::MAX)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProcedureKind {
    /// 手術.
    Surgery,
    /// 診療 (other claimed procedures and care).
    Procedure,
}

/// 手術情報 / 診療情報: a claimed procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Procedure {
    pub service_date: NaiveDate,
    pub available_on: NaiveDate,
    pub kind: ProcedureKind,
    /// 診療行為コード (9 digits).
    pub code: String,
    pub name: String,
    pub institution: Institution,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DialysisModality {
    /// 血液透析.
    Hemodialysis,
    /// 腹膜透析.
    Peritoneal,
}

/// 透析情報: one claims month of dialysis at one institution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dialysis {
    pub service_date: NaiveDate,
    pub available_on: NaiveDate,
    pub modality: DialysisModality,
    /// Sessions in the claims month.
    pub sessions: u32,
    pub institution: Institution,
    pub source: Source,
}

/// 特定健診 (specific health check) main values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthCheck {
    pub service_date: NaiveDate,
    pub available_on: NaiveDate,
    pub height_cm: f64,
    pub weight_kg: f64,
    pub systolic_mmhg: u16,
    pub diastolic_mmhg: u16,
    pub hba1c_percent: Option<f64>,
    pub ldl_mg_dl: Option<u16>,
    pub egfr: Option<f64>,
    pub urine_protein: String,
    pub source: Source,
}

impl HealthCheck {
    pub fn bmi(&self) -> f64 {
        let m = self.height_cm / 100.0;
        if m <= 0.0 {
            return 0.0;
        }
        (self.weight_kg / (m * m) * 10.0).round() / 10.0
    }
}

/// Longest supply a single dispensing may cover (days). Stores read dispensings back this far
/// before a drug window, so a longer one could hide an active drug; loads refuse it.
pub const MAX_SUPPLY_DAYS: u32 = 180;

/// Why a record set cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{record} on {date}: {problem}")]
pub struct RecordError {
    pub record: &'static str,
    pub date: NaiveDate,
    pub problem: String,
}

/// Everything the provider holds for one person within the windows a query asked for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MedicalRecords {
    pub visits: Vec<Visit>,
    pub dispensings: Vec<Dispensing>,
    pub procedures: Vec<Procedure>,
    pub dialysis: Vec<Dialysis>,
    pub health_checks: Vec<HealthCheck>,
}

impl MedicalRecords {
    /// Checks what the rules rely on: data never arrives before the care it describes, and a
    /// dispensing supplies 1 to `MAX_SUPPLY_DAYS` days.
    pub fn check(&self) -> Result<(), RecordError> {
        let dates = self
            .visits
            .iter()
            .map(|v| ("visit", v.service_date, v.available_on))
            .chain(
                self.dispensings
                    .iter()
                    .map(|d| ("dispensing", d.service_date, d.available_on)),
            )
            .chain(
                self.procedures
                    .iter()
                    .map(|p| ("procedure", p.service_date, p.available_on)),
            )
            .chain(
                self.dialysis
                    .iter()
                    .map(|d| ("dialysis", d.service_date, d.available_on)),
            )
            .chain(
                self.health_checks
                    .iter()
                    .map(|h| ("health check", h.service_date, h.available_on)),
            );
        for (record, service, available) in dates {
            if available < service {
                return Err(RecordError {
                    record,
                    date: service,
                    problem: format!("available on {available}, before the care"),
                });
            }
        }
        for d in &self.dispensings {
            if d.days == 0 || d.days > MAX_SUPPLY_DAYS {
                return Err(RecordError {
                    record: "dispensing",
                    date: d.service_date,
                    problem: format!("{} days supplied; 1 to {MAX_SUPPLY_DAYS} allowed", d.days),
                });
            }
        }
        Ok(())
    }
}

/// An institution the patient visits (かかりつけ candidate), from the visits: the summary
/// groups by it and hospital selection prefers the most visited.
#[derive(Debug, Clone, PartialEq)]
pub struct Kakaritsuke {
    pub institution_code: String,
    pub last_visit: NaiveDate,
    pub visits: u32,
}
