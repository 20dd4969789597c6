//! 救急用サマリー (emergency summary): windows, sections and the pure builder.

use crate::alerts::{Alert, AlertTable, MAX_DRUG_WINDOW_MONTHS, MAX_PROCEDURE_WINDOW_MONTHS};
use crate::person::{Coverage, Person};
use crate::records::{
    Dialysis, Dispensing, HealthCheck, MedicalRecords, Procedure, ProcedureKind, Source, Visit,
};
use chrono::{Days, Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// Which screen the viewer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// 救急用サマリー.
    #[default]
    Summary,
    /// 全量版 (full view).
    Full,
}

impl View {
    pub fn as_str(self) -> &'static str {
        match self {
            View::Summary => "summary",
            View::Full => "full",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "summary" => Some(View::Summary),
            "full" => Some(View::Full),
            _ => None,
        }
    }
}

/// A window is a span ending today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Months(u32),
    Days(u32),
    /// The most recent N health checks (健診の回数).
    Rounds(u32),
}

impl Window {
    /// The first service date inside the window, or `None` for round-based windows.
    pub fn start(self, today: NaiveDate) -> Option<NaiveDate> {
        match self {
            Window::Months(m) => Some(
                today
                    .checked_sub_months(Months::new(m))
                    .unwrap_or(NaiveDate::MIN),
            ),
            Window::Days(d) => Some(
                today
                    .checked_sub_days(Days::new(u64::from(d)))
                    .unwrap_or(NaiveDate::MIN),
            ),
            Window::Rounds(_) => None,
        }
    }
}

/// Per-section windows. Defaults are MHLW's 救急用サマリー and 通常表示 windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Windows {
    pub visits: Window,
    pub claims_drugs: Window,
    pub e_prescriptions: Window,
    pub surgeries: Window,
    pub procedures: Window,
    pub dialysis: Window,
    pub health_checks: Window,
}

impl Windows {
    pub fn for_view(view: View) -> Self {
        match view {
            View::Summary => Windows {
                visits: Window::Months(3),
                claims_drugs: Window::Months(3),
                e_prescriptions: Window::Days(45),
                surgeries: Window::Months(60),
                procedures: Window::Months(3),
                dialysis: Window::Months(3),
                health_checks: Window::Rounds(1),
            },
            View::Full => Windows {
                visits: Window::Months(60),
                claims_drugs: Window::Months(60),
                e_prescriptions: Window::Days(100),
                surgeries: Window::Months(60),
                procedures: Window::Months(60),
                dialysis: Window::Months(60),
                health_checks: Window::Rounds(5),
            },
        }
    }

    /// The earliest service date any section of this view can show; stores fetch from here.
    pub fn earliest(&self, today: NaiveDate) -> NaiveDate {
        [
            self.visits,
            self.claims_drugs,
            self.e_prescriptions,
            self.surgeries,
            self.procedures,
            self.dialysis,
        ]
        .iter()
        .filter_map(|w| w.start(today))
        .min()
        .unwrap_or(today)
    }
}

/// A dispensing older than the drug window by more than this cannot still be active, so stores
/// need not read it.
pub use crate::records::MAX_SUPPLY_DAYS;

/// First service date a store must read, per section, to build a view on `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPlan {
    pub visits_from: NaiveDate,
    pub dispensings_from: NaiveDate,
    pub procedures_from: NaiveDate,
    pub dialysis_from: NaiveDate,
    /// Most recent available health checks to read.
    pub health_check_rounds: u32,
}

impl Windows {
    pub fn fetch_plan(&self, today: NaiveDate) -> FetchPlan {
        let start = |w: Window| w.start(today).unwrap_or(today);
        // Alerts may look further back than the sections show (a class's own window).
        let alert_drugs = start(Window::Months(MAX_DRUG_WINDOW_MONTHS));
        let alert_procedures = start(Window::Months(MAX_PROCEDURE_WINDOW_MONTHS));
        let drug_start = start(self.claims_drugs)
            .min(start(self.e_prescriptions))
            .min(alert_drugs);
        FetchPlan {
            visits_from: start(self.visits),
            dispensings_from: drug_start
                .checked_sub_days(Days::new(u64::from(MAX_SUPPLY_DAYS)))
                .unwrap_or(NaiveDate::MIN),
            procedures_from: start(self.surgeries)
                .min(start(self.procedures))
                .min(alert_procedures),
            // Dialysis alerts look at the claims drug window, which may be wider than the section.
            dialysis_from: start(self.dialysis)
                .min(start(self.claims_drugs))
                .min(alert_drugs),
            health_check_rounds: match self.health_checks {
                Window::Rounds(n) => n,
                _ => 5,
            },
        }
    }
}

