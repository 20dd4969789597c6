#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The per-patient viewing rule over random incident histories: whatever sequence of
//! assignments, face checks, consents, refusals, withdrawals and views by whichever teams `check`
//! accepts, `may_view` allows a view only when an independent reading of the log finds, for
//! that patient and that team, a face check and a consent since the incident was last assigned
//! to the team, no withdrawal or refusal ever, and the incident open and in its window. And every
//! refusal is one of the rule's typed reasons.

use chrono::{DateTime, Duration, Utc};
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::incident::{
    Actor, ComplaintCategory, DEFAULT_VIEW_WINDOW, Event, EventKind, Incident, IncidentError,
};
use myna_domain::patient::{PatientKey, PatientSecret};
use myna_domain::summary::View;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn patient(i: u8) -> PatientKey {
    PatientSecret::from_bytes([9; 32]).patient(&format!("01AA{i:08}"))
}

#[derive(Debug, Clone)]
enum Step {
    Assign(i64),
    Face(i64, u8),
    Consent(i64, u8, bool),
    Withdraw(i64, u8),
    Refuse(i64, u8),
    Viewed(i64, u8),
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    let team = 1i64..=3;
    let p = 0u8..3;
    prop_oneof![
        2 => team.clone().prop_map(Step::Assign),
        4 => (team.clone(), p.clone()).prop_map(|(t, p)| Step::Face(t, p)),
        4 => (team.clone(), p.clone(), any::<bool>()).prop_map(|(t, p, e)| Step::Consent(t, p, e)),
        1 => (team.clone(), p.clone()).prop_map(|(t, p)| Step::Withdraw(t, p)),
        1 => (team.clone(), p.clone()).prop_map(|(t, p)| Step::Refuse(t, p)),
        1 => (team, p).prop_map(|(t, p)| Step::Viewed(t, p)),
        1 => Just(Step::Close),
    ]
}

fn crew(team: i64) -> Actor {
    Actor::Crew {
        account: team * 10,
        terminal: team * 100,
        team,
    }
}

/// Applies the steps `check` accepts, as the store would.
fn history(steps: &[Step]) -> Incident {
    let mut log = Incident::default();
    let push = |log: &mut Incident, kind: EventKind, actor: Actor| {
        if log.check(&kind, &actor).is_ok() {
            let seq = u32::try_from(log.events.len()).unwrap() + 1;
            log.events.push(Event {
                seq,
                kind,
                at: t0() + Duration::seconds(i64::from(seq)),
                device_at: None,
                idempotency_key: format!("k{seq}"),
                actor,
            });
        }
    };
    let created = EventKind::Created {
        location: "川崎市".into(),
        category: ComplaintCategory::Trauma,
        note: String::new(),
        card_prep_requested: false,
    };
    push(&mut log, created, Actor::Dispatcher { account: 1 });
    for s in steps {
        let (kind, actor) = match s {
            Step::Assign(t) => (
                EventKind::Assigned { team: *t },
                Actor::Dispatcher { account: 1 },
            ),
            Step::Face(t, p) => (
                EventKind::IdentityConfirmed {
                    patient: patient(*p),
                },
                crew(*t),
            ),
            Step::Consent(t, p, exception) => (
                EventKind::Consent {
                    patient: patient(*p),
                    consent: if *exception {
                        Consent::Exception {
                            reason: ExceptionReason::Unconscious,
                        }
                    } else {
                        Consent::Obtained
                    },
                },
                crew(*t),
            ),
            Step::Withdraw(t, p) => (
                EventKind::ConsentWithdrawn {
                    patient: patient(*p),
                },
                crew(*t),
            ),
            Step::Refuse(t, p) => (
                EventKind::ConsentRefused {
                    patient: patient(*p),
                },
                crew(*t),
            ),
            Step::Viewed(t, p) => (
                EventKind::SummaryViewed {
                    patient: patient(*p),
                    view: View::Summary,
                },
                crew(*t),
            ),
            Step::Close => (EventKind::Closed, Actor::Dispatcher { account: 1 }),
        };
        push(&mut log, kind, actor);
    }
    log
}

/// The rule read straight off the log, without the incident's own helpers.
fn oracle(log: &Incident, team: i64, p: &PatientKey) -> Option<Consent> {
    if log.events.iter().any(|e| e.kind == EventKind::Closed) {
        return None;
    }
    let last_assign = log
        .events
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::Assigned { .. }))?;
    if log.events[last_assign].kind != (EventKind::Assigned { team }) {
        return None;
    }
    let barred = log.events.iter().any(|e| {
        matches!(&e.kind,
            EventKind::ConsentWithdrawn { patient } | EventKind::ConsentRefused { patient }
                if patient == p)
    });
    if barred {
        return None;
    }
    let since = &log.events[last_assign + 1..];
    let by_team = |e: &&Event| matches!(e.actor, Actor::Crew { team: t, .. } if t == team);
    let face = since
        .iter()
        .filter(by_team)
        .any(|e| matches!(&e.kind, EventKind::IdentityConfirmed { patient } if patient == p));
    let consent = since
        .iter()
        .filter(by_team)
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::Consent { patient, consent } if patient == p => Some(*consent),
            _ => None,
        });
    if face { consent } else { None }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn may_view_allows_exactly_what_the_log_supports(steps in prop::collection::vec(step(), 0..24)) {
        let log = history(&steps);
        let now = t0() + Duration::minutes(30);
        for team in 1..=3 {
            for i in 0..3 {
                let p = patient(i);
                let got = log.may_view(team, &p, now, DEFAULT_VIEW_WINDOW);
                prop_assert_eq!(got.clone().ok(), oracle(&log, team, &p), "team {} patient {}", team, i);
                if let Err(e) = got {
                    prop_assert!(matches!(
                        e,
                        IncidentError::Closed
                            | IncidentError::NotAssigned
                            | IncidentError::WrongTeam
                            | IncidentError::ConsentWithdrawn
                            | IncidentError::ConsentRefused
                            | IncidentError::ConsentNotForThisCard
                            | IncidentError::IdentityNotConfirmed
                            | IncidentError::NoConsent
                    ), "unexpected refusal {:?}", e);
                }
                // Past the window nothing is viewable.
                let late = t0() + DEFAULT_VIEW_WINDOW + Duration::minutes(1);
                prop_assert!(log.may_view(team, &p, late, DEFAULT_VIEW_WINDOW).is_err());
            }
        }
    }
}
