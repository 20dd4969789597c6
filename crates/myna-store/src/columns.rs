//! How domain values are stored as column text, and the reference names that records' codes
//! are looked up in. One place for every backend, so a SQLite row and a PostgreSQL row mean
//! the same thing.

use crate::StoreError;
use chrono::NaiveDate;
use myna_domain::codes::YjCode;
use myna_domain::records::{
    CareSetting, DialysisModality, Dispensing, DrugRef, Institution, InstitutionKind,
    ProcedureKind, Source,
};
use std::collections::HashMap;

pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub fn date(s: &str) -> Result<NaiveDate, StoreError> {
    s.parse().map_err(|_| corrupt(format!("bad date {s:?}")))
}

/// The claims date an access reports, from `dataset_info.claims_through`. A stored value that
/// is not a date is reported as unknown, as a missing one is (the summary shows 不明), and
/// logged as an error: a bad label must not refuse every crew's summary, nor stop the store
/// from opening for a revocation. `dataset_info` reports it as corrupt data.
pub fn claims_date_for_access(stored: Option<&str>) -> Option<NaiveDate> {
    let value = stored?;
    match value.parse() {
        Ok(d) => Some(d),
        Err(_) => {
            tracing::error!(
                value,
                "dataset_info.claims_through is not a date; accesses report the claims date as unknown"
            );
            None
        }
    }
}

pub fn source(s: &str) -> Result<Source, StoreError> {
    Source::parse(s).ok_or_else(|| corrupt(format!("bad source {s:?}")))
}

pub fn institution_kind_str(k: InstitutionKind) -> &'static str {
    match k {
        InstitutionKind::Hospital => "hospital",
        InstitutionKind::Clinic => "clinic",
        InstitutionKind::Pharmacy => "pharmacy",
    }
}

pub fn institution_kind(s: &str) -> Result<InstitutionKind, StoreError> {
    match s {
        "hospital" => Ok(InstitutionKind::Hospital),
        "clinic" => Ok(InstitutionKind::Clinic),
        "pharmacy" => Ok(InstitutionKind::Pharmacy),
        _ => Err(corrupt(format!("bad institution kind {s:?}"))),
    }
}

pub fn care_setting_str(s: CareSetting) -> &'static str {
    match s {
        CareSetting::Outpatient => "outpatient",
        CareSetting::Inpatient => "inpatient",
    }
}

pub fn care_setting(s: &str) -> Result<CareSetting, StoreError> {
    match s {
        "inpatient" => Ok(CareSetting::Inpatient),
        "outpatient" => Ok(CareSetting::Outpatient),
        other => Err(corrupt(format!("bad setting {other:?}"))),
    }
}

pub fn procedure_kind_str(k: ProcedureKind) -> &'static str {
    match k {
        ProcedureKind::Surgery => "surgery",
        ProcedureKind::Procedure => "procedure",
    }
}

pub fn procedure_kind(s: &str) -> Result<ProcedureKind, StoreError> {
    match s {
        "surgery" => Ok(ProcedureKind::Surgery),
        "procedure" => Ok(ProcedureKind::Procedure),
        other => Err(corrupt(format!("bad procedure kind {other:?}"))),
    }
}

pub fn dialysis_modality_str(m: DialysisModality) -> &'static str {
    match m {
        DialysisModality::Hemodialysis => "hemodialysis",
        DialysisModality::Peritoneal => "peritoneal",
    }
}

pub fn dialysis_modality(s: &str) -> Result<DialysisModality, StoreError> {
    match s {
        "hemodialysis" => Ok(DialysisModality::Hemodialysis),
        "peritoneal" => Ok(DialysisModality::Peritoneal),
        other => Err(corrupt(format!("bad dialysis modality {other:?}"))),
    }
}

/// Reference names by code: institutions, drugs by YJ code, and products by レセ電 code
/// (`drug_product`). A backend fills what it needs and reads records' names through it.
#[derive(Debug, Default, Clone)]
pub struct Masters {
    pub institutions: HashMap<String, Institution>,
    pub drugs: HashMap<String, DrugRef>,
    pub products: HashMap<String, DrugRef>,
}

impl Masters {
    /// The institution, or a placeholder named by its code when the master lacks it.
    pub fn institution(&self, code: &str) -> Institution {
        self.institutions
            .get(code)
            .cloned()
            .unwrap_or_else(|| Institution {
                code: code.to_owned(),
                name: format!("医療機関 {code}"),
                kind: InstitutionKind::Clinic,
            })
    }

    /// The dispensed product: by its レセ電 code when the record has one, else by YJ code.
    pub fn dispensed(&self, yj: &str, receipt: Option<&str>) -> Result<DrugRef, StoreError> {
        match receipt.and_then(|r| self.products.get(r)) {
            Some(d) => Ok(d.clone()),
            None => self.drug(yj),
        }
    }

    /// The drug by YJ code, or a placeholder named by its code.
    pub fn drug(&self, yj: &str) -> Result<DrugRef, StoreError> {
        match self.drugs.get(yj) {
            Some(d) => Ok(d.clone()),
            None => Ok(DrugRef {
                yj: YjCode::parse(yj).map_err(corrupt)?,
                receipt_code: None,
                name: format!("医薬品 {yj}"),
                generic_name: String::new(),
                strength: String::new(),
            }),
        }
    }
}

/// One レセ電 code is one product: a dispensing naming a known code with another product is
/// bad input, not a rename, and the whole load is refused.
pub fn product_conflict(person: i64, d: &Dispensing, known: &DrugRef) -> Option<StoreError> {
    let receipt = d.drug.receipt_code.as_ref()?;
    (known != &d.drug).then(|| StoreError::InvalidRecord {
        person,
        problem: format!(
            "drug {} is {:?} ({}) here but {:?} ({}) in an earlier record",
            receipt.as_str(),
            d.drug.name,
            d.drug.yj.as_str(),
            known.name,
            known.yj.as_str()
        ),
    })
}

/// The five hospital-read columns of an access-log row: all set for a hospital's read, all
/// NULL for a crew's access; anything between is unreadable.
pub fn hospital_read(
    source_access_id: Option<i64>,
    institution_code: Option<String>,
    hospital_name: Option<String>,
    read_at_ms: Option<i64>,
    ems_view_seq: Option<i64>,
) -> Result<Option<myna_domain::access::HospitalRead>, String> {
    match (
        source_access_id,
        institution_code,
        hospital_name,
        read_at_ms,
        ems_view_seq,
    ) {
        (None, None, None, None, None) => Ok(None),
        (
            Some(source_access_id),
            Some(institution_code),
            Some(hospital_name),
            Some(read_at_ms),
            Some(ems_view_seq),
        ) => Ok(Some(myna_domain::access::HospitalRead {
            source_access_id,
            institution_code,
            hospital_name,
            read_at_ms,
            ems_view_seq,
        })),
        _ => Err("hospital read is partly recorded".into()),
    }
}
