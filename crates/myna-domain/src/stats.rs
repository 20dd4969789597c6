//! 救急統計 (bureau statistics): what one incident contributes to the bureau's figures, and
//! the figures of many incidents, the way FDMA judged マイナ救急: the usage funnel, why it
//! failed, the phase times with and without it (R6 report, 図表1-33), inquiries and
//! 搬送困難事案, and views without consent. Pure: the store keeps one `IncidentFacts` per
//! incident, refreshed in the transaction of every append, and the dashboard folds them.

use crate::access::Consent;
use crate::incident::{EventKind, Incident, MynaOutcome, Phase};
use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Japan Standard Time (+9 h): months, days and hours of the figures are Japan's.
#[allow(clippy::panic)] // evaluated at compile time: it cannot reach a user
pub const JST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(o) => o,
    None => panic!("+9 h is a valid offset"),
};

/// `[1 January, next 1 January)` of `year` in Japan, in ms since the epoch; years the
/// statistics cover only (2000–2100).
pub fn year_range_ms(year: i32) -> Option<(i64, i64)> {
    use chrono::TimeZone;
    if !(2000..=2100).contains(&year) {
        return None;
    }
    let start = |y: i32| {
        chrono::NaiveDate::from_ymd_opt(y, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|t| JST.from_local_datetime(&t).single())
            .map(|t| t.timestamp_millis())
    };
    Some((start(year)?, start(year + 1)?))
}

/// A phase interval of FDMA's 図表1-33.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    /// 現着→接触.
    ArrivalToContact,
    /// 接触→車内収容.
    ContactToInVehicle,
    /// 車内収容→現発.
    InVehicleToDeparture,
    /// 現着→現発 (現場滞在時間).
    ArrivalToDeparture,
}

impl Interval {
    pub const ALL: [Interval; 4] = [
        Interval::ArrivalToContact,
        Interval::ContactToInVehicle,
        Interval::InVehicleToDeparture,
        Interval::ArrivalToDeparture,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            Interval::ArrivalToContact => "現着→接触",
            Interval::ContactToInVehicle => "接触→車内収容",
            Interval::InVehicleToDeparture => "車内収容→現発",
            Interval::ArrivalToDeparture => "現着→現発（現場滞在）",
        }
    }

    fn ends(self) -> (Phase, Phase) {
        match self {
            Interval::ArrivalToContact => (Phase::Arrival, Phase::Contact),
            Interval::ContactToInVehicle => (Phase::Contact, Phase::InVehicle),
            Interval::InVehicleToDeparture => (Phase::InVehicle, Phase::Departure),
            Interval::ArrivalToDeparture => (Phase::Arrival, Phase::Departure),
        }
    }

    fn index(self) -> usize {
        match self {
            Interval::ArrivalToContact => 0,
            Interval::ContactToInVehicle => 1,
            Interval::InVehicleToDeparture => 2,
            Interval::ArrivalToDeparture => 3,
        }
    }
}

/// A stage of the usage funnel (FDMA R4 report pp.30–31), each a subset of the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// 出場: every incident.
    Dispatched,
    /// 実施: the team leader judged マイナ救急 feasible and tried.
    Attempted,
    /// カード所持.
    CardPresent,
    /// 保険証利用登録あり (the card was read and is registered).
    Registered,
    /// 同意または同意不要（例外）.
    ConsentOrException,
    /// 閲覧.
    Viewed,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Dispatched,
        Stage::Attempted,
        Stage::CardPresent,
        Stage::Registered,
        Stage::ConsentOrException,
        Stage::Viewed,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            Stage::Dispatched => "出場",
            Stage::Attempted => "実施",
            Stage::CardPresent => "カード所持",
            Stage::Registered => "保険証利用登録あり",
            Stage::ConsentOrException => "同意・例外",
            Stage::Viewed => "閲覧",
        }
    }

    fn index(self) -> usize {
        match self {
            Stage::Dispatched => 0,
            Stage::Attempted => 1,
            Stage::CardPresent => 2,
            Stage::Registered => 3,
            Stage::ConsentOrException => 4,
            Stage::Viewed => 5,
        }
    }
}

/// What one incident contributes to the statistics, derived from its log alone
/// (`IncidentFacts::of`). The store keeps it beside the log and refreshes it in the same
/// transaction as every append, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentFacts {
    /// 覚知: server time of creation, ms since the epoch.
    pub created_ms: i64,
    /// The team assigned last.
    pub team: Option<i64>,
    /// The Kawasaki ward the call's address names (`hospitals::ward_point`).
    pub ward: Option<String>,
    /// The funnel's end (`Incident::outcome`).
    pub outcome: Option<MynaOutcome>,
    /// A consent, or the no-consent exception, was recorded for some patient.
    pub consent_or_exception: bool,
    /// Summaries viewed, and those of them under the no-consent exception.
    pub views: u32,
    pub exception_views: u32,
    /// Seconds of each `Interval` (in `Interval::ALL` order) where both ends were recorded.
    pub intervals_s: [Option<i64>; 4],
    /// 照会 made.
    pub inquiries: u32,
    /// FDMA's 搬送困難事案 (`Incident::difficult_transport`, judged at the log's last event).
    pub difficult: bool,
    /// The team reached a hospital (病着).
    pub transported: bool,
}

