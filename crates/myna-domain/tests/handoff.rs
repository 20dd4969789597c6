#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! 搬送先決定, バイタル and 引継ぎ: who may record them, and which hospital may see the
//! patient. Tried as an attacker would: another team, another hospital, a changed
//! destination, a withdrawn consent.

use chrono::{DateTime, Duration, Utc};
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::incident::*;
use myna_domain::patient::{PatientKey, PatientSecret};
use myna_domain::summary::View;
use myna_domain::vitals::{BloodPressure, Jcs, VitalSign, Vitals, VitalsError};

fn t0() -> DateTime<Utc> {
    "2026-11-26T01:00:00Z".parse().unwrap()
}

const TEAM: i64 = 7;
const OTHER_TEAM: i64 = 8;
const A: &str = "kawasaki-municipal";
const B: &str = "kanto-rosai";

fn crew(team: i64) -> Actor {
    Actor::Crew {
        account: 1,
        terminal: 1,
        team,
    }
}

fn staff(hospital: &str) -> Actor {
    Actor::Hospital {
        account: 50,
        hospital: hospital.into(),
    }
}

fn desk() -> Actor {
    Actor::Dispatcher { account: 9 }
}

fn patient(i: u32) -> PatientKey {
    PatientSecret::from_bytes([3; 32]).patient(&format!("01AA{i:08}"))
}

fn push(log: &mut Incident, kind: EventKind, actor: Actor) {
    log.check(&kind, &actor).unwrap();
    let seq = u32::try_from(log.events.len()).unwrap() + 1;
    log.events.push(Event {
        seq,
        kind,
        at: t0() + Duration::minutes(i64::from(seq)),
        device_at: None,
        idempotency_key: format!("k{seq}"),
        actor,
    });
}

fn phase(p: Phase) -> EventKind {
    EventKind::Phase { phase: p }
}

fn answer(hospital: &str, accepted: bool) -> EventKind {
    EventKind::Inquiry {
        hospital: hospital.into(),
        result: if accepted {
            InquiryResult::Accepted
        } else {
            InquiryResult::Declined
        },
        reason: (!accepted).then_some(DeclineReason::Busy),
    }
}

fn to(hospital: &str) -> EventKind {
    EventKind::Destination {
        hospital: hospital.into(),
        patients: vec![patient(1)],
    }
}

const WINDOW: Duration = Duration::hours(6);

fn now() -> DateTime<Utc> {
    t0() + Duration::hours(1)
}

/// The key of the latest view of `p` (ems keys it by the provider's access).
fn view_key(log: &Incident, p: &PatientKey) -> String {
    log.events
        .iter()
        .rev()
        .find(|e| matches!(&e.kind, EventKind::SummaryViewed { patient, .. } if patient == p))
        .map(|e| e.idempotency_key.clone())
        .unwrap_or_default()
}

fn hospital_view(log: &Incident, hospital: &str, n: u32) -> Result<Consent, IncidentError> {
    let p = patient(n);
    log.may_hospital_view(hospital, &p, &view_key(log, &p), now(), WINDOW)
}

fn handoff(hospital: &str) -> EventKind {
    EventKind::Handoff {
        hospital: hospital.into(),
        received_by: "救急科 山田".into(),
    }
}

/// Created, assigned to TEAM, on scene, patient 1 checked, consented and viewed.
fn viewed() -> Incident {
    let mut log = Incident { events: vec![] };
    push(
        &mut log,
        EventKind::Created {
            location: "川崎市川崎区宮本町1".into(),
            category: ComplaintCategory::StrokeSuspected,
            note: String::new(),
            card_prep_requested: false,
        },
        desk(),
    );
    push(&mut log, EventKind::Assigned { team: TEAM }, desk());
    push(&mut log, phase(Phase::Arrival), crew(TEAM));
    push(&mut log, phase(Phase::Contact), crew(TEAM));
    let p = patient(1);
    push(
        &mut log,
        EventKind::IdentityConfirmed { patient: p.clone() },
        crew(TEAM),
    );
    push(
        &mut log,
        EventKind::Consent {
            patient: p.clone(),
            consent: Consent::Obtained,
        },
        crew(TEAM),
    );
    push(
        &mut log,
        EventKind::SummaryViewed {
            patient: p,
            view: View::Summary,
        },
        crew(TEAM),
    );
    log
}

