//! Emergency alert classes: which dispensed drugs and records should be shown first.
//!
//! The rules live in the versioned data file `data/alerts.toml`, not in code. A drug matches a
//! class when its YJ code starts with one of the class's prefixes on a route the class counts
//! (topical steroids, for example, are not systemic steroids), or its 7-character ingredient
//! code is on the class's allow-list, whatever its route; an exclusion prefix overrides both.
//! The route is the YJ ingredient range, which agrees with the master's 剤形 for every code
//! (tested in `myna-drug-master`). A class may also fire on records: dialysis, a recent surgery, or a
//! claimed 診療行為 code (a cardiac device, home oxygen).
//!
//! `AlertTable::classify_codes` computes every drug's classes once, when the table and the
//! drug master are loaded; the summary then looks them up.

use crate::codes::{Route, YjCode};
use crate::records::{MedicalRecords, ProcedureKind, Source};
use chrono::{Days, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

const ALERT_TABLE_TOML: &str = include_str!("../data/alerts.toml");

/// The longest drug window a class may ask for. Stores read dispensings this far back (plus the
/// longest supply), so a class cannot look further than the data the summary is built from.
pub const MAX_DRUG_WINDOW_MONTHS: u32 = 12;

/// The longest procedure window a class may ask for; stores read procedures this far back.
pub const MAX_PROCEDURE_WINDOW_MONTHS: u32 = 60;

/// A table holds at most this many classes (one bit each in the precomputed classification).
const MAX_CLASSES: usize = 64;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertClass {
    pub id: String,
    pub label_ja: String,
    pub label_en: String,
    /// Why the crew cares, in one line.
    pub why_ja: String,
    pub why_en: String,
    /// The clinical source the class rests on: a package insert, a guideline, or the
    /// ハイリスク薬 list.
    pub source: String,
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
    /// 診療行為 codes (9 digits) whose claim raises the class.
    #[serde(default)]
    pub procedure_codes: Vec<String>,
    /// How far back a claim of `procedure_codes` counts, in months.
    #[serde(default)]
    pub procedure_within_months: Option<u32>,
    /// Drugs kept at home for an emergency (an auto-injector, a rescue suppository): they
    /// count for some months after dispensing, whatever their days' supply.
    #[serde(default)]
    pub kept: Vec<Kept>,
    /// The agent that reverses a drug of this class, by ingredient.
    #[serde(default)]
    pub reversal: Vec<Reversal>,
}

/// Ingredients that count for `months` after dispensing, not for their days' supply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kept {
    /// 7-character YJ ingredient codes.
    pub ingredients: Vec<String>,
    pub months: u32,
}