/// How fresh the data is, shown at the top of every summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataCurrency {
    /// The newest claims data the provider holds covers care up to this date.
    pub claims_through: Option<NaiveDate>,
    pub note_ja: String,
    pub note_en: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientHeader {
    pub name: String,
    pub name_kana: String,
    pub birth_date: NaiveDate,
    pub age: u32,
    pub sex: crate::person::Sex,
    pub address: String,
    pub coverage: Coverage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sections {
    pub visits: Vec<Visit>,
    pub dispensings: Vec<Dispensing>,
    pub surgeries: Vec<Procedure>,
    pub procedures: Vec<Procedure>,
    pub dialysis: Vec<Dialysis>,
    pub health_checks: Vec<HealthCheck>,
}

/// The summary as returned to a fire bureau: alerts first, then sections, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmergencySummary {
    pub view: View,
    pub as_of: NaiveDate,
    pub patient: PatientHeader,
    pub alerts: Vec<Alert>,
    pub alert_table_version: String,
    pub data_currency: DataCurrency,
    pub windows: Windows,
    pub sections: Sections,
}

fn in_window<T>(
    items: &[T],
    window: Window,
    today: NaiveDate,
    date: impl Fn(&T) -> (NaiveDate, NaiveDate),
) -> Vec<T>
where
    T: Clone,
{
    let start = window.start(today).unwrap_or(NaiveDate::MIN);
    let mut out: Vec<T> = items
        .iter()
        .filter(|x| {
            let (service, available) = date(x);
            available <= today && service >= start && service <= today
        })
        .cloned()
        .collect();
    out.sort_by_key(|x| std::cmp::Reverse(date(x).0));
    out
}

/// Builds the summary from whatever records the store returned (which may be wider than the view).
pub fn build_summary(
    person: &Person,
    records: &MedicalRecords,
    view: View,
    today: NaiveDate,
    claims_through: Option<NaiveDate>,
    alert_table: &AlertTable,
) -> EmergencySummary {
    let w = Windows::for_view(view);
    let claims = |d: &Dispensing| d.source != Source::EPrescription;
    let mut dispensings: Vec<Dispensing> =
        in_window(&records.dispensings, w.claims_drugs, today, |d| {
            (d.service_date, d.available_on)
        })
        .into_iter()
        .filter(claims)
        .collect();
    dispensings.extend(
        in_window(&records.dispensings, w.e_prescriptions, today, |d| {
            (d.service_date, d.available_on)
        })
        .into_iter()
        .filter(|d| !claims(d)),
    );
    dispensings.sort_by_key(|d| std::cmp::Reverse(d.service_date));

    let procedure_dates = |p: &Procedure| (p.service_date, p.available_on);
    let surgeries: Vec<Procedure> =
        in_window(&records.procedures, w.surgeries, today, procedure_dates)
            .into_iter()
            .filter(|p| p.kind == ProcedureKind::Surgery)
            .collect();
    let procedures: Vec<Procedure> =
        in_window(&records.procedures, w.procedures, today, procedure_dates)
            .into_iter()
            .filter(|p| p.kind == ProcedureKind::Procedure)
            .collect();

    let mut health_checks: Vec<HealthCheck> = records
        .health_checks
        .iter()
        .filter(|h| h.available_on <= today)
        .cloned()
        .collect();
    health_checks.sort_by_key(|h| std::cmp::Reverse(h.service_date));
    if let Window::Rounds(n) = w.health_checks {
        health_checks.truncate(n as usize);
    }

    EmergencySummary {
        view,
        as_of: today,
        patient: PatientHeader {
            name: person.name.clone(),
            name_kana: person.name_kana.clone(),
            birth_date: person.birth_date,
            age: person.age_on(today),
            sex: person.sex,
            address: person.address.one_line(),
            coverage: person.coverage.clone(),
        },
        alerts: alert_table.evaluate(records, today),
        alert_table_version: alert_table.version.clone(),
        data_currency: DataCurrency {
            claims_through,
            note_ja: "レセプト由来の情報は約1か月遅れで反映されます。直近の受診・処方は表示されないことがあります。".into(),
            note_en: "Claims-based data lags about one month; the most recent visits and prescriptions may be missing.".into(),
        },
        windows: w,
        sections: Sections {
            visits: in_window(&records.visits, w.visits, today, |v| (v.service_date, v.available_on)),
            dispensings,
            surgeries,
            procedures,
            dialysis: in_window(&records.dialysis, w.dialysis, today, |d| (d.service_date, d.available_on)),
            health_checks,
        },
    }
}

/// How far back a visit counts towards the かかりつけ (the patient's regular institution).
pub const KAKARITSUKE_MONTHS: u32 = 12;

/// One line of the grouped 受診歴: an institution and department, with how often and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitGroup {
    pub institution: crate::records::Institution,
    pub department: String,
    pub visits: u32,
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub inpatient: bool,
    /// The かかりつけ: the institution visited most within `KAKARITSUKE_MONTHS`.
    pub kakaritsuke: bool,
}