#[test]
fn a_destination_is_a_hospital_whose_latest_answer_is_yes() {
    let mut log = viewed();
    assert_eq!(
        log.check(&to(A), &crew(TEAM)),
        Err(IncidentError::DestinationNotAccepted),
        "never phoned"
    );
    push(&mut log, answer(A, false), crew(TEAM));
    assert_eq!(
        log.check(&to(A), &crew(TEAM)),
        Err(IncidentError::DestinationNotAccepted),
        "declined"
    );
    push(&mut log, answer(A, true), crew(TEAM));
    assert_eq!(
        log.check(&to(A), &crew(OTHER_TEAM)),
        Err(IncidentError::WrongTeam)
    );
    assert_eq!(
        log.check(&to(A), &desk()),
        Err(IncidentError::NotACrewEvent)
    );
    assert_eq!(
        log.check(&to(A), &staff(A)),
        Err(IncidentError::NotAHospitalEvent),
        "a hospital does not pick itself"
    );
    push(&mut log, to(A), crew(TEAM));
    assert_eq!(log.destination().as_deref(), Some(A));
}

#[test]
fn a_re_selection_moves_the_patient_and_the_old_hospital_loses_it() {
    let mut log = viewed();
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    assert!(hospital_view(&log, A, 1).is_ok());
    // A calls back: no bed after all. The crew phones B.
    push(&mut log, answer(A, false), crew(TEAM));
    push(&mut log, answer(B, true), crew(TEAM));
    push(&mut log, to(B), crew(TEAM));
    assert_eq!(log.destination().as_deref(), Some(B));
    assert_eq!(
        hospital_view(&log, A, 1),
        Err(IncidentError::NotDestination)
    );
    assert_eq!(hospital_view(&log, B, 1), Ok(Consent::Obtained));
    push(&mut log, phase(Phase::Departure), crew(TEAM));
    push(&mut log, phase(Phase::HospitalArrival), crew(TEAM));
    assert_eq!(
        log.check(&handoff(A), &staff(A)),
        Err(IncidentError::NotDestination)
    );
    push(&mut log, handoff(B), staff(B));
    assert_eq!(
        log.check(&to(B), &crew(TEAM)),
        Err(IncidentError::DestinationAfterHandoff)
    );
}

#[test]
fn a_decline_after_the_choice_takes_the_patient_away_from_that_hospital() {
    let mut log = viewed();
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    push(&mut log, phase(Phase::Departure), crew(TEAM));
    // A phones back: no bed after all.
    push(&mut log, answer(A, false), crew(TEAM));
    assert_eq!(log.destination(), None);
    assert_eq!(
        hospital_view(&log, A, 1),
        Err(IncidentError::NotDestination)
    );
    push(&mut log, phase(Phase::HospitalArrival), crew(TEAM));
    assert_eq!(
        log.check(&handoff(A), &staff(A)),
        Err(IncidentError::NotDestination),
        "A cannot sign for a patient it refused"
    );
    // Diverted to B and arrived before re-selecting: the crew may still choose B.
    push(&mut log, answer(B, true), crew(TEAM));
    push(&mut log, to(B), crew(TEAM));
    assert_eq!(hospital_view(&log, B, 1), Ok(Consent::Obtained));
    push(&mut log, handoff(B), staff(B));
}

