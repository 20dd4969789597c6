//! A bureau's synthetic year of incidents (`myna-kyukyu simulate`), for the statistics
//! dashboard. The counts are the bureau's published ones; the shapes (season, weekday, hour),
//! the funnel's rates and the phase times come from `../shared/reference/maina-kyukyu-facts.md`
//! where it has them, and are marked approximate where it does not.
//!
//! Day `d` of seed `s` is a pure function of `(s, d)`, drawn from its own ChaCha stream, so
//! the year can be written day by day and a rerun gives the same incidents.

use crate::names::WARDS;
use crate::{pick_weighted, splitmix64};
use chrono::{Datelike, NaiveDate, TimeZone, Weekday};
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::incident::{
    Actor, ComplaintCategory, DeclineReason, EventKind, InquiryResult, MynaOutcome, Phase,
    ViewRecord,
};
use myna_domain::patient::PatientSecret;
use myna_domain::stats::JST;
use myna_domain::summary::View;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A bureau's published year: 救急出場件数 and 搬送人員.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedYear {
    pub year: i32,
    pub dispatches: u32,
    pub transported: u32,
    pub source: &'static str,
}

/// 川崎市消防局's years (maina-kyukyu-facts §6.2).
pub const KAWASAKI_YEARS: [PublishedYear; 4] = [
    PublishedYear {
        year: 2022,
        dispatches: 84_776,
        transported: 67_183,
        source: "FDMA 参考資料3; Town News 2024-02-09",
    },
    PublishedYear {
        year: 2023,
        dispatches: 87_591,
        transported: 71_110,
        source: "TXP press via medicaltech-news (transported derived)",
    },
    PublishedYear {
        year: 2024,
        dispatches: 89_114,
        transported: 72_446,
        source: "Yahoo article 70c0c9a4",
    },
    PublishedYear {
        year: 2025,
        dispatches: 91_157,
        transported: 74_147,
        source: "Kanaloco via livedoor 30348383; Town News 2026-01-23",
    },
];

/// The bureaus `simulate` knows, by the short name the command takes.
pub fn published_year(bureau: &str, year: i32) -> Result<PublishedYear, YearError> {
    let years = match bureau {
        "kawasaki" | "kawasaki-fd" => &KAWASAKI_YEARS,
        other => return Err(YearError::UnknownBureau(other.to_owned())),
    };
    years
        .iter()
        .find(|y| y.year == year)
        .copied()
        .ok_or(YearError::UnknownYear {
            year,
            known: years.iter().map(|y| y.year).collect(),
        })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YearError {
    #[error("no published figures for bureau {0:?} (known: kawasaki)")]
    UnknownBureau(String),
    #[error("no published figures for {year} (known: {known:?})")]
    UnknownYear { year: i32, known: Vec<i32> },
    #[error("the bureau has no team at a station of ward {0}")]
    NoTeam(String),
    #[error("{0} is not a date")]
    BadDate(i32),
}

/// A team as the simulation needs it: its id, station, name, and the crew account that acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTeam {
    pub id: i64,
    pub station: String,
    pub name: String,
    pub crew_account: i64,
    pub crew_login: String,
}

/// Who acts in the simulated year.
#[derive(Debug, Clone)]
pub struct SimBureau {
    pub code: String,
    pub secret: PatientSecret,
    pub dispatcher_account: i64,
    pub teams: Vec<SimTeam>,
    /// Registry hospitals (id, ward) that take the bureau's patients.
    pub hospitals: Vec<(String, String)>,
}

/// One event at its server time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEvent {
    pub kind: EventKind,
    pub actor: Actor,
    pub at_ms: i64,
}

/// A simulated incident: its events in order, and the view records of its views (with
/// `provider_access_id` 0: no provider answered a simulated view; `terminal` 0: no tablet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimIncident {
    pub events: Vec<SimEvent>,
    pub views: Vec<ViewRecord>,
}

/// Relative calls by month, January first. Winter (heat-stroke and influenza seasons aside,
/// the busiest) and the summer heat are higher. Approximate: the shape of FDMA's 救急救助の
/// 現況 monthly series, not Kawasaki's own.
const MONTH_WEIGHT: [u32; 12] = [112, 100, 97, 95, 96, 97, 108, 110, 98, 95, 96, 108];
/// Relative calls by weekday, Monday first (approximate: Mondays busiest, Sundays least).
const WEEKDAY_WEIGHT: [u32; 7] = [106, 101, 100, 100, 101, 98, 94];
/// Relative calls by Japan hour (approximate: the national daytime peak at 9–11).
const HOUR_WEIGHT: [u32; 24] = [
    26, 23, 20, 18, 17, 19, 26, 36, 49, 58, 60, 59, 55, 55, 54, 53, 52, 51, 50, 47, 43, 39, 34, 30,
];

