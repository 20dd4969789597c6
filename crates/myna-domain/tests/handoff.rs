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
    }
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
    assert!(log.may_hospital_view(A, &patient(1)).is_ok());
    // A calls back: no bed after all. The crew phones B.
    push(&mut log, answer(A, false), crew(TEAM));
    push(&mut log, answer(B, true), crew(TEAM));
    push(&mut log, to(B), crew(TEAM));
    assert_eq!(log.destination().as_deref(), Some(B));
    assert_eq!(
        log.may_hospital_view(A, &patient(1)),
        Err(IncidentError::NotDestination)
    );
    assert_eq!(log.may_hospital_view(B, &patient(1)), Ok(Consent::Obtained));
    push(&mut log, phase(Phase::Departure), crew(TEAM));
    push(&mut log, phase(Phase::HospitalArrival), crew(TEAM));
    assert_eq!(
        log.check(&to(A), &crew(TEAM)),
        Err(IncidentError::DestinationAfterArrival)
    );
    assert_eq!(
        log.check(&handoff(A), &staff(A)),
        Err(IncidentError::NotDestination)
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
    assert_eq!(
        log.may_hospital_view(A, &patient(1)),
        Err(IncidentError::NoConsent)
    );
    // A card never read in this incident.
    assert_eq!(
        log.may_hospital_view(A, &patient(2)),
        Err(IncidentError::IdentityNotConfirmed)
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
        log.may_hospital_view(A, &patient(1)),
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
        log.may_hospital_view(A, &patient(1)),
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
        log.may_hospital_view(A, &patient(1)),
        Err(IncidentError::IdentityNotConfirmed),
        "the consent was given to the first team"
    );
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