#[test]
fn only_the_patients_taken_there_are_seen_and_only_within_the_window() {
    let mut log = viewed();
    // A second patient, checked, consented and viewed, but not transported to A.
    let second = patient(2);
    push(
        &mut log,
        EventKind::IdentityConfirmed {
            patient: second.clone(),
        },
        crew(TEAM),
    );
    push(
        &mut log,
        EventKind::Consent {
            patient: second.clone(),
            consent: Consent::Obtained,
        },
        crew(TEAM),
    );
    push(
        &mut log,
        EventKind::SummaryViewed {
            patient: second,
            view: View::Summary,
        },
        crew(TEAM),
    );
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    assert_eq!(hospital_view(&log, A, 1), Ok(Consent::Obtained));
    assert_eq!(
        hospital_view(&log, A, 2),
        Err(IncidentError::NotDestination),
        "patient 2 was not taken to A"
    );
    let unknown = EventKind::Destination {
        hospital: A.into(),
        patients: vec![patient(9)],
    };
    assert_eq!(
        log.check(&unknown, &crew(TEAM)),
        Err(IncidentError::UnknownPatient)
    );
    // The window: six hours from the call, then six hours from the handoff.
    let p = patient(1);
    let key = view_key(&log, &p);
    let late = t0() + WINDOW + Duration::minutes(2);
    assert_eq!(
        log.may_hospital_view(A, &p, &key, late, WINDOW),
        Err(IncidentError::WindowPassed)
    );
    push(&mut log, phase(Phase::HospitalArrival), crew(TEAM));
    push(&mut log, handoff(A), staff(A));
    assert_eq!(
        log.may_hospital_view(A, &p, &key, late, WINDOW),
        Ok(Consent::Obtained),
        "readable for the window after the handoff"
    );
    assert_eq!(
        log.may_hospital_view(A, &p, &key, late + WINDOW, WINDOW),
        Err(IncidentError::WindowPassed)
    );
    assert_eq!(
        log.may_hospital_view(A, &p, "k1", now(), WINDOW),
        Err(IncidentError::NoConsent),
        "a key that is not this patient's view"
    );
}

#[test]
fn only_the_destination_signs_the_handoff_once_after_arrival() {
    let mut log = viewed();
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    push(&mut log, phase(Phase::Departure), crew(TEAM));
    assert_eq!(
        log.check(&handoff(A), &staff(A)),
        Err(IncidentError::NotArrived)
    );
    push(&mut log, phase(Phase::HospitalArrival), crew(TEAM));
    assert_eq!(
        log.check(&handoff(A), &crew(TEAM)),
        Err(IncidentError::NotAHospitalEvent),
        "the crew cannot sign for the doctor"
    );
    assert_eq!(
        log.check(&handoff(A), &staff(B)),
        Err(IncidentError::NotDestination),
        "staff of B cannot sign in A's name"
    );
    assert_eq!(
        log.check(&handoff(B), &staff(B)),
        Err(IncidentError::NotDestination)
    );
    let nameless = EventKind::Handoff {
        hospital: A.into(),
        received_by: "  ".into(),
    };
    assert_eq!(
        log.check(&nameless, &staff(A)),
        Err(IncidentError::ReceiverName)
    );
    push(&mut log, handoff(A), staff(A));
    let (who, at) = log.handoff().unwrap();
    assert_eq!(who, "救急科 山田");
    assert!(at > log.arrived_at_hospital().unwrap());
    assert_eq!(
        log.check(&handoff(A), &staff(A)),
        Err(IncidentError::HandoffRepeated)
    );
    assert_eq!(
        log.check(&phase(Phase::HospitalArrival), &staff(A)),
        Err(IncidentError::NotAHospitalEvent),
        "staff record nothing but the handoff"
    );
}

#[test]
fn a_hospital_sees_only_what_the_crew_was_allowed_to_see() {
    // Nothing viewed yet: no lawful basis to pass on.
    let mut log = viewed();
    log.events.pop();
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    assert_eq!(hospital_view(&log, A, 1), Err(IncidentError::NoConsent));
    // A card never read in this incident.
    assert_eq!(
        hospital_view(&log, A, 2),
        Err(IncidentError::NotDestination)
    );

    // Viewed under the exception: the exception is the basis passed on.
    let mut log = viewed();
    log.events.truncate(5);
    push(
        &mut log,
        EventKind::Consent {
            patient: patient(1),
            consent: Consent::Exception {
                reason: ExceptionReason::Unconscious,
            },
        },
        crew(TEAM),
    );
    push(
        &mut log,
        EventKind::SummaryViewed {
            patient: patient(1),
            view: View::Summary,
        },
        crew(TEAM),
    );
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    assert_eq!(
        hospital_view(&log, A, 1),
        Ok(Consent::Exception {
            reason: ExceptionReason::Unconscious
        })
    );

    // The patient withdraws: the hospital loses it too.
    push(
        &mut log,
        EventKind::ConsentWithdrawn {
            patient: patient(1),
        },
        crew(TEAM),
    );
    assert_eq!(
        hospital_view(&log, A, 1),
        Err(IncidentError::ConsentWithdrawn)
    );
}