/// 主訴区分 shares in permille (approximate; trauma and "other" dominate, as in FDMA's
/// 事故種別 series).
const CATEGORIES: [(ComplaintCategory, u32); 9] = [
    (ComplaintCategory::CardiacArrest, 15),
    (ComplaintCategory::Unconscious, 60),
    (ComplaintCategory::StrokeSuspected, 45),
    (ComplaintCategory::ChestPain, 50),
    (ComplaintCategory::Dyspnea, 80),
    (ComplaintCategory::AbdominalPain, 80),
    (ComplaintCategory::Trauma, 200),
    (ComplaintCategory::Fever, 110),
    (ComplaintCategory::Other, 360),
];

/// FDMA R6 report 図表1-33, FY2024 pilot: (used, not used) mean seconds of
/// 現着→接触, 接触→車内収容, 車内収容→現発.
const USED_S: [i64; 3] = [67, 346, 817];
const NOT_USED_S: [i64; 3] = [77, 354, 669];

/// The funnel, per mille at each step (FY2022 feasibility 61 %, FY2025's 17.4 % success of
/// attempts "mostly the card not on hand", holders' registration 86 %; the rest approximate).
const NOT_ATTEMPTED_URGENCY: u32 = 280;
const NOT_ATTEMPTED_ENVIRONMENT: u32 = 100;
const NO_CARD: u32 = 740;
const NOT_REGISTERED: u32 = 120;
const READER_FAILURE: u32 = 20;
const PERSON_NOT_FOUND: u32 = 5;
const IDENTITY_NOT_CONFIRMED: u32 = 20;
const CONSENT_REFUSED: u32 = 40;
const NETWORK_FAILURE: u32 = 20;

/// Inquiries until acceptance, per mille: 1, 2, 3, 4, 5, 6 (approximate; 4 or more about
/// 3 %, near FDMA's 重症以上 figures for large cities).
const INQUIRIES: [u32; 6] = [830, 100, 40, 15, 8, 7];

const DECLINES: [(DeclineReason, u32); 7] = [
    (DeclineReason::Busy, 30),
    (DeclineReason::BedsFull, 15),
    (DeclineReason::TreatmentDifficult, 20),
    (DeclineReason::NotSpecialty, 15),
    (DeclineReason::NoDoctor, 8),
    (DeclineReason::NotOurPatient, 2),
    (DeclineReason::Other, 10),
];

/// A simulated year of one bureau.
#[derive(Debug, Clone)]
pub struct YearSim {
    seed: u64,
    published: PublishedYear,
    bureau: SimBureau,
    /// Calls per day of the year, summing to the published dispatches.
    per_day: Vec<u32>,
    first_day: NaiveDate,
}

impl YearSim {
    pub fn new(seed: u64, published: PublishedYear, bureau: SimBureau) -> Result<Self, YearError> {
        let first_day = NaiveDate::from_ymd_opt(published.year, 1, 1)
            .ok_or(YearError::BadDate(published.year))?;
        let days: Vec<NaiveDate> = first_day
            .iter_days()
            .take_while(|d| d.year() == published.year)
            .collect();
        let weights: Vec<u64> = days
            .iter()
            .map(|d| {
                let month = MONTH_WEIGHT[d.month0() as usize];
                let weekday = WEEKDAY_WEIGHT[d.weekday().num_days_from_monday() as usize];
                u64::from(month) * u64::from(weekday)
            })
            .collect();
        for ward in WARDS {
            let station = format!("{}消防署", ward.name.trim_end_matches('区'));
            if !bureau.teams.iter().any(|t| t.station == station) {
                return Err(YearError::NoTeam(ward.name.to_owned()));
            }
        }
        Ok(YearSim {
            seed,
            per_day: apportion(u64::from(published.dispatches), &weights),
            published,
            bureau,
            first_day,
        })
    }

    pub fn published(&self) -> PublishedYear {
        self.published
    }

    /// Days in the year.
    pub fn days(&self) -> usize {
        self.per_day.len()
    }

    /// Calls on day `d` (from 0).
    pub fn calls_on(&self, d: usize) -> u32 {
        self.per_day.get(d).copied().unwrap_or(0)
    }