/// Visits grouped by institution and department: the かかりつけ first, then by last visit,
/// newest first. The tablet, the hospital's screen and the printed handoff show this.
pub fn group_visits(visits: &[Visit], today: NaiveDate) -> Vec<VisitGroup> {
    let mut groups: Vec<VisitGroup> = Vec::new();
    for v in visits.iter().filter(|v| v.available_on <= today) {
        let inpatient = v.setting == crate::records::CareSetting::Inpatient;
        match groups
            .iter_mut()
            .find(|g| g.institution.code == v.institution.code && g.department == v.department)
        {
            Some(g) => {
                g.visits += 1;
                g.first = g.first.min(v.service_date);
                g.last = g.last.max(v.service_date);
                g.inpatient |= inpatient;
            }
            None => groups.push(VisitGroup {
                institution: v.institution.clone(),
                department: v.department.clone(),
                visits: 1,
                first: v.service_date,
                last: v.service_date,
                inpatient,
                kakaritsuke: false,
            }),
        }
    }
    let regular = kakaritsuke(visits, today).into_iter().next();
    for g in &mut groups {
        g.kakaritsuke = regular
            .as_ref()
            .is_some_and(|k| k.institution_code == g.institution.code);
    }
    groups.sort_by(|a, b| {
        b.kakaritsuke
            .cmp(&a.kakaritsuke)
            .then(b.last.cmp(&a.last))
            .then(b.visits.cmp(&a.visits))
            .then(a.institution.code.cmp(&b.institution.code))
            .then(a.department.cmp(&b.department))
    });
    groups
}

/// The institutions visited within `KAKARITSUKE_MONTHS`, most visits first (ties: the most
/// recent). The first is the かかりつけ; hospital selection prefers any of them.
pub fn kakaritsuke(visits: &[Visit], today: NaiveDate) -> Vec<crate::records::Kakaritsuke> {
    let from = Window::Months(KAKARITSUKE_MONTHS)
        .start(today)
        .unwrap_or(NaiveDate::MIN);
    let mut out: Vec<crate::records::Kakaritsuke> = Vec::new();
    for v in visits
        .iter()
        .filter(|v| v.available_on <= today && v.service_date >= from && v.service_date <= today)
        .filter(|v| v.institution.kind != crate::records::InstitutionKind::Pharmacy)
    {
        match out
            .iter_mut()
            .find(|k| k.institution_code == v.institution.code)
        {
            Some(k) => {
                k.visits += 1;
                k.last_visit = k.last_visit.max(v.service_date);
            }
            None => out.push(crate::records::Kakaritsuke {
                institution_code: v.institution.code.clone(),
                last_visit: v.service_date,
                visits: 1,
            }),
        }
    }
    out.sort_by(|a, b| {
        b.visits
            .cmp(&a.visits)
            .then(b.last_visit.cmp(&a.last_visit))
            .then(a.institution_code.cmp(&b.institution_code))
    });
    out
}

/// One line of the grouped 薬剤: a product, with its first and last dispensing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrugGroup {
    pub drug: crate::records::DrugRef,
    pub dispensings: u32,
    pub first: NaiveDate,
    pub last: NaiveDate,
    /// The last day any dispensing of it supplies.
    pub supplied_until: NaiveDate,
    /// Whether a supply runs today.
    pub running: bool,
}

/// Dispensings grouped by product (レセ電 code, else YJ code and name): running supplies
/// first, then by last dispensing, newest first.
pub fn group_drugs(dispensings: &[Dispensing], today: NaiveDate) -> Vec<DrugGroup> {
    let key = |d: &Dispensing| match &d.drug.receipt_code {
        Some(c) => (c.as_str().to_owned(), String::new()),
        None => (d.drug.yj.as_str().to_owned(), d.drug.name.clone()),
    };
    let mut groups: Vec<(_, DrugGroup)> = Vec::new();
    for d in dispensings.iter().filter(|d| d.available_on <= today) {
        let k = key(d);
        let end = d.supply_end();
        match groups.iter_mut().find(|(gk, _)| *gk == k) {
            Some((_, g)) => {
                g.dispensings += 1;
                g.first = g.first.min(d.service_date);
                g.last = g.last.max(d.service_date);
                g.supplied_until = g.supplied_until.max(end);
            }
            None => groups.push((
                k,
                DrugGroup {
                    drug: d.drug.clone(),
                    dispensings: 1,
                    first: d.service_date,
                    last: d.service_date,
                    supplied_until: end,
                    running: false,
                },
            )),
        }
    }
    let mut out: Vec<DrugGroup> = groups
        .into_iter()
        .map(|(_, mut g)| {
            g.running = g.first <= today && g.supplied_until >= today;
            g
        })
        .collect();
    out.sort_by(|a, b| {
        b.running
            .cmp(&a.running)
            .then(b.last.cmp(&a.last))
            .then(a.drug.name.cmp(&b.drug.name))
    });
    out
}
