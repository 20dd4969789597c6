//! 事後審査 (the privacy officer's review): every summary viewed without consent (the
//! exception) is checked afterwards by the bureau's privacy officer, who marks it justified or
//! not, with a comment. Each decision is an entry of its own hash chain, bound to the reviewed
//! view-log entry by that entry's place and hash.

use crate::access::{Consent, Linked};
use crate::incident::ViewRecord;
use serde::{Deserialize, Serialize};

/// The officer's judgement of one exception view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// 妥当: the patient could not consent and the view was needed.
    Justified,
    /// 不適切: it should not have been viewed without consent.
    NotJustified,
}

impl ReviewDecision {
    pub const ALL: [ReviewDecision; 2] = [ReviewDecision::Justified, ReviewDecision::NotJustified];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Justified => "justified",
            ReviewDecision::NotJustified => "not_justified",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ReviewDecision::ALL.into_iter().find(|d| d.as_str() == s)
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            ReviewDecision::Justified => "妥当",
            ReviewDecision::NotJustified => "不適切",
        }
    }
}

/// The longest comment, in characters.
pub const COMMENT_MAX_CHARS: usize = 1000;

/// One decision, as the review log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRecord {
    /// Server time, ms since the epoch.
    pub at_ms: i64,
    pub bureau: String,
    /// The reviewed view-log entry: its chain, place and hash (hex).
    pub view_partition: i64,
    pub view_seq: i64,
    pub view_hash: String,
    pub incident_number: String,
    /// The officer's login.
    pub officer: String,
    pub decision: ReviewDecision,
    pub comment: String,
}

impl Linked for ReviewRecord {
    const LOG: &'static [u8] = b"myna-kyukyu/ems-review-log/v1";
    fn feed(&self, field: &mut dyn FnMut(&[u8])) {
        field(&self.at_ms.to_be_bytes());
        field(self.bureau.as_bytes());
        field(&self.view_partition.to_be_bytes());
        field(&self.view_seq.to_be_bytes());
        field(self.view_hash.as_bytes());
        field(self.incident_number.as_bytes());
        field(self.officer.as_bytes());
        field(self.decision.as_str().as_bytes());
        field(self.comment.as_bytes());
    }
}

/// Why a decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("only a view without consent is reviewed")]
    NotAnException,
    #[error("a view judged not justified needs a comment saying why")]
    CommentRequired,
    #[error("the comment is longer than {COMMENT_MAX_CHARS} characters")]
    CommentTooLong,
    #[error("this view was reviewed already")]
    AlreadyReviewed,
}