#[test]
fn a_reassigned_incident_passes_on_only_the_new_teams_basis() {
    let mut log = viewed();
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    push(&mut log, EventKind::Assigned { team: OTHER_TEAM }, desk());
    assert_eq!(
        hospital_view(&log, A, 1),
        Err(IncidentError::IdentityNotConfirmed),
        "the consent was given to the first team"
    );
    // The new team checks and consents but views nothing: the first team's copy stays out.
    let first_key = view_key(&log, &patient(1));
    push(
        &mut log,
        EventKind::IdentityConfirmed {
            patient: patient(1),
        },
        crew(OTHER_TEAM),
    );
    push(
        &mut log,
        EventKind::Consent {
            patient: patient(1),
            consent: Consent::Obtained,
        },
        crew(OTHER_TEAM),
    );
    assert_eq!(
        log.may_hospital_view(A, &patient(1), &first_key, now(), WINDOW),
        Err(IncidentError::NoConsent),
        "a copy from the previous assignment is not passed on"
    );
}

#[test]
fn only_the_dispatcher_creates_and_assigns() {
    let log = viewed();
    for actor in [crew(TEAM), staff(A)] {
        assert_eq!(
            log.check(&EventKind::Assigned { team: TEAM }, &actor),
            Err(IncidentError::DispatcherOnly)
        );
    }
    let empty = Incident { events: vec![] };
    let created = EventKind::Created {
        location: "x".into(),
        category: ComplaintCategory::Other,
        note: String::new(),
        card_prep_requested: false,
    };
    assert_eq!(
        empty.check(&created, &staff(A)),
        Err(IncidentError::DispatcherOnly)
    );
}

#[test]
fn the_latest_vitals_are_the_latest_measured_not_the_latest_delivered() {
    let mut log = viewed();
    let at = |m: i64| t0() + Duration::minutes(m);
    for (measured, pulse) in [(30, 120), (20, 90)] {
        let kind = EventKind::Vitals {
            vitals: Vitals {
                pulse: Some(pulse),
                ..Vitals::default()
            },
        };
        log.check(&kind, &crew(TEAM)).unwrap();
        let seq = u32::try_from(log.events.len()).unwrap() + 1;
        log.events.push(Event {
            seq,
            kind,
            at: at(40),
            device_at: Some(at(measured)),
            idempotency_key: format!("v{seq}"),
            actor: crew(TEAM),
        });
    }
    let (when, latest) = log.latest_vitals().unwrap();
    assert_eq!(
        latest.pulse,
        Some(120),
        "the 20-minute reading came late from the outbox"
    );
    assert_eq!(when, at(30));
}

#[test]
fn vitals_are_the_crews_checked_and_overlaid() {
    let mut log = viewed();
    let bad = EventKind::Vitals {
        vitals: Vitals {
            spo2: Some(101),
            ..Vitals::default()
        },
    };
    assert_eq!(
        log.check(&bad, &crew(TEAM)),
        Err(IncidentError::Vitals(VitalsError::OutOfRange(
            VitalSign::Spo2
        )))
    );
    let first = Vitals {
        jcs: Jcs::new(10),
        pulse: Some(112),
        blood_pressure: Some(BloodPressure {
            systolic: 182,
            diastolic: 104,
        }),
        ..Vitals::default()
    };
    assert_eq!(
        log.check(&EventKind::Vitals { vitals: first }, &crew(OTHER_TEAM)),
        Err(IncidentError::WrongTeam)
    );
    assert_eq!(
        log.check(&EventKind::Vitals { vitals: first }, &staff(A)),
        Err(IncidentError::NotAHospitalEvent)
    );
    push(&mut log, EventKind::Vitals { vitals: first }, crew(TEAM));
    push(
        &mut log,
        EventKind::Vitals {
            vitals: Vitals {
                pulse: Some(98),
                ..Vitals::default()
            },
        },
        crew(TEAM),
    );
    let (at, latest) = log.latest_vitals().unwrap();
    assert_eq!(latest.pulse, Some(98));
    assert_eq!(latest.jcs, Jcs::new(10));
    assert_eq!(at, log.events.last().unwrap().at);
    assert_eq!(log.vitals().len(), 2);
}