    /// The incidents of day `d` (from 0), in order of their calls.
    pub fn day(&self, d: usize) -> Vec<SimIncident> {
        let Some(date) = self.first_day.checked_add_days(chrono::Days::new(d as u64)) else {
            return Vec::new();
        };
        let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(self.seed ^ splitmix64(d as u64)));
        let Some(midnight) = date
            .and_hms_opt(0, 0, 0)
            .and_then(|t| JST.from_local_datetime(&t).single())
        else {
            return Vec::new();
        };
        let midnight_ms = midnight.timestamp_millis();
        let mut calls: Vec<i64> = (0..self.calls_on(d))
            .map(|_| {
                let hour = pick_weighted(&mut rng, HOUR_WEIGHT.iter().copied()) as i64;
                midnight_ms + hour * 3_600_000 + rng.random_range(0..3_600_000)
            })
            .collect();
        calls.sort_unstable();
        let transported_pm = u64::from(self.published.transported) * 1000
            / u64::from(self.published.dispatches.max(1));
        calls
            .into_iter()
            .enumerate()
            .map(|(i, at)| {
                let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
                self.incident(&mut rng, d, i, at, transported_pm as u32, weekend)
            })
            .collect()
    }

    fn incident(
        &self,
        rng: &mut ChaCha8Rng,
        day: usize,
        index: usize,
        call_ms: i64,
        transported_pm: u32,
        weekend: bool,
    ) -> SimIncident {
        let ward = &WARDS[pick_weighted(rng, WARDS.iter().map(|w| w.population_k))];
        let (town, _) = ward.towns[rng.random_range(0..ward.towns.len())];
        let location = format!(
            "川崎市{}{}{}-{}",
            ward.name,
            town,
            rng.random_range(1..6),
            rng.random_range(1..30)
        );
        let category = CATEGORIES[pick_weighted(rng, CATEGORIES.iter().map(|(_, w)| *w))].0;
        let hour = (call_ms - call_ms.div_euclid(86_400_000) * 86_400_000) / 3_600_000;
        let team = self.team_for(rng, ward.name, (hour + 9) % 24, weekend);
        let dispatcher = Actor::Dispatcher {
            account: self.bureau.dispatcher_account,
        };
        let crew = Actor::Crew {
            account: team.crew_account,
            terminal: 0,
            team: team.id,
        };
        let mut out = Vec::new();
        let mut t = call_ms;
        let mut push = |kind: EventKind, actor: &Actor, at: i64| {
            out.push(SimEvent {
                kind,
                actor: actor.clone(),
                at_ms: at,
            });
        };
        push(
            EventKind::Created {
                location,
                category,
                note: format!("{} (simulated)", category.label_ja()),
                card_prep_requested: rng.random_bool(0.5),
            },
            &dispatcher,
            t,
        );
        t += rng.random_range(40_000..110_000);
        push(EventKind::Assigned { team: team.id }, &dispatcher, t);
        // 入電→現着 about 9.8 min in Kawasaki (2023): dispatch→arrival about 8.5 min.
        t += spread(rng, 510_000);
        push(
            EventKind::Phase {
                phase: Phase::Arrival,
            },
            &crew,
            t,
        );
        let transported = rng.random_range(0..1000) < transported_pm;
        if !transported {
            // 不搬送: contact, then the team clears the scene.
            t += spread(rng, 70_000);
            push(
                EventKind::Phase {
                    phase: Phase::Contact,
                },
                &crew,
                t,
            );
            t += spread(rng, 1_200_000);
            push(EventKind::Closed, &dispatcher, t);
            return SimIncident {
                events: out,
                views: Vec::new(),
            };
        }
        let outcome = funnel(rng, category);
        let used = outcome == MynaOutcome::Viewed;
        let means = if used { USED_S } else { NOT_USED_S };
        t += spread(rng, means[0] * 1000);
        push(
            EventKind::Phase {
                phase: Phase::Contact,
            },
            &crew,
            t,
        );
        t += spread(rng, means[1] * 1000);
        push(
            EventKind::Phase {
                phase: Phase::InVehicle,
            },
            &crew,
            t,
        );
        // The card is read in the vehicle, then the hospitals are called.
        let serial = format!(
            "{:012X}",
            splitmix64(self.seed ^ ((day as u64) << 24) ^ index as u64) & 0xFFFF_FFFF_FFFF
        );
        let patient = self.bureau.secret.patient(&serial);
        let consent = consent_for(rng, category);
        let mut views = Vec::new();
        let mut patients = Vec::new();
        let step = |rng: &mut ChaCha8Rng, t: &mut i64| *t += rng.random_range(20_000..60_000);
        match outcome {
            MynaOutcome::Viewed => {
                step(rng, &mut t);
                push(
                    EventKind::IdentityConfirmed {
                        patient: patient.clone(),
                    },
                    &crew,
                    t,
                );
                step(rng, &mut t);
                push(
                    EventKind::Consent {
                        patient: patient.clone(),
                        consent,
                    },
                    &crew,
                    t,
                );
                t += rng.random_range(3_000..12_000);
                push(
                    EventKind::SummaryViewed {
                        patient: patient.clone(),
                        view: View::Summary,
                    },
                    &crew,
                    t,
                );
                views.push(ViewRecord {
                    at_ms: t,
                    bureau: self.bureau.code.clone(),
                    incident_number: String::new(),
                    team: team.name.clone(),
                    crew_member: team.crew_login.clone(),
                    terminal: 0,
                    patient: patient.clone(),
                    patient_number: 1,
                    consent,
                    view: View::Summary,
                    provider_access_id: 0,
                    hospital: None,
                });
                patients.push(patient);
            }
            MynaOutcome::ConsentRefused => {
                step(rng, &mut t);
                push(
                    EventKind::IdentityConfirmed {
                        patient: patient.clone(),
                    },
                    &crew,
                    t,
                );
                step(rng, &mut t);
                push(EventKind::ConsentRefused { patient }, &crew, t);
            }
            MynaOutcome::NetworkFailure => {
                step(rng, &mut t);
                push(
                    EventKind::IdentityConfirmed {
                        patient: patient.clone(),
                    },
                    &crew,
                    t,
                );
                step(rng, &mut t);
                push(EventKind::Consent { patient, consent }, &crew, t);
                step(rng, &mut t);
                push(EventKind::Outcome { outcome }, &crew, t);
            }
            other => {
                step(rng, &mut t);
                push(EventKind::Outcome { outcome: other }, &crew, t);
            }
        }
        // 照会: declines by distinct hospitals, then an acceptance.
        let inquiries = pick_weighted(rng, INQUIRIES.iter().copied()) + 1;
        let mut candidates: Vec<&str> = self
            .bureau
            .hospitals
            .iter()
            .filter(|(_, w)| w == ward.name)
            .chain(self.bureau.hospitals.iter().filter(|(_, w)| w != ward.name))
            .map(|(id, _)| id.as_str())
            .collect();
        candidates.truncate(inquiries.max(1));
        // 車内収容→現発 holds the card read (above) and the calls: what is left of FDMA's
        // mean after about 1.25 calls of 2–5 min and the choice is spent before and after.
        let base = means[2] * 1000 - 290_000;
        t += spread(rng, base.max(60_000) / 2);
        let mut accepted = None;
        for (n, hospital) in candidates.iter().enumerate() {
            let last = n + 1 == candidates.len();
            t += rng.random_range(120_000..300_000);
            let (result, reason) = if last {
                (InquiryResult::Accepted, None)
            } else {
                let r = DECLINES[pick_weighted(rng, DECLINES.iter().map(|(_, w)| *w))].0;
                (InquiryResult::Declined, Some(r))
            };
            push(
                EventKind::Inquiry {
                    hospital: (*hospital).to_owned(),
                    result,
                    reason,
                },
                &crew,
                t,
            );
            if last {
                accepted = Some((*hospital).to_owned());
            }
        }
        if let Some(hospital) = accepted {
            t += rng.random_range(10_000..40_000);
            push(EventKind::Destination { hospital, patients }, &crew, t);
        }
        t += spread(rng, base.max(60_000) / 2);
        push(
            EventKind::Phase {
                phase: Phase::Departure,
            },
            &crew,
            t,
        );
        t += spread(rng, 600_000);
        push(
            EventKind::Phase {
                phase: Phase::HospitalArrival,
            },
            &crew,
            t,
        );
        t += spread(rng, 1_200_000);
        push(EventKind::Closed, &dispatcher, t);
        SimIncident { events: out, views }
    }

    /// A team of the ward's station; a daytime team (日勤) only from 8:30 to 17:15 on weekdays.
    fn team_for(&self, rng: &mut ChaCha8Rng, ward: &str, hour: i64, weekend: bool) -> &SimTeam {
        let station = format!("{}消防署", ward.trim_end_matches('区'));
        let on_duty = |t: &&SimTeam| {
            t.station == station
                && (!t.name.contains("日勤") || (!weekend && (9..17).contains(&hour)))
        };
        let teams: Vec<&SimTeam> = self.bureau.teams.iter().filter(on_duty).collect();
        // `new` made sure every ward's station has a team; the first team is the fallback.
        match teams.len() {
            0 => &self.bureau.teams[0],
            n => teams[rng.random_range(0..n)],
        }
    }
}

