//! Emergency alert classes: which dispensed drugs and records should be shown first.
//!
//! The rules live in the versioned data file `data/alerts.toml`, not in code. A drug matches a
//! class when its YJ code starts with one of the class's prefixes or its 7-character ingredient
//! code is on the class's allow-list, unless an exclusion prefix matches or its route is not one
//! the class counts (topical steroids, for example, are not systemic steroids).

use crate::codes::{Route, YjCode};
use crate::records::{MedicalRecords, ProcedureKind, Source};
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

const ALERT_TABLE_TOML: &str = include_str!("../data/alerts.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertClass {
    pub id: String,
    pub label_ja: String,
    pub label_en: String,
    /// Why the crew cares, in one line.
    pub why_ja: String,
    pub why_en: String,
    #[serde(default)]
    pub yj_prefixes: Vec<String>,
    /// 7-character YJ ingredient codes, for classes that share a 4-digit 薬効分類 with other drugs.
    #[serde(default)]
    pub ingredients: Vec<String>,
    /// YJ prefixes (any length) that never match this class.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Routes that count; empty means all.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The class also fires on any 透析 record in the alert window.
    #[serde(default)]
    pub dialysis_records: bool,
    /// The class fires on a 手術 within this many days.
    #[serde(default)]
    pub surgery_within_days: Option<u32>,
}

/// Which rule of a class put a drug in it: the first matching prefix, else the ingredient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchedRule<'a> {
    Prefix(&'a str),
    Ingredient(&'a str),
}

impl std::fmt::Display for MatchedRule<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchedRule::Prefix(p) => write!(f, "prefix {p}"),
            MatchedRule::Ingredient(i) => write!(f, "ingredient {i}"),
        }
    }
}

impl AlertClass {
    pub fn matches_drug(&self, yj: &YjCode) -> bool {
        self.matched_rule(yj).is_some()
    }

    /// The rule that puts `yj` in this class, if any (after exclusions and routes).
    pub fn matched_rule(&self, yj: &YjCode) -> Option<MatchedRule<'_>> {
        let code = yj.as_str();
        if self.exclude.iter().any(|p| code.starts_with(p.as_str())) {
            return None;
        }
        if !self.routes.is_empty() && !self.routes.contains(&yj.route()) {
            return None;
        }
        self.yj_prefixes
            .iter()
            .find(|p| code.starts_with(p.as_str()))
            .map(|p| MatchedRule::Prefix(p))
            .or_else(|| {
                self.ingredients
                    .iter()
                    .find(|i| *i == yj.ingredient7())
                    .map(|i| MatchedRule::Ingredient(i))
            })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTable {
    pub version: String,
    pub source: String,
    /// Claims: a drug counts when its supply reaches into this many months before today.
    pub claims_drug_window_months: u32,
    /// E-prescriptions: the same, in days.
    pub e_prescription_window_days: u32,
    #[serde(rename = "class")]
    pub classes: Vec<AlertClass>,
}

#[derive(Debug, thiserror::Error)]
pub enum AlertTableError {
    #[error("alert table is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("alert class {0:?} appears twice")]
    DuplicateClass(String),
    #[error("alert class {class:?}: {problem}")]
    BadRule { class: String, problem: String },
}

/// One alert on the summary, with the records that raised it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub class: String,
    pub label_ja: String,
    pub label_en: String,
    pub why_ja: String,
    pub why_en: String,
    pub evidence: Vec<AlertEvidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvidence {
    pub text: String,
    pub code: Option<String>,
    pub service_date: NaiveDate,
    pub source: Source,
}

impl AlertTable {
    /// The table compiled into the binary.
    pub fn builtin() -> Result<Self, AlertTableError> {
        Self::from_toml(ALERT_TABLE_TOML)
    }

    pub fn from_toml(text: &str) -> Result<Self, AlertTableError> {
        let table: AlertTable = toml::from_str(text)?;
        table.validate()?;
        Ok(table)
    }

