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
pub struct DataCurrency {
    /// The newest claims data the provider holds covers care up to this date.
    pub claims_through: Option<NaiveDate>,
    pub note_ja: String,
    pub note_en: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