/// How the マイナ救急 step ends for a transported patient.
fn funnel(rng: &mut ChaCha8Rng, category: ComplaintCategory) -> MynaOutcome {
    let mut pm = |p: u32| rng.random_range(0..1000) < p;
    let urgency = match category {
        ComplaintCategory::CardiacArrest => 700,
        _ => NOT_ATTEMPTED_URGENCY,
    };
    if pm(urgency) {
        return MynaOutcome::NotAttemptedUrgency;
    }
    // Each step, in the funnel's order: the share (per mille) of those still in it that stop.
    let steps = [
        (
            NOT_ATTEMPTED_ENVIRONMENT,
            MynaOutcome::NotAttemptedEnvironment,
        ),
        (NO_CARD, MynaOutcome::NoCard),
        (NOT_REGISTERED, MynaOutcome::NotRegistered),
        (READER_FAILURE, MynaOutcome::ReaderFailure),
        (PERSON_NOT_FOUND, MynaOutcome::PersonNotFound),
        (IDENTITY_NOT_CONFIRMED, MynaOutcome::IdentityNotConfirmed),
    ];
    for (per_mille, outcome) in steps {
        if pm(per_mille) {
            return outcome;
        }
    }
    let unconscious = matches!(
        category,
        ComplaintCategory::CardiacArrest | ComplaintCategory::Unconscious
    );
    if !unconscious && pm(CONSENT_REFUSED) {
        return MynaOutcome::ConsentRefused;
    }
    if pm(NETWORK_FAILURE) {
        return MynaOutcome::NetworkFailure;
    }
    MynaOutcome::Viewed
}