impl IncidentFacts {
    /// The facts of `incident`, or `None` before it is created.
    pub fn of(incident: &Incident) -> Option<IncidentFacts> {
        let created = incident.created_at()?;
        let last = incident.events.last().map_or(created, |e| e.at);
        let times = incident.phase_times();
        let at = |p: Phase| times.iter().find(|(q, _)| *q == p).map(|(_, t)| *t);
        let mut intervals_s = [None; 4];
        for interval in Interval::ALL {
            let (from, to) = interval.ends();
            intervals_s[interval.index()] = match (at(from), at(to)) {
                (Some(a), Some(b)) if b >= a => Some((b - a).num_seconds()),
                _ => None,
            };
        }
        let mut consent_or_exception = false;
        let mut views = 0u32;
        let mut exception_views = 0u32;
        // The basis of each patient's view is the consent recorded for that patient before it.
        let mut basis: Vec<(&crate::patient::PatientKey, Consent)> = Vec::new();
        for e in &incident.events {
            match &e.kind {
                EventKind::Consent { patient, consent } => {
                    consent_or_exception = true;
                    basis.retain(|(p, _)| *p != patient);
                    basis.push((patient, *consent));
                }
                EventKind::SummaryViewed { patient, .. } => {
                    views = views.saturating_add(1);
                    let exception = basis
                        .iter()
                        .any(|(p, c)| *p == patient && matches!(c, Consent::Exception { .. }));
                    if exception {
                        exception_views = exception_views.saturating_add(1);
                    }
                }
                _ => {}
            }
        }
        Some(IncidentFacts {
            created_ms: created.timestamp_millis(),
            team: incident.assigned_team(),
            ward: incident
                .call()
                .and_then(|c| crate::hospitals::ward_point(c.location))
                .map(|(w, _)| w.to_owned()),
            outcome: incident.outcome(),
            consent_or_exception,
            views,
            exception_views,
            intervals_s,
            inquiries: u32::try_from(incident.inquiries().len()).unwrap_or(u32::MAX),
            difficult: incident.difficult_transport(last),
            transported: at(Phase::HospitalArrival).is_some(),
        })
    }

    /// The deepest funnel stage the incident reached: by its outcome, and at least "consent or
    /// exception" once one was recorded (a consent later withdrawn, an incident closed with no
    /// outcome).
    pub fn stage(&self) -> Stage {
        let by_outcome = self.stage_by_outcome();
        if self.consent_or_exception {
            by_outcome.max(Stage::ConsentOrException)
        } else {
            by_outcome
        }
    }

    fn stage_by_outcome(&self) -> Stage {
        match self.outcome {
            Some(MynaOutcome::Viewed) => Stage::Viewed,
            None
            | Some(MynaOutcome::NotAttemptedUrgency | MynaOutcome::NotAttemptedEnvironment) => {
                Stage::Dispatched
            }
            Some(MynaOutcome::NoCard) => Stage::Attempted,
            Some(
                MynaOutcome::NotRegistered
                | MynaOutcome::ReaderFailure
                | MynaOutcome::PersonNotFound,
            ) => Stage::CardPresent,
            Some(
                MynaOutcome::ConsentRefused
                | MynaOutcome::IdentityNotConfirmed
                | MynaOutcome::NetworkFailure,
            ) if self.consent_or_exception => Stage::ConsentOrException,
            Some(
                MynaOutcome::ConsentRefused
                | MynaOutcome::IdentityNotConfirmed
                | MynaOutcome::NetworkFailure,
            ) => Stage::Registered,
        }
    }

    /// Whether マイナ救急 was used, in FDMA's sense: a summary was viewed.
    pub fn used(&self) -> bool {
        self.views > 0
    }

    /// The Japan month of the call, e.g. 202507.
    pub fn month(&self) -> Option<u32> {
        let t = DateTime::<Utc>::from_timestamp_millis(self.created_ms)?.with_timezone(&JST);
        Some(u32::try_from(t.year()).ok()? * 100 + t.month())
    }

    /// The Japan hour of the call (0–23).
    pub fn hour(&self) -> Option<u32> {
        let t = DateTime::<Utc>::from_timestamp_millis(self.created_ms)?.with_timezone(&JST);
        Some(t.hour())
    }
}

