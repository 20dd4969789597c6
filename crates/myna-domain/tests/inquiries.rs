#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! 照会 (the crew's phone inquiries to hospitals) and FDMA's 搬送困難事案.

use chrono::{DateTime, Duration, Utc};
use myna_domain::incident::*;

fn t0() -> DateTime<Utc> {
    "2026-11-26T01:00:00Z".parse().unwrap()
}

const TEAM: i64 = 7;

fn crew(team: i64) -> Actor {
    Actor::Crew {
        account: 1,
        terminal: 1,
        team,
    }
}

/// Appends `kind` at `minutes` after t0, after checking it as the store would.
fn push(log: &mut Incident, kind: EventKind, actor: Actor, minutes: i64) {
    log.check(&kind, &actor).unwrap();
    let seq = u32::try_from(log.events.len()).unwrap() + 1;
    log.events.push(Event {
        seq,
        kind,
        at: t0() + Duration::minutes(minutes),
        device_at: None,
        idempotency_key: format!("k{seq}"),
        actor,
    });
}

/// Created, assigned to TEAM, arrived on scene at minute 8.
fn on_scene() -> Incident {
    let mut log = Incident { events: vec![] };
    let desk = Actor::Dispatcher { account: 9 };
    push(
        &mut log,
        EventKind::Created {
            location: "川崎市中原区小杉町3-600".into(),
            category: ComplaintCategory::Trauma,
            note: String::new(),
            card_prep_requested: false,
        },
        desk.clone(),
        0,
    );
    push(&mut log, EventKind::Assigned { team: TEAM }, desk, 1);
    push(
        &mut log,
        EventKind::Phase {
            phase: Phase::Arrival,
        },
        crew(TEAM),
        8,
    );
    log
}

fn declined(hospital: &str) -> EventKind {
    EventKind::Inquiry {
        hospital: hospital.into(),
        result: InquiryResult::Declined,
        reason: Some(DeclineReason::BedsFull),
    }
}

#[test]
fn an_inquiry_names_a_hospital_and_a_decline_its_reason() {
    let log = on_scene();
    let no_reason = EventKind::Inquiry {
        hospital: "kanto-rosai".into(),
        result: InquiryResult::Declined,
        reason: None,
    };
    assert_eq!(
        log.check(&no_reason, &crew(TEAM)),
        Err(IncidentError::InquiryReason)
    );
    let accepted_with_reason = EventKind::Inquiry {
        hospital: "kanto-rosai".into(),
        result: InquiryResult::Accepted,
        reason: Some(DeclineReason::Busy),
    };
    assert_eq!(
        log.check(&accepted_with_reason, &crew(TEAM)),
        Err(IncidentError::InquiryReason)
    );
    for bad in ["", "Kanto Rosai", "../x", &"a".repeat(65)] {
        assert_eq!(
            log.check(&declined(bad), &crew(TEAM)),
            Err(IncidentError::UnknownHospital),
            "{bad:?}"
        );
    }
    // Only the assigned team's crew phones for this patient.
    assert_eq!(
        log.check(&declined("kanto-rosai"), &crew(TEAM + 1)),
        Err(IncidentError::WrongTeam)
    );
    assert_eq!(
        log.check(&declined("kanto-rosai"), &Actor::Dispatcher { account: 9 }),
        Err(IncidentError::NotACrewEvent)
    );
    assert!(log.check(&declined("kanto-rosai"), &crew(TEAM)).is_ok());
}

#[test]
fn four_inquiries_and_thirty_minutes_on_scene_make_a_difficult_transport() {
    let mut log = on_scene();
    for (i, h) in ["nms-musashikosugi", "kanto-rosai", "ida-municipal"]
        .iter()
        .enumerate()
    {
        push(&mut log, declined(h), crew(TEAM), 10 + i as i64 * 5);
    }
    assert_eq!(log.inquiries().len(), 3);
    assert_eq!(
        log.declined_hospitals(),
        ["nms-musashikosugi", "kanto-rosai", "ida-municipal"]
    );
    // Three inquiries, 40 minutes on scene: not yet.
    assert!(!log.difficult_transport(t0() + Duration::minutes(48)));
    push(&mut log, declined("kawasaki-saiwai"), crew(TEAM), 30);
    // Four inquiries, but 29 minutes on scene (arrived at minute 8).
    assert!(!log.difficult_transport(t0() + Duration::minutes(37)));
    assert!(log.difficult_transport(t0() + Duration::minutes(38)));
    assert_eq!(log.on_scene_minutes(t0() + Duration::minutes(38)), Some(30));
    // Accepted on the fifth call; departure at minute 36 fixes the time on scene at 28.
    push(
        &mut log,
        EventKind::Inquiry {
            hospital: "teikyo-mizonokuchi".into(),
            result: InquiryResult::Accepted,
            reason: None,
        },
        crew(TEAM),
        35,
    );
    let mut departed = log.clone();
    push(
        &mut departed,
        EventKind::Phase {
            phase: Phase::InVehicle,
        },
        crew(TEAM),
        35,
    );
    push(
        &mut departed,
        EventKind::Phase {
            phase: Phase::Departure,
        },
        crew(TEAM),
        36,
    );
    assert_eq!(
        departed.on_scene_minutes(t0() + Duration::hours(3)),
        Some(28)
    );
    assert!(!departed.difficult_transport(t0() + Duration::hours(3)));
    // Without departure the clock runs on.
    assert!(log.difficult_transport(t0() + Duration::hours(3)));
    // No arrival recorded: no time on scene, never difficult.
    let en_route = Incident {
        events: log
            .events
            .iter()
            .filter(|e| {
                !matches!(
                    e.kind,
                    EventKind::Phase {
                        phase: Phase::Arrival
                    }
                )
            })
            .cloned()
            .collect(),
    };
    assert_eq!(en_route.on_scene_minutes(t0() + Duration::hours(3)), None);
    assert!(!en_route.difficult_transport(t0() + Duration::hours(3)));
}

#[test]
fn closing_without_departure_stops_the_on_scene_clock() {
    let mut log = on_scene();
    for (i, h) in ["a", "b", "c", "d"].iter().enumerate() {
        push(&mut log, declined(h), crew(TEAM), 10 + i as i64);
    }
    // 不搬送: closed at minute 20 without 現発; twelve minutes on scene, for ever.
    push(
        &mut log,
        EventKind::Closed,
        Actor::Dispatcher { account: 9 },
        20,
    );
    assert_eq!(log.on_scene_minutes(t0() + Duration::hours(5)), Some(12));
    assert!(!log.difficult_transport(t0() + Duration::hours(5)));
}

#[test]
fn a_hospital_that_accepts_on_a_later_call_is_no_longer_declined() {
    let mut log = on_scene();
    push(&mut log, declined("kanto-rosai"), crew(TEAM), 10);
    push(&mut log, declined("ida-municipal"), crew(TEAM), 11);
    push(
        &mut log,
        EventKind::Inquiry {
            hospital: "kanto-rosai".into(),
            result: InquiryResult::Accepted,
            reason: None,
        },
        crew(TEAM),
        20,
    );
    assert_eq!(log.declined_hospitals(), ["ida-municipal"]);
    // Every call counts towards FDMA's 照会回数, the accepting one too.
    assert_eq!(log.inquiries().len(), 3);
}

#[test]
fn decline_reasons_round_trip_as_text() {
    for r in DeclineReason::ALL {
        assert_eq!(DeclineReason::parse(r.as_str()), Some(r));
        assert!(!r.label_ja().is_empty());
    }
    assert_eq!(DeclineReason::parse("full"), None);
}