/// Consent, or the exception where the patient cannot give it.
fn consent_for(rng: &mut ChaCha8Rng, category: ComplaintCategory) -> Consent {
    let exception = |reason| Consent::Exception { reason };
    match category {
        ComplaintCategory::CardiacArrest | ComplaintCategory::Unconscious => {
            exception(ExceptionReason::Unconscious)
        }
        ComplaintCategory::StrokeSuspected if rng.random_bool(0.3) => {
            exception(ExceptionReason::AlteredConsciousness)
        }
        ComplaintCategory::Dyspnea if rng.random_bool(0.1) => {
            exception(ExceptionReason::UnableToCommunicate)
        }
        _ => Consent::Obtained,
    }
}

/// A duration around `mean_ms`: between 0.4× and 1.9× it, denser near the mean (the mean of
/// three uniform draws), never under 10 s.
fn spread(rng: &mut ChaCha8Rng, mean_ms: i64) -> i64 {
    let mean = mean_ms.max(10_000);
    let draws: i64 = (0..3).map(|_| rng.random_range(0..=1000)).sum();
    // draws / 3000 is in [0, 1] with mean 0.5: 0.4 + 1.2 × it has mean 1.0 and runs 0.4–1.6.
    (mean * (400 + draws * 1200 / 3000) / 1000).max(10_000)
}