/// 拮抗薬 (reversal agent) for the listed ingredients, named on the alert's evidence line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reversal {
    /// 7-character YJ ingredient codes.
    pub ingredients: Vec<String>,
    pub agent_ja: String,
    pub agent_en: String,
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

    /// The rule that puts `yj` in this class, if any. Exclusions come first; `routes` filters
    /// what a prefix takes; a listed ingredient is taken whatever its route.
    pub fn matched_rule(&self, yj: &YjCode) -> Option<MatchedRule<'_>> {
        let code = yj.as_str();
        if self.exclude.iter().any(|p| code.starts_with(p.as_str())) {
            return None;
        }
        let route_ok = self.routes.is_empty() || self.routes.contains(&yj.route());
        self.yj_prefixes
            .iter()
            .find(|p| route_ok && code.starts_with(p.as_str()))
            .map(|p| MatchedRule::Prefix(p))
            .or_else(|| {
                self.ingredients
                    .iter()
                    .find(|i| *i == yj.ingredient7())
                    .map(|i| MatchedRule::Ingredient(i))
            })
    }

    /// Whether an exclusion covers every code of ingredient `i`.
    fn excludes_ingredient(&self, i: &str) -> bool {
        self.exclude.iter().any(|p| i.starts_with(p.as_str()))
    }

    /// Whether some code of ingredient `i` (7 characters) can fall in this class: not wholly
    /// excluded, and listed, or under a prefix (either way round) on a counted route.
    fn holds_ingredient(&self, i: &str) -> bool {
        let route_ok = self.routes.is_empty()
            || YjCode::route_of_ingredient(i).is_some_and(|r| self.routes.contains(&r));
        let by_prefix = self
            .yj_prefixes
            .iter()
            .any(|p| i.starts_with(p.as_str()) || p.starts_with(i));
        !self.excludes_ingredient(i)
            && (self.ingredients.iter().any(|x| x == i) || (route_ok && by_prefix))
    }

    /// How many months a dispensing of `yj` counts, if it is a drug kept for emergencies.
    fn kept_months(&self, yj: &YjCode) -> Option<u32> {
        self.kept
            .iter()
            .find(|k| k.ingredients.iter().any(|i| i == yj.ingredient7()))
            .map(|k| k.months)
    }

    /// The reversal agent for `yj`, if the class names one for its ingredient.
    pub fn reversal_for(&self, yj: &YjCode) -> Option<&Reversal> {
        self.reversal
            .iter()
            .find(|r| r.ingredients.iter().any(|i| i == yj.ingredient7()))
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
    /// Most urgent first. Private, so the precomputed classification cannot go stale.
    #[serde(rename = "class")]
    classes: Vec<AlertClass>,
    /// Each known YJ code's classes as a bit set (bit i = `classes[i]`), computed once by
    /// `classify_codes`. Codes not in it are classified on the fly.
    #[serde(skip)]
    classified: Arc<HashMap<String, u64>>,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    pub class: String,
    pub label_ja: String,
    pub label_en: String,
    pub why_ja: String,
    pub why_en: String,
    pub evidence: Vec<AlertEvidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertEvidence {
    pub text: String,
    pub code: Option<String>,
    pub service_date: NaiveDate,
    pub source: Source,
    /// For an anticoagulant: the agent that reverses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal_ja: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal_en: Option<String>,
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
                || c.surgery_within_days.is_some()
                || !c.procedure_codes.is_empty();
            if !has_trigger {
                return Err(bad("no prefix, ingredient or record trigger".into()));
            }
            if c.source.trim().is_empty() {
                return Err(bad("names no clinical source".into()));
            }
            for code in &c.procedure_codes {
                if code.len() != 9 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(format!("procedure code {code:?} is not 9 digits")));
                }
            }
            match (c.procedure_codes.is_empty(), c.procedure_within_months) {
                (false, None) => return Err(bad("procedure codes without a window".into())),
                (true, Some(_)) => return Err(bad("a procedure window without codes".into())),
                (_, Some(m)) if m == 0 || m > MAX_PROCEDURE_WINDOW_MONTHS => {
                    return Err(bad(format!(
                        "procedure window {m} months; 1 to {MAX_PROCEDURE_WINDOW_MONTHS} allowed"
                    )));
                }
                _ => {}
            }
            for k in &c.kept {
                if k.months == 0 || k.months > MAX_DRUG_WINDOW_MONTHS {
                    return Err(bad(format!(
                        "kept for {} months; 1 to {MAX_DRUG_WINDOW_MONTHS} allowed",
                        k.months
                    )));
                }
            }
            if let Some(days) = c.surgery_within_days
                && (days == 0 || days > MAX_PROCEDURE_WINDOW_MONTHS * 30)
            {
                return Err(bad(format!(
                    "surgery window {days} days is outside what is read"
                )));
            }
            let named = c
                .reversal
                .iter()
                .flat_map(|r| &r.ingredients)
                .chain(c.kept.iter().flat_map(|k| &k.ingredients));
            for i in named {
                if i.len() != 7 || !i.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(format!("ingredient code {i:?} is not 7 digits")));
                }
                if !c.holds_ingredient(i) {
                    return Err(bad(format!(
                        "names ingredient {i}, which the class never raises"
                    )));
                }
            }
            for p in c.yj_prefixes.iter().chain(&c.exclude) {
                // YJ codes are digits and capital letters; anything else never matches.
                let valid = |b: u8| b.is_ascii_digit() || b.is_ascii_uppercase();
                if p.is_empty() || p.len() > 12 || !p.bytes().all(valid) {
                    return Err(bad(format!("bad YJ prefix {p:?}")));
                }
            }
            for p in &c.yj_prefixes {
                // A prefix that names the ingredient also names its route.
                if let Some(route) = p.get(..7).and_then(YjCode::route_of_ingredient)
                    && !c.routes.is_empty()
                    && !c.routes.contains(&route)
                {
                    return Err(bad(format!(
                        "prefix {p} is on a route the class does not count"
                    )));
                }
            }
            for i in &c.ingredients {
                if c.excludes_ingredient(i) {
                    return Err(bad(format!("ingredient {i} is listed and excluded")));
                }
            }
            for i in &c.ingredients {
                if i.len() != 7 || !i.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(format!("ingredient code {i:?} is not 7 digits")));
                }
            }
        }
        if self.classes.len() > MAX_CLASSES {
            return Err(AlertTableError::BadRule {
                class: String::new(),
                problem: format!("{} classes; at most {MAX_CLASSES}", self.classes.len()),
            });
        }
        if self.e_prescription_window_days == 0 || self.e_prescription_window_days > 365 {
            return Err(AlertTableError::BadRule {
                class: String::new(),
                problem: format!(
                    "e-prescription window {} days; 1 to 365 allowed",
                    self.e_prescription_window_days
                ),
            });
        }
        if self.claims_drug_window_months == 0
            || self.claims_drug_window_months > MAX_DRUG_WINDOW_MONTHS
        {
            return Err(AlertTableError::BadRule {
                class: String::new(),
                problem: format!(
                    "claims drug window {} months; at most {MAX_DRUG_WINDOW_MONTHS}",
                    self.claims_drug_window_months
                ),
            });
        }
        Ok(())
    }

    /// Classifies every code once and keeps the result, so the summary looks classes up
    /// instead of evaluating rules. Call it when the drug master is loaded.
    pub fn classify_codes<'a>(&mut self, codes: impl IntoIterator<Item = &'a YjCode>) {
        let map: HashMap<String, u64> = codes
            .into_iter()
            .map(|yj| (yj.as_str().to_owned(), self.compute_mask(yj)))
            .collect();
        self.classified = Arc::new(map);
    }

    /// How many codes `classify_codes` classified.
    pub fn classified_codes(&self) -> usize {
        self.classified.len()
    }

    fn compute_mask(&self, yj: &YjCode) -> u64 {
        self.classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.matches_drug(yj))
            .fold(0, |m, (i, _)| m | (1 << i))
    }

    fn class_mask(&self, yj: &YjCode) -> u64 {
        match self.classified.get(yj.as_str()) {
            Some(mask) => *mask,
            None => self.compute_mask(yj),
        }
    }

    /// The classes, most urgent first.
    pub fn classes(&self) -> &[AlertClass] {
        &self.classes
    }

    pub fn class(&self, id: &str) -> Option<&AlertClass> {
        self.classes.iter().find(|c| c.id == id)
    }

    /// Classes a drug falls into, in table order.
    pub fn classify(&self, yj: &YjCode) -> Vec<&AlertClass> {
        let mask = self.class_mask(yj);
        self.classes
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, c)| c)
            .collect()
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
        let masks: Vec<u64> = records
            .dispensings
            .iter()
            .map(|d| self.class_mask(&d.drug.yj))
            .collect();
        let mut alerts = Vec::new();
        for (index, class) in self.classes.iter().enumerate() {
            let mut evidence = Vec::new();
            for (d, mask) in records.dispensings.iter().zip(&masks) {
                if mask & (1 << index) == 0 || d.available_on > today {
                    continue;
                }
                let kept_from = class.kept_months(&d.drug.yj).map(|m| {
                    today
                        .checked_sub_months(Months::new(m))
                        .unwrap_or(NaiveDate::MIN)
                });
                // A kept drug counts while kept or while its supply lasts, whichever is longer.
                let kept = kept_from.is_some_and(|from| d.service_date >= from);
                let supplied = match d.source {
                    Source::EPrescription => d.supply_end() >= erx_from,
                    _ => d.supply_end() >= claims_from,
                };
                let active = d.service_date <= today && (kept || supplied);
                if active {
                    let reversal = class.reversal_for(&d.drug.yj);
                    evidence.push(AlertEvidence {
                        text: d.drug.name.clone(),
                        code: Some(d.drug.yj.to_string()),
                        service_date: d.service_date,
                        source: d.source,
                        reversal_ja: reversal.map(|r| r.agent_ja.clone()),
                        reversal_en: reversal.map(|r| r.agent_en.clone()),
                    });
                }
            }
            if class.dialysis_records
                && let Some(latest) = records
                    .dialysis
                    .iter()
                    .filter(|x| {
                        x.available_on <= today
                            && x.service_date >= claims_from
                            && x.service_date <= today
                    })
                    .max_by_key(|x| x.service_date)
            {
                evidence.push(AlertEvidence {
                    text: format!("透析 {}（{}回）", latest.institution.name, latest.sessions),
                    code: None,
                    service_date: latest.service_date,
                    source: latest.source,
                    reversal_ja: None,
                    reversal_en: None,
                });
            }
            if let Some(months) = class.procedure_within_months {
                let from = today
                    .checked_sub_months(Months::new(months))
                    .unwrap_or(NaiveDate::MIN);
                for p in &records.procedures {
                    if class.procedure_codes.contains(&p.code)
                        && p.available_on <= today
                        && p.service_date >= from
                        && p.service_date <= today
                    {
                        evidence.push(AlertEvidence {
                            text: format!("{}（{}）", p.name, p.institution.name),
                            code: Some(p.code.clone()),
                            service_date: p.service_date,
                            source: p.source,
                            reversal_ja: None,
                            reversal_en: None,
                        });
                    }
                }
            }
            if let Some(days) = class.surgery_within_days {
                let from = today
                    .checked_sub_days(Days::new(u64::from(days)))
                    .unwrap_or(NaiveDate::MIN);
                for p in &records.procedures {
                    if p.kind == ProcedureKind::Surgery
                        && p.available_on <= today
                        && p.service_date >= from
                        && p.service_date <= today
                    {
                        evidence.push(AlertEvidence {
                            text: format!("{}（{}）", p.name, p.institution.name),
                            code: Some(p.code.clone()),
                            service_date: p.service_date,
                            source: p.source,
                            reversal_ja: None,
                            reversal_en: None,
                        });
                    }
                }
            }
            if !evidence.is_empty() {
                // Newest first, one line per distinct drug or record.
                evidence.sort_by_key(|e| std::cmp::Reverse(e.service_date));
                let mut seen = std::collections::HashSet::new();
                evidence.retain(|e| seen.insert((e.code.clone(), e.text.clone())));
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