/// Checks a decision on `view` before it is recorded.
pub fn check_decision(
    view: &ViewRecord,
    decision: ReviewDecision,
    comment: &str,
) -> Result<(), ReviewError> {
    if !matches!(view.consent, Consent::Exception { .. }) {
        return Err(ReviewError::NotAnException);
    }
    if comment.chars().count() > COMMENT_MAX_CHARS {
        return Err(ReviewError::CommentTooLong);
    }
    if decision == ReviewDecision::NotJustified && comment.trim().is_empty() {
        return Err(ReviewError::CommentRequired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::access::ExceptionReason;
    use crate::patient::PatientSecret;
    use crate::summary::View;

    fn view(consent: Consent) -> ViewRecord {
        ViewRecord {
            at_ms: 1,
            bureau: "a".into(),
            incident_number: "20250101-0001".into(),
            team: "t".into(),
            crew_member: "c".into(),
            terminal: 1,
            patient: PatientSecret::from_bytes([1; 32]).patient("01"),
            patient_number: 1,
            consent,
            view: View::Summary,
            provider_access_id: 1,
            hospital: None,
        }
    }

    #[test]
    fn only_exceptions_are_reviewed_and_a_not_justified_needs_a_reason() {
        let exception = view(Consent::Exception {
            reason: ExceptionReason::Unconscious,
        });
        assert_eq!(
            check_decision(&exception, ReviewDecision::Justified, ""),
            Ok(())
        );
        assert_eq!(
            check_decision(&exception, ReviewDecision::NotJustified, "  "),
            Err(ReviewError::CommentRequired)
        );
        assert_eq!(
            check_decision(&exception, ReviewDecision::NotJustified, "意識清明だった"),
            Ok(())
        );
        assert_eq!(
            check_decision(&exception, ReviewDecision::Justified, &"あ".repeat(1001)),
            Err(ReviewError::CommentTooLong)
        );
        assert_eq!(
            check_decision(&view(Consent::Obtained), ReviewDecision::Justified, ""),
            Err(ReviewError::NotAnException)
        );
        for d in ReviewDecision::ALL {
            assert_eq!(ReviewDecision::parse(d.as_str()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap().as_str(), Some(d.as_str()));
        }
    }
}

/// When and whether the incident behind a view reached its patient: its call and its
/// 傷病者接触, both as the server recorded them (ms since the epoch): a view is compared with
/// server times only, which the crew cannot set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentTimes {
    pub call_ms: i64,
    pub contact_ms: Option<i64>,
}

/// One crew member's views, and how many of them look unusual.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrewViews {
    pub crew_member: String,
    pub team: String,
    pub views: u64,
    pub exception_views: u64,
    /// Views with no 傷病者接触 recorded before them (or none at all).
    pub before_contact: u64,
    /// Incidents in which this member viewed two or more patients.
    pub multi_patient_incidents: u64,
    pub incidents: u64,
    /// Views in the last fifth of the viewing window.
    pub late_views: u64,
    /// Which of the four measures (exception, before contact, several patients, late) stand out
    /// against the bureau as a whole.
    pub flags: [bool; 4],
}

/// A share stands out when the member has at least three such views and its share lies more
/// than three binomial standard errors above the bureau's.
fn stands_out(count: u64, n: u64, bureau_count: u64, bureau_n: u64) -> bool {
    if count < 3 || n == 0 || bureau_n == 0 {
        return false;
    }
    let p = bureau_count as f64 / bureau_n as f64;
    let share = count as f64 / n as f64;
    let se = (p * (1.0 - p) / n as f64).sqrt();
    share > p + 3.0 * se.max(1e-9)
}

/// 閲覧状況の点検: the bureau's views per crew member, with the measures a privacy officer
/// checks (views without consent, views before patient contact, several patients in one
/// incident, views near the end of the window), each flagged where it stands out against the
/// bureau. Hospital reads of the crew's copy are left out. Sorted by flags, then views.
pub fn crew_report(
    views: &[ViewRecord],
    incident: impl Fn(&str) -> Option<IncidentTimes>,
    window_ms: i64,
) -> Vec<CrewViews> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut rows: BTreeMap<String, CrewViews> = BTreeMap::new();
    let mut patients: BTreeMap<(String, String), BTreeSet<u32>> = BTreeMap::new();
    for v in views.iter().filter(|v| v.hospital.is_none()) {
        let row = rows
            .entry(v.crew_member.clone())
            .or_insert_with(|| CrewViews {
                crew_member: v.crew_member.clone(),
                team: v.team.clone(),
                ..CrewViews::default()
            });
        row.views += 1;
        row.exception_views += u64::from(matches!(v.consent, Consent::Exception { .. }));
        let times = incident(&v.incident_number);
        let contacted = times
            .and_then(|t| t.contact_ms)
            .is_some_and(|c| c <= v.at_ms);
        row.before_contact += u64::from(!contacted);
        let late = times.is_some_and(|t| v.at_ms - t.call_ms > window_ms * 4 / 5);
        row.late_views += u64::from(late);
        patients
            .entry((v.crew_member.clone(), v.incident_number.clone()))
            .or_default()
            .insert(v.patient_number);
    }
    for ((member, _), seen) in &patients {
        if let Some(row) = rows.get_mut(member) {
            row.incidents += 1;
            row.multi_patient_incidents += u64::from(seen.len() >= 2);
        }
    }
    let sum = |f: fn(&CrewViews) -> u64| rows.values().map(f).sum::<u64>();
    let (all_views, all_incidents) = (sum(|r| r.views), sum(|r| r.incidents));
    let totals = [
        sum(|r| r.exception_views),
        sum(|r| r.before_contact),
        sum(|r| r.multi_patient_incidents),
        sum(|r| r.late_views),
    ];
    let mut out: Vec<CrewViews> = rows.into_values().collect();
    for r in &mut out {
        r.flags = [
            stands_out(r.exception_views, r.views, totals[0], all_views),
            stands_out(r.before_contact, r.views, totals[1], all_views),
            stands_out(
                r.multi_patient_incidents,
                r.incidents,
                totals[2],
                all_incidents,
            ),
            stands_out(r.late_views, r.views, totals[3], all_views),
        ];
    }
    out.sort_by(|a, b| {
        let flags = |r: &CrewViews| r.flags.iter().filter(|f| **f).count();
        flags(b)
            .cmp(&flags(a))
            .then(b.views.cmp(&a.views))
            .then(a.crew_member.cmp(&b.crew_member))
    });
    out
}