    fn validate(&self) -> Result<(), AlertTableError> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.classes {
            if !seen.insert(c.id.as_str()) {
                return Err(AlertTableError::DuplicateClass(c.id.clone()));
            }
            let bad = |problem: String| AlertTableError::BadRule {
                class: c.id.clone(),
                problem,
            };
            let has_trigger = !c.yj_prefixes.is_empty()
                || !c.ingredients.is_empty()
                || c.dialysis_records
                || c.surgery_within_days.is_some();
            if !has_trigger {
                return Err(bad("no prefix, ingredient or record trigger".into()));
            }
            for p in c.yj_prefixes.iter().chain(&c.exclude) {
                if p.is_empty() || p.len() > 12 || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(bad(format!("bad YJ prefix {p:?}")));
                }
            }
            for i in &c.ingredients {
                if i.len() != 7 || !i.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(format!("ingredient code {i:?} is not 7 digits")));
                }
            }
        }
        Ok(())
    }

    pub fn class(&self, id: &str) -> Option<&AlertClass> {
        self.classes.iter().find(|c| c.id == id)
    }

    /// Classes a drug falls into, in table order.
    pub fn classify(&self, yj: &YjCode) -> Vec<&AlertClass> {
        self.classes.iter().filter(|c| c.matches_drug(yj)).collect()
    }

    /// Alerts for a person on `today`, in table order (the table lists the most urgent first).
    /// Records not yet available on `today` are ignored.
    pub fn evaluate(&self, records: &MedicalRecords, today: NaiveDate) -> Vec<Alert> {
        let claims_from = today
            .checked_sub_months(chrono::Months::new(self.claims_drug_window_months))
            .unwrap_or(NaiveDate::MIN);
        let erx_from = today
            .checked_sub_days(Days::new(u64::from(self.e_prescription_window_days)))
            .unwrap_or(NaiveDate::MIN);
        let mut alerts = Vec::new();
        for class in &self.classes {
            let mut evidence = Vec::new();
            for d in &records.dispensings {
                let from = match d.source {
                    Source::EPrescription => erx_from,
                    _ => claims_from,
                };
                let active = d.available_on <= today && d.supply_end() >= from;
                if active && class.matches_drug(&d.drug.yj) {
                    evidence.push(AlertEvidence {
                        text: d.drug.name.clone(),
                        code: Some(d.drug.yj.to_string()),
                        service_date: d.service_date,
                        source: d.source,
                    });
                }
            }
            if class.dialysis_records
                && let Some(latest) = records
                    .dialysis
                    .iter()
                    .filter(|x| x.available_on <= today && x.service_date >= claims_from)
                    .max_by_key(|x| x.service_date)
            {
                evidence.push(AlertEvidence {
                    text: format!("透析 {}（{}回）", latest.institution.name, latest.sessions),
                    code: None,
                    service_date: latest.service_date,
                    source: latest.source,
                });
            }
            if let Some(days) = class.surgery_within_days {
                let from = today
                    .checked_sub_days(Days::new(u64::from(days)))
                    .unwrap_or(NaiveDate::MIN);
                for p in &records.procedures {
                    if p.kind == ProcedureKind::Surgery
                        && p.available_on <= today
                        && p.service_date >= from
                    {
                        evidence.push(AlertEvidence {
                            text: format!("{}（{}）", p.name, p.institution.name),
                            code: Some(p.code.clone()),
                            service_date: p.service_date,
                            source: p.source,
                        });
                    }
                }
            }
            if !evidence.is_empty() {
                // Newest first, one line per distinct drug or record.
                evidence.sort_by_key(|e| std::cmp::Reverse(e.service_date));
                let mut seen = std::collections::HashSet::new();
                evidence.retain(|e| seen.insert(e.text.clone()));
                alerts.push(Alert {
                    class: class.id.clone(),
                    label_ja: class.label_ja.clone(),
                    label_en: class.label_en.clone(),
                    why_ja: class.why_ja.clone(),
                    why_en: class.why_en.clone(),
                    evidence,
                });
            }
        }
        alerts
    }
}