/// Splits `total` over `weights` in proportion, by largest remainders, so the parts sum to it.
fn apportion(total: u64, weights: &[u64]) -> Vec<u32> {
    let sum: u64 = weights.iter().sum::<u64>().max(1);
    let mut parts: Vec<(u64, u64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (total * w / sum, total * w % sum, i))
        .collect();
    let given: u64 = parts.iter().map(|(p, _, _)| p).sum();
    let mut by_remainder: Vec<usize> = (0..parts.len()).collect();
    by_remainder.sort_by(|a, b| parts[*b].1.cmp(&parts[*a].1).then(a.cmp(b)));
    for i in by_remainder
        .into_iter()
        .take(usize::try_from(total - given).unwrap_or(0))
    {
        parts[i].0 += 1;
    }
    parts
        .into_iter()
        .map(|(p, _, _)| u32::try_from(p).unwrap_or(u32::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use myna_domain::incident::Incident;
    use myna_domain::stats::{Dashboard, IncidentFacts, Stage};

    pub(crate) fn kawasaki_like() -> SimBureau {
        let mut teams = Vec::new();
        for (i, ward) in WARDS.iter().enumerate() {
            let station = format!("{}消防署", ward.name.trim_end_matches('区'));
            for (j, name) in ["救急1", "救急2", "日勤救急"].iter().enumerate() {
                let id = (i * 3 + j + 1) as i64;
                teams.push(SimTeam {
                    id,
                    station: station.clone(),
                    name: format!("{}{name}", ward.name.trim_end_matches('区')),
                    crew_account: 100 + id,
                    crew_login: format!("crew{id:02}"),
                });
            }
        }
        SimBureau {
            code: "kawasaki-fd".into(),
            secret: PatientSecret::from_bytes([7; 32]),
            dispatcher_account: 1,
            teams,
            hospitals: myna_domain::hospitals::Registry::shared()
                .unwrap()
                .hospitals()
                .iter()
                .map(|h| (h.id.clone(), h.ward.clone()))
                .collect(),
        }
    }

    /// Folds a simulated incident through the real append rules.
    fn fold(sim: &SimIncident) -> Incident {
        let mut log = Incident::default();
        for (i, e) in sim.events.iter().enumerate() {
            log.check(&e.kind, &e.actor)
                .unwrap_or_else(|err| panic!("event {i} {:?} refused: {err}", e.kind));
            log.events.push(myna_domain::incident::Event {
                seq: u32::try_from(i + 1).unwrap(),
                kind: e.kind.clone(),
                at: chrono::DateTime::from_timestamp_millis(e.at_ms).unwrap(),
                device_at: None,
                idempotency_key: format!("k{i}"),
                actor: e.actor.clone(),
            });
        }
        log
    }

    #[test]
    fn the_year_has_the_published_dispatches_and_every_day_some() {
        let sim = YearSim::new(
            1,
            published_year("kawasaki", 2025).unwrap(),
            kawasaki_like(),
        )
        .unwrap();
        assert_eq!(sim.days(), 365);
        let total: u64 = (0..sim.days()).map(|d| u64::from(sim.calls_on(d))).sum();
        assert_eq!(total, 91_157);
        assert!((0..sim.days()).all(|d| (200..320).contains(&sim.calls_on(d))));
        assert!(published_year("kawasaki", 2019).is_err());
        assert!(published_year("yokohama", 2025).is_err());
    }

    #[test]
    fn every_simulated_incident_passes_the_append_rules_and_the_figures_look_like_the_reference() {
        let sim = YearSim::new(
            7,
            published_year("kawasaki", 2025).unwrap(),
            kawasaki_like(),
        )
        .unwrap();
        let mut facts = Vec::new();
        for d in (0..sim.days()).step_by(12) {
            let day = sim.day(d);
            assert_eq!(day.len(), sim.calls_on(d) as usize);
            assert_eq!(sim.day(d), day, "a day is a pure function of the seed");
            for incident in &day {
                assert!(
                    incident.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
                    "events in time order"
                );
                let log = fold(incident);
                assert!(log.is_closed());
                let f = IncidentFacts::of(&log).unwrap();
                assert_eq!(f.views as usize, incident.views.len());
                facts.push(f);
            }
        }
        let d = Dashboard::build(&facts);
        let n = d.total.dispatches() as f64;
        let share = |x: u64| x as f64 / n;
        // 81 % transported (74,147 of 91,157).
        assert!((0.78..0.85).contains(&share(d.total.transported)));
        // Viewed in about a tenth of dispatches: between FY2024's 7 % and 尾三's 27 %.
        assert!((0.04..0.15).contains(&share(d.total.stage(Stage::Viewed))));
        // Of attempts, about a fifth succeeded (FY2025 survey: 17.4 %).
        let of_attempts =
            d.total.stage(Stage::Viewed) as f64 / d.total.stage(Stage::Attempted) as f64;
        assert!((0.12..0.25).contains(&of_attempts), "{of_attempts}");
        assert!(d.total.exception_views > 0 && d.total.difficult > 0);
        // On scene longer when used, as FDMA measured.
        let used = d
            .total
            .interval(myna_domain::stats::Interval::InVehicleToDeparture, true);
        let not = d
            .total
            .interval(myna_domain::stats::Interval::InVehicleToDeparture, false);
        assert!(used.mean_s() > not.mean_s());
        // Busier at 10:00 than at 04:00 (Japan time).
        assert!(d.hours[10] > 2 * d.hours[4]);
    }
}