#[cfg(test)]
mod report_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::access::ExceptionReason;
    use crate::patient::PatientSecret;
    use crate::summary::View;

    fn view(crew: &str, incident: u32, patient: u32, at_ms: i64, exception: bool) -> ViewRecord {
        ViewRecord {
            at_ms,
            bureau: "a".into(),
            incident_number: format!("20250101-{incident:04}"),
            team: format!("{crew}隊"),
            crew_member: crew.into(),
            terminal: 1,
            patient: PatientSecret::from_bytes([1; 32]).patient(&format!("{incident}-{patient}")),
            patient_number: patient,
            consent: if exception {
                Consent::Exception {
                    reason: ExceptionReason::Unconscious,
                }
            } else {
                Consent::Obtained
            },
            view: View::Summary,
            provider_access_id: 1,
            hospital: None,
        }
    }

    #[test]
    fn a_member_whose_views_come_before_contact_or_late_or_several_per_incident_is_flagged() {
        const HOUR: i64 = 3_600_000;
        let mut views = Vec::new();
        // Twenty ordinary members: ten views each, after contact, early, one patient.
        for m in 0..20 {
            for i in 0..10 {
                views.push(view(
                    &format!("crew{m:02}"),
                    m * 100 + i,
                    1,
                    20 * 60_000,
                    i == 0,
                ));
            }
        }
        // odd: views before contact, late in the window, and three patients per incident.
        for i in 0..6 {
            for p in 1..=3 {
                views.push(view("odd", 9000 + i, p, 5 * HOUR + 30 * 60_000, false));
            }
        }
        let times = |n: &str| {
            let i: u32 = n.split('-').nth(1)?.parse().ok()?;
            Some(IncidentTimes {
                call_ms: 0,
                contact_ms: if i >= 9000 { None } else { Some(10 * 60_000) },
            })
        };
        let report = crew_report(&views, times, 6 * HOUR);
        let odd = &report[0];
        assert_eq!(odd.crew_member, "odd", "the most flagged first");
        assert_eq!((odd.views, odd.incidents), (18, 6));
        assert_eq!(odd.before_contact, 18);
        assert_eq!(odd.multi_patient_incidents, 6);
        assert_eq!(odd.late_views, 18);
        assert_eq!(odd.flags, [false, true, true, true]);
        for r in &report[1..] {
            assert_eq!(r.flags, [false; 4], "{} is ordinary", r.crew_member);
            assert_eq!(r.before_contact, 0);
        }
        // A hospital's read of the crew's copy is not the crew member's view.
        let mut hospital = view("crew00", 1, 1, 0, false);
        hospital.hospital = Some("kawasaki-municipal".into());
        let with_hospital: Vec<ViewRecord> = views.iter().cloned().chain([hospital]).collect();
        let again = crew_report(&with_hospital, times, 6 * HOUR);
        let crew00 = again.iter().find(|r| r.crew_member == "crew00").unwrap();
        assert_eq!(crew00.views, 10);
    }
}