/// Sums and counts of one interval over a group of incidents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntervalSum {
    pub n: u64,
    pub total_s: i64,
}

impl IntervalSum {
    /// The mean in whole seconds, if any incident had it.
    pub fn mean_s(&self) -> Option<i64> {
        let n = i64::try_from(self.n).ok().filter(|n| *n > 0)?;
        Some((self.total_s + n / 2) / n)
    }
}

/// The figures of a group of incidents (a month, a team, a ward, the year).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Incidents that reached each `Stage` (in `Stage::ALL` order).
    pub funnel: [u64; 6],
    /// Incidents that ended with each outcome other than a view (in `MynaOutcome::ALL`
    /// order; `Viewed`'s place stays 0), and those with none recorded.
    pub failures: [u64; 10],
    pub unrecorded: u64,
    pub views: u64,
    pub exception_views: u64,
    /// Incidents with an exception view.
    pub exception_incidents: u64,
    pub transported: u64,
    pub difficult: u64,
    /// Incidents by inquiries made: 0, 1, 2, 3, 4 or more.
    pub inquiries: [u64; 5],
    /// Interval sums for incidents where マイナ救急 was used and where it was not.
    pub used: [IntervalSum; 4],
    pub not_used: [IntervalSum; 4],
}

impl Figures {
    pub fn add(&mut self, f: &IncidentFacts) {
        let stage = f.stage();
        for s in Stage::ALL {
            if s <= stage {
                self.funnel[s.index()] += 1;
            }
        }
        match f.outcome {
            None => self.unrecorded += 1,
            Some(MynaOutcome::Viewed) => {}
            Some(o) => {
                if let Some(i) = MynaOutcome::ALL.iter().position(|x| *x == o) {
                    self.failures[i] += 1;
                }
            }
        }
        self.views += u64::from(f.views);
        self.exception_views += u64::from(f.exception_views);
        self.exception_incidents += u64::from(f.exception_views > 0);
        self.transported += u64::from(f.transported);
        self.difficult += u64::from(f.difficult);
        let bucket = usize::try_from(f.inquiries).unwrap_or(usize::MAX).min(4);
        self.inquiries[bucket] += 1;
        let sums = if f.used() {
            &mut self.used
        } else {
            &mut self.not_used
        };
        for (sum, s) in sums.iter_mut().zip(f.intervals_s) {
            if let Some(s) = s {
                sum.n += 1;
                sum.total_s += s;
            }
        }
    }

    pub fn stage(&self, s: Stage) -> u64 {
        self.funnel[s.index()]
    }

    pub fn failure(&self, o: MynaOutcome) -> u64 {
        MynaOutcome::ALL
            .iter()
            .position(|x| *x == o)
            .map_or(0, |i| self.failures[i])
    }

    /// The interval sums of all incidents, used or not.
    pub fn all(&self, i: Interval) -> IntervalSum {
        let (a, b) = (self.used[i.index()], self.not_used[i.index()]);
        IntervalSum {
            n: a.n + b.n,
            total_s: a.total_s + b.total_s,
        }
    }

    pub fn interval(&self, i: Interval, used: bool) -> IntervalSum {
        if used {
            self.used[i.index()]
        } else {
            self.not_used[i.index()]
        }
    }

    pub fn dispatches(&self) -> u64 {
        self.stage(Stage::Dispatched)
    }
}

/// A bureau's figures over a period: the whole, by month, by team and by ward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dashboard {
    pub total: Figures,
    /// Months (e.g. 202507) in order.
    pub months: Vec<(u32, Figures)>,
    /// Team ids in order.
    pub teams: Vec<(i64, Figures)>,
    /// Ward names in order; incidents whose address names no ward are under "".
    pub wards: Vec<(String, Figures)>,
    /// Calls by Japan hour (0–23).
    pub hours: [u64; 24],
}

impl Dashboard {
    pub fn build<'a>(facts: impl IntoIterator<Item = &'a IncidentFacts>) -> Dashboard {
        let mut d = Dashboard::default();
        let mut months = std::collections::BTreeMap::<u32, Figures>::new();
        let mut teams = std::collections::BTreeMap::<i64, Figures>::new();
        let mut wards = std::collections::BTreeMap::<String, Figures>::new();
        for f in facts {
            d.total.add(f);
            if let Some(m) = f.month() {
                months.entry(m).or_default().add(f);
            }
            if let Some(t) = f.team {
                teams.entry(t).or_default().add(f);
            }
            wards
                .entry(f.ward.clone().unwrap_or_default())
                .or_default()
                .add(f);
            if let Some(h) = f.hour().and_then(|h| usize::try_from(h).ok())
                && let Some(slot) = d.hours.get_mut(h)
            {
                *slot += 1;
            }
        }
        d.months = months.into_iter().collect();
        d.teams = teams.into_iter().collect();
        d.wards = wards.into_iter().collect();
        d
    }
}