#[test]
fn a_team_status_follows_its_incidents_phases() {
    let mut log = viewed();
    assert_eq!(log.team_status(), TeamStatus::OnScene);
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    push(&mut log, phase(Phase::Departure), crew(TEAM));
    assert_eq!(log.team_status(), TeamStatus::Transporting);
    push(&mut log, phase(Phase::HospitalArrival), crew(TEAM));
    assert_eq!(log.team_status(), TeamStatus::AtHospital);
    push(&mut log, EventKind::Closed, desk());
    assert_eq!(log.team_status(), TeamStatus::Available);
    let mut fresh = Incident { events: vec![] };
    push(
        &mut fresh,
        EventKind::Created {
            location: "川崎市麻生区".into(),
            category: ComplaintCategory::Fever,
            note: String::new(),
            card_prep_requested: false,
        },
        desk(),
    );
    assert_eq!(
        fresh.team_status(),
        TeamStatus::Available,
        "nobody assigned"
    );
    push(&mut fresh, EventKind::Assigned { team: TEAM }, desk());
    assert_eq!(fresh.team_status(), TeamStatus::Dispatched);
}

#[test]
fn every_kawasaki_station_has_a_starting_point() {
    for station in [
        "川崎消防署",
        "幸消防署",
        "中原消防署",
        "高津消防署",
        "宮前消防署",
        "多摩消防署",
        "麻生消防署",
    ] {
        assert!(
            myna_domain::hospitals::station_point(station).is_some(),
            "{station}"
        );
    }
    assert!(myna_domain::hospitals::station_point("横浜消防署").is_none());
}

#[test]
fn a_destination_voided_by_a_decline_stays_void_until_chosen_again_and_a_late_receipt_opens_nothing()
 {
    let mut log = viewed();
    push(&mut log, answer(A, true), crew(TEAM));
    push(&mut log, to(A), crew(TEAM));
    push(&mut log, answer(A, false), crew(TEAM));
    push(&mut log, answer(A, true), crew(TEAM));
    assert_eq!(
        log.destination(),
        None,
        "a new acceptance is not a new choice"
    );
    push(&mut log, to(A), crew(TEAM));
    assert_eq!(log.destination().as_deref(), Some(A));
    push(&mut log, phase(Phase::HospitalArrival), crew(TEAM));
    push(&mut log, handoff(A), staff(A));
    // A stray decline tap after the handoff does not take the signed patient away.
    push(&mut log, answer(A, false), crew(TEAM));
    assert_eq!(log.destination().as_deref(), Some(A));

    // A receipt signed after the window does not reopen it.
    let mut late = viewed();
    push(&mut late, answer(A, true), crew(TEAM));
    push(&mut late, to(A), crew(TEAM));
    push(&mut late, phase(Phase::HospitalArrival), crew(TEAM));
    late.check(&handoff(A), &staff(A)).unwrap();
    let seq = u32::try_from(late.events.len()).unwrap() + 1;
    late.events.push(Event {
        seq,
        kind: handoff(A),
        at: t0() + WINDOW + Duration::hours(1),
        device_at: None,
        idempotency_key: "late".into(),
        actor: staff(A),
    });
    let p = patient(1);
    let key = view_key(&late, &p);
    assert_eq!(
        late.may_hospital_view(A, &p, &key, t0() + WINDOW + Duration::hours(2), WINDOW),
        Err(IncidentError::WindowPassed)
    );
}

#[test]
fn a_bureau_sets_its_own_age_past_which_a_status_is_stale() {
    use myna_domain::hospitals::{Criteria, HospitalStatus, Registry};
    let registry = Registry::shared().unwrap();
    let criteria = Criteria::shared().unwrap();
    let h = registry.get(A).unwrap();
    let status = HospitalStatus::accepting_everything(h, t0());
    let later = t0() + Duration::minutes(30);
    assert!(
        !status.is_stale(later, criteria),
        "120 minutes by the table"
    );
    assert!(status.is_stale(later, &criteria.with_stale_after(20)));
    assert!(!status.is_stale(later, &criteria.with_stale_after(45)));
}