/// `m:ss`, as FDMA prints phase times.
pub fn minutes_seconds(s: i64) -> String {
    format!("{}:{:02}", s / 60, s % 60)
}

/// A share in percent with one decimal, or "—" for an empty group.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "—".to_owned();
    }
    // Integer arithmetic keeps it exact: tenths of a percent, rounded half up.
    let tenths = (part * 1000 + whole / 2) / whole;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn facts(outcome: Option<MynaOutcome>, consent: bool, views: u32) -> IncidentFacts {
        IncidentFacts {
            created_ms: 1_751_328_000_000, // 2025-07-01 09:00 JST
            team: Some(3),
            ward: Some("幸区".into()),
            outcome,
            consent_or_exception: consent,
            views,
            exception_views: 0,
            intervals_s: [Some(60), None, Some(600), Some(900)],
            inquiries: 6,
            difficult: false,
            transported: true,
        }
    }

    #[test]
    fn an_outcome_is_stored_as_its_wire_name() {
        for o in MynaOutcome::ALL {
            let wire = serde_json::to_value(o).unwrap();
            assert_eq!(wire.as_str(), Some(o.as_str()));
            assert_eq!(MynaOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(MynaOutcome::parse("Viewed"), None);
    }

    #[test]
    fn every_outcome_has_a_stage_and_the_funnel_never_widens() {
        for o in MynaOutcome::ALL.map(Some).into_iter().chain([None]) {
            for consent in [false, true] {
                let f = facts(o, consent, u32::from(o == Some(MynaOutcome::Viewed)));
                let mut g = Figures::default();
                g.add(&f);
                assert!(
                    g.funnel.windows(2).all(|w| w[0] >= w[1]),
                    "{o:?}: {:?}",
                    g.funnel
                );
                assert_eq!(g.dispatches(), 1);
                // A failure is counted once, a view or no outcome never as a failure.
                let failures: u64 = g.failures.iter().sum();
                let expected = u64::from(!matches!(o, None | Some(MynaOutcome::Viewed)));
                assert_eq!(failures, expected, "{o:?}");
            }
        }
    }

    #[test]
    fn the_dashboard_groups_by_japan_month_hour_team_and_ward_and_buckets_inquiries() {
        let used = facts(Some(MynaOutcome::Viewed), true, 1);
        let mut not_used = facts(Some(MynaOutcome::NoCard), false, 0);
        not_used.created_ms -= 10 * 3_600_000; // 2025-06-30 23:00 JST
        not_used.ward = None;
        let d = Dashboard::build([&used, &not_used]);
        assert_eq!(
            d.months.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
            [202506, 202507]
        );
        assert_eq!((d.hours[9], d.hours[23]), (1, 1));
        assert_eq!(d.teams.len(), 1);
        assert_eq!(
            d.wards.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(),
            ["", "幸区"]
        );
        assert_eq!(d.total.inquiries[4], 2, "six inquiries count as 4 or more");
        assert_eq!(
            d.total.interval(Interval::ArrivalToContact, true).mean_s(),
            Some(60)
        );
        assert_eq!(d.total.interval(Interval::ContactToInVehicle, true).n, 0);
        assert_eq!(d.total.all(Interval::ArrivalToDeparture).n, 2);
        assert_eq!(d.total.stage(Stage::Viewed), 1);
        assert_eq!(d.total.failure(MynaOutcome::NoCard), 1);
    }

    #[test]
    fn a_recorded_consent_counts_in_the_funnel_whatever_the_outcome() {
        // Consent, then withdrawal, then closing with no outcome.
        let withdrawn = facts(None, true, 0);
        assert_eq!(withdrawn.stage(), Stage::ConsentOrException);
        assert_eq!(facts(None, false, 0).stage(), Stage::Dispatched);
        assert_eq!(
            facts(Some(MynaOutcome::NetworkFailure), true, 0).stage(),
            Stage::ConsentOrException
        );
        assert_eq!(
            facts(Some(MynaOutcome::Viewed), true, 1).stage(),
            Stage::Viewed
        );
    }

    #[test]
    fn shares_and_times_print_as_fdma_prints_them() {
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(2, 3), "66.7%");
        assert_eq!(percent(0, 0), "—");
        assert_eq!(minutes_seconds(1229), "20:29");
        assert_eq!(IntervalSum { n: 2, total_s: 3 }.mean_s(), Some(2));
        assert_eq!(IntervalSum::default().mean_s(), None);
    }
}
