//! Conformance suite every `EmsStore` backend runs against a fresh, real database: seeding,
//! tenant isolation, idempotent appends, the incident rules enforced inside the append
//! transaction (per-patient face check and consent, withdrawal, device times, the team guard),
//! the view log and sessions. Each function panics with a message naming the broken behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::ems::{
    AccountSeed, AppendError, Appended, BureauId, BureauSeed, EmsStore, HandoffSnapshot,
    HospitalReadOutcome, IncidentFilter, IncidentId, LockoutPolicy, NewEvent, PastIncident, Role,
    StatusChange, TeamId,
};
use crate::{ChainReport, StoreError};
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::hospitals::{Acceptance, Capability, HospitalStatus};
use myna_domain::incident::{
    Actor, ComplaintCategory, DEVICE_CLOCK_TOLERANCE, EventKind, IncidentError, MynaOutcome, Phase,
    ViewRecord,
};
use myna_domain::incident::{DeclineReason, InquiryResult};
use myna_domain::patient::{PatientKey, PatientSecret};
use myna_domain::stats::{IncidentFacts, Stage};
use myna_domain::summary::View;

/// 2026-09-21 (JST), well inside any viewing window the tests use.
pub const T0: i64 = 1_790_000_000_000;

/// Kawasaki's 7 ward stations with their number of ambulance teams (31 in all), the shape of
/// `myna_ems::seed::kawasaki` (the store cannot depend on `myna-ems`; its own tests seed the
/// real thing).
pub const KAWASAKI_SHAPE: [(&str, usize); 7] = [
    ("川崎消防署", 5),
    ("幸消防署", 4),
    ("中原消防署", 5),
    ("高津消防署", 4),
    ("宮前消防署", 4),
    ("多摩消防署", 4),
    ("麻生消防署", 5),
];

/// The patient secret of every `kawasaki_like` bureau.
pub const KAWASAKI_SECRET: [u8; 32] = [0x4b; 32];
/// The patient secret of every `small` bureau.
pub const SMALL_SECRET: [u8; 32] = [0x53; 32];

/// A bureau of Kawasaki's shape with one dispatcher account.
pub fn kawasaki_like(code: &str) -> BureauSeed {
    BureauSeed {
        code: code.into(),
        name: "川崎市消防局".into(),
        provider_url: "http://127.0.0.1:9".into(),
        provider_credential_file: "/nonexistent/provider-token".into(),
        view_window_s: 6 * 3600,
        patient_secret: PatientSecret::from_bytes(KAWASAKI_SECRET),
        stations: KAWASAKI_SHAPE
            .iter()
            .map(|(station, n)| {
                (
                    (*station).to_owned(),
                    (1..=*n).map(|i| format!("{station}-救急{i}")).collect(),
                )
            })
            .collect(),
        accounts: vec![AccountSeed {
            login: "dispatcher".into(),
            display_name: "指令員".into(),
            role: Role::Dispatcher,
            team: None,
            hospital: None,
            password_hash: "dispatcher-hash".into(),
        }],
    }
}

/// A small bureau: one station, two teams (`救急1`, `救急2`), a crew member for each (`crew01`,
/// `crew02`) and a dispatcher. Two bureaus built from it share team names, logins and the
/// patient secret, so nothing but the bureau id tells their rows apart.
pub fn small(code: &str) -> BureauSeed {
    let crew = |login: &str, team: &str| AccountSeed {
        login: login.into(),
        display_name: format!("{team} 隊長"),
        role: Role::Crew,
        team: Some(team.into()),
        hospital: None,
        password_hash: format!("{code}-{login}-hash"),
    };
    BureauSeed {
        code: code.into(),
        name: format!("{code} 消防本部"),
        provider_url: "http://127.0.0.1:9".into(),
        provider_credential_file: "/nonexistent/provider-token".into(),
        view_window_s: 3600,
        patient_secret: PatientSecret::from_bytes(SMALL_SECRET),
        stations: vec![("本署".into(), vec!["救急1".into(), "救急2".into()])],
        accounts: vec![
            crew("crew01", "救急1"),
            crew("crew02", "救急2"),
            AccountSeed {
                login: "dispatcher".into(),
                display_name: "指令員".into(),
                role: Role::Dispatcher,
                team: None,
                hospital: None,
                password_hash: format!("{code}-dispatcher-hash"),
            },
            AccountSeed {
                login: "er-a".into(),
                display_name: "救急外来".into(),
                role: Role::Hospital,
                team: None,
                hospital: Some(HOSPITAL_A.into()),
                password_hash: format!("{code}-er-a-hash"),
            },
        ],
    }
}

/// The registry hospital of the `small` bureaus' hospital account `er-a`.
pub const HOSPITAL_A: &str = "kawasaki-municipal";

/// Patient `n` of a `small` bureau: the card whose serial is `01AA000n`.
pub fn patient(n: u32) -> PatientKey {
    PatientSecret::from_bytes(SMALL_SECRET).patient(&format!("01AA{n:04}"))
}

/// A dispatcher's event.
pub fn dispatcher_event(kind: EventKind, key: &str) -> NewEvent {
    NewEvent {
        kind,
        actor: Actor::Dispatcher { account: 1 },
        idempotency_key: key.into(),
        device_at_ms: None,
        team_guard: None,
    }
}

/// The crew of `team`, as the API records it: the actor names the team and the event carries
/// the team guard.
pub fn crew_event(team: TeamId, kind: EventKind, key: &str, device_at_ms: Option<i64>) -> NewEvent {
    NewEvent {
        kind,
        actor: Actor::Crew {
            account: 100 + team,
            terminal: 200 + team,
            team,
        },
        idempotency_key: key.into(),
        device_at_ms,
        team_guard: Some(team),
    }
}

pub fn created() -> EventKind {
    EventKind::Created {
        location: "川崎市中原区小杉町".into(),
        category: ComplaintCategory::ChestPain,
        note: "60代男性 胸痛".into(),
        card_prep_requested: true,
    }
}

pub fn phase(p: Phase) -> EventKind {
    EventKind::Phase { phase: p }
}

pub fn face(p: &PatientKey) -> EventKind {
    EventKind::IdentityConfirmed { patient: p.clone() }
}

pub fn consent(p: &PatientKey, consent: Consent) -> EventKind {
    EventKind::Consent {
        patient: p.clone(),
        consent,
    }
}

pub fn withdrawn(p: &PatientKey) -> EventKind {
    EventKind::ConsentWithdrawn { patient: p.clone() }
}

/// The id of the bureau's team `name`.
pub async fn team<S: EmsStore>(store: &S, bureau: BureauId, name: &str) -> TeamId {
    store
        .teams(bureau)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("bureau {bureau} has no team {name:?}"))
        .id
}

/// An incident of `bureau`, created at `T0` and assigned to its team `team_name` at `T0 + 1`.
pub async fn assigned_incident<S: EmsStore>(
    store: &S,
    bureau: BureauId,
    team_name: &str,
) -> IncidentId {
    let team = team(store, bureau, team_name).await;
    let id = store
        .create_incident(bureau, dispatcher_event(created(), "create"), T0)
        .await
        .unwrap()
        .id;
    store
        .append(
            bureau,
            id,
            dispatcher_event(EventKind::Assigned { team }, "assign"),
            T0 + 1,
        )
        .await
        .unwrap();
    id
}

pub async fn event_count<S: EmsStore>(store: &S, bureau: BureauId, id: IncidentId) -> usize {
    store
        .incident(bureau, id)
        .await
        .unwrap()
        .unwrap()
        .log
        .events
        .len()
}

fn all() -> IncidentFilter {
    IncidentFilter {
        open_only: false,
        team: None,
        limit: 100,
    }
}

/// A view record of bureau `a-fd`'s crew01, for patient `n` of the incident.
pub fn view_record(i: i64, n: u32) -> ViewRecord {
    ViewRecord {
        at_ms: T0 + i,
        bureau: "a-fd".into(),
        incident_number: format!("20260921-{i:04}"),
        team: "救急1".into(),
        crew_member: "crew01".into(),
        terminal: 1,
        patient: patient(n),
        patient_number: n,
        consent: Consent::Obtained,
        view: View::Summary,
        provider_access_id: 100 + i,
        hospital: None,
    }
}

/// Asserts that an append was refused for `rule`, and that the incident's log still has `n`
/// events and no event with `key`.
async fn refused<S: EmsStore>(
    store: &S,
    bureau: BureauId,
    id: IncidentId,
    event: NewEvent,
    now_ms: i64,
    rule: IncidentError,
    n: usize,
) {
    let key = event.idempotency_key.clone();
    let what = format!("{:?} by {:?}", event.kind, event.actor);
    assert_eq!(
        store.append(bureau, id, event, now_ms).await,
        Err(AppendError::Rule(rule.clone())),
        "{what} must be refused with {rule:?}"
    );
    let log = store.incident(bureau, id).await.unwrap().unwrap().log;
    assert_eq!(log.events.len(), n, "the refused {what} appended nothing");
    assert!(
        log.by_key(&key).is_none(),
        "the refused {what} left its key {key:?} in the log"
    );
}

// ---------------------------------------------------------------------------------------------
// Seeding

pub async fn a_kawasaki_shaped_seed_gives_31_teams_at_their_stations_and_a_second_seed_is_refused<
    S: EmsStore,
>(
    store: S,
) {
    let id = store
        .seed_bureau(kawasaki_like("kawasaki-fd"))
        .await
        .unwrap();

    let teams = store.teams(id).await.unwrap();
    assert_eq!(teams.len(), 31);
    for t in &teams {
        assert_eq!(t.bureau_id, id);
        assert!(
            t.name.starts_with(&format!("{}-", t.station)),
            "team {} is filed under station {}",
            t.name,
            t.station
        );
    }
    for (station, n) in KAWASAKI_SHAPE {
        assert_eq!(teams.iter().filter(|t| t.station == station).count(), n);
    }

    // The bureau reads back by code and by id, with the patient secret it was seeded with.
    let bureau = store.bureau("kawasaki-fd").await.unwrap().unwrap();
    assert_eq!(bureau.id, id);
    assert_eq!(bureau.view_window_s, 6 * 3600);
    assert_eq!(
        bureau.patient_secret,
        PatientSecret::from_bytes(KAWASAKI_SECRET),
        "the bureau keeps the patient secret it was seeded with"
    );
    assert_eq!(store.bureau_by_id(id).await.unwrap(), Some(bureau));

    let again = store.seed_bureau(kawasaki_like("kawasaki-fd")).await;
    assert_eq!(
        again,
        Err(StoreError::OrganisationExists("kawasaki-fd".into()))
    );
    assert_eq!(
        store.teams(id).await.unwrap().len(),
        31,
        "the refused seed added no teams"
    );
}

pub async fn a_seed_that_fails_half_way_leaves_no_bureau_behind<S: EmsStore>(store: S) {
    let mut seed = small("broken-fd");
    seed.accounts.push(AccountSeed {
        login: "crew99".into(),
        display_name: "どこにもいない隊".into(),
        role: Role::Crew,
        team: Some("存在しない救急".into()),
        hospital: None,
        password_hash: "h".into(),
    });
    assert!(store.seed_bureau(seed).await.is_err());
    assert_eq!(store.bureau("broken-fd").await.unwrap(), None);
    // The code is free again: the failed seed committed nothing.
    let id = store.seed_bureau(small("broken-fd")).await.unwrap();
    assert_eq!(store.teams(id).await.unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Tenant isolation

pub async fn one_bureau_never_reads_or_writes_another_bureaus_incidents<S: EmsStore>(store: S) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let a_team = team(&store, a, "救急1").await;
    let a_incident = assigned_incident(&store, a, "救急1").await;
    let b_incident = assigned_incident(&store, b, "救急1").await;
    assert_ne!(a_incident, b_incident);

    // Numbers are per bureau: both are the day's first.
    let a_record = store.incident(a, a_incident).await.unwrap().unwrap();
    let b_record = store.incident(b, b_incident).await.unwrap().unwrap();
    assert_eq!(a_record.number, b_record.number);
    assert_eq!(a_record.bureau_id, a);

    assert_eq!(store.incident(b, a_incident).await.unwrap(), None);
    assert_eq!(store.incident(a, b_incident).await.unwrap(), None);

    let b_list = store.incidents(b, all()).await.unwrap();
    assert_eq!(
        b_list.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![b_incident]
    );
    let b_open_of_a_team = store
        .incidents(
            b,
            IncidentFilter {
                open_only: true,
                team: Some(a_team),
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert!(
        b_open_of_a_team.is_empty(),
        "filtering by A's team id from B lists nothing"
    );

    let before = a_record.log.clone();
    assert_eq!(
        store
            .append(
                b,
                a_incident,
                dispatcher_event(phase(Phase::Arrival), "b-tap"),
                T0 + 2
            )
            .await,
        Err(AppendError::NotFound)
    );
    assert_eq!(
        store
            .append(
                b,
                a_incident,
                dispatcher_event(EventKind::Closed, "b-close"),
                T0 + 2
            )
            .await,
        Err(AppendError::NotFound)
    );
    assert_eq!(
        store.incident(a, a_incident).await.unwrap().unwrap().log,
        before,
        "A's log is untouched"
    );
}

pub async fn one_bureau_cannot_revoke_or_register_terminals_of_another<S: EmsStore>(store: S) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let a_team = team(&store, a, "救急1").await;
    let a_terminal = store
        .add_terminal(a, a_team, "A tablet", "a-terminal-hash".into())
        .await
        .unwrap();
    let crew = store.account(a, "crew01").await.unwrap().unwrap();
    store
        .create_session(
            "a-crew-session".into(),
            crew.id,
            Some(a_terminal),
            T0 + 1_000_000,
        )
        .await
        .unwrap();

    assert!(!store.revoke_terminal(b, a_terminal).await.unwrap());
    let t = store
        .terminal_by_token("a-terminal-hash")
        .await
        .unwrap()
        .unwrap();
    assert!(!t.revoked, "B's revocation did not touch A's terminal");
    assert!(
        store.session("a-crew-session", T0).await.unwrap().is_some(),
        "B's revocation did not end the session of A's crew on A's terminal"
    );

    assert!(
        store
            .add_terminal(b, a_team, "smuggled", "b-terminal-hash".into())
            .await
            .is_err(),
        "B cannot register a terminal for A's team"
    );
    assert_eq!(
        store.terminal_by_token("b-terminal-hash").await.unwrap(),
        None
    );
    assert!(store.terminals(b).await.unwrap().is_empty());
    assert_eq!(
        store
            .terminals(a)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![a_terminal]
    );
}

pub async fn accounts_and_passwords_are_per_bureau<S: EmsStore>(store: S) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let a_crew = store.account(a, "crew01").await.unwrap().unwrap();
    let b_crew = store.account(b, "crew01").await.unwrap().unwrap();
    assert_ne!(a_crew.id, b_crew.id);
    assert_eq!(a_crew.bureau_id, a);
    assert_eq!(a_crew.role, Role::Crew);
    assert_eq!(a_crew.team_id, Some(team(&store, a, "救急1").await));

    assert!(
        store
            .set_password(b, "crew01", "b-new-hash".into())
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .account(a, "crew01")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "a-fd-crew01-hash",
        "B's reset did not change A's crew01"
    );
    assert_eq!(
        store
            .account(b, "crew01")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "b-new-hash"
    );
    assert!(!store.set_password(b, "nobody", "x".into()).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Idempotency

pub async fn the_same_key_and_kind_twice_is_one_event_answered_as_a_duplicate<S: EmsStore>(
    store: S,
) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, b, "救急1").await;
    let id = assigned_incident(&store, b, "救急1").await;
    let tap = || crew_event(t, phase(Phase::Arrival), "tap-1", None);

    let first = store.append(b, id, tap(), T0 + 10).await.unwrap();
    let Appended::New(committed) = first else {
        panic!("the first append is new: {first:?}");
    };
    assert_eq!(committed.seq, 3);

    // A resend, later: the committed event comes back, with its original time.
    let again = store.append(b, id, tap(), T0 + 99).await.unwrap();
    assert_eq!(again, Appended::Duplicate(committed.clone()));

    let log = store.incident(b, id).await.unwrap().unwrap().log;
    assert_eq!(log.events.len(), 3);
    assert_eq!(
        log.events
            .iter()
            .filter(|e| e.idempotency_key == "tap-1")
            .count(),
        1
    );

    // The resend of an event committed before the close is still answered (an outbox drains
    // after the dispatcher closed the incident).
    store
        .append(b, id, dispatcher_event(EventKind::Closed, "close"), T0 + 20)
        .await
        .unwrap();
    assert_eq!(
        store.append(b, id, tap(), T0 + 30).await.unwrap(),
        Appended::Duplicate(committed)
    );
}

pub async fn the_same_key_with_a_different_kind_is_refused_as_key_reused<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, b, "救急1").await;
    let id = assigned_incident(&store, b, "救急1").await;
    store
        .append(
            b,
            id,
            crew_event(t, phase(Phase::Arrival), "tap-1", None),
            T0 + 10,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .append(
                b,
                id,
                crew_event(t, phase(Phase::Contact), "tap-1", None),
                T0 + 11
            )
            .await,
        Err(AppendError::KeyReused("tap-1".into()))
    );
    assert_eq!(
        store
            .append(
                b,
                id,
                crew_event(t, face(&patient(1)), "tap-1", None),
                T0 + 11
            )
            .await,
        Err(AppendError::KeyReused("tap-1".into()))
    );
    let log = store.incident(b, id).await.unwrap().unwrap().log;
    assert_eq!(log.events.len(), 3);
    assert_eq!(log.by_key("tap-1").unwrap().kind, phase(Phase::Arrival));
}

// ---------------------------------------------------------------------------------------------
// The rules, inside the store

pub async fn a_phase_before_any_assignment_is_refused_as_not_assigned<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, b, "救急1").await;
    let id = store
        .create_incident(b, dispatcher_event(created(), "create"), T0)
        .await
        .unwrap()
        .id;
    // Without a team guard: a crew's guarded event is refused `WrongTeam` before the rules see
    // it, since no team is assigned.
    refused(
        &store,
        b,
        id,
        dispatcher_event(phase(Phase::Arrival), "tap"),
        T0 + 1,
        IncidentError::NotAssigned,
        1,
    )
    .await;
    // A second create through append is refused too.
    refused(
        &store,
        b,
        id,
        dispatcher_event(created(), "again"),
        T0 + 1,
        IncidentError::NotCreatedFirst,
        1,
    )
    .await;
    // The refused key was not consumed: the same tap succeeds once a team is assigned.
    store
        .append(
            b,
            id,
            dispatcher_event(EventKind::Assigned { team: t }, "assign"),
            T0 + 2,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .append(
                b,
                id,
                dispatcher_event(phase(Phase::Arrival), "tap"),
                T0 + 3
            )
            .await,
        Ok(Appended::New(_))
    ));
}

pub async fn nothing_is_appended_after_closed<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, b, "救急1").await;
    let id = assigned_incident(&store, b, "救急1").await;
    let other = team(&store, b, "救急2").await;
    let a = patient(1);
    store
        .append(b, id, crew_event(t, face(&a), "face", None), T0 + 3)
        .await
        .unwrap();
    store
        .append(
            b,
            id,
            crew_event(t, consent(&a, Consent::Obtained), "consent", None),
            T0 + 4,
        )
        .await
        .unwrap();
    store
        .append(b, id, dispatcher_event(EventKind::Closed, "close"), T0 + 5)
        .await
        .unwrap();
    let n = event_count(&store, b, id).await;
    assert_eq!(n, 5, "created, assigned, face check, consent, closed");

    let by_crew = [
        phase(Phase::Arrival),
        face(&a),
        consent(&a, Consent::Obtained),
        withdrawn(&a),
        EventKind::SummaryViewed {
            patient: a.clone(),
            view: View::Summary,
        },
    ];
    let by_dispatcher = [
        EventKind::Assigned { team: other },
        EventKind::Outcome {
            outcome: MynaOutcome::NoCard,
        },
        EventKind::Closed,
    ];
    let late = by_crew
        .into_iter()
        .map(|kind| (true, kind))
        .chain(by_dispatcher.into_iter().map(|kind| (false, kind)));
    for (i, (crew, kind)) in late.enumerate() {
        let key = format!("late-{i}");
        let event = if crew {
            crew_event(t, kind, &key, Some(T0 + 6))
        } else {
            dispatcher_event(kind, &key)
        };
        refused(&store, b, id, event, T0 + 6, IncidentError::Closed, n).await;
    }
    let record = store.incident(b, id).await.unwrap().unwrap();
    assert!(record.log.is_closed());
    // The closed incident drops out of the open list.
    let open_list = store
        .incidents(
            b,
            IncidentFilter {
                open_only: true,
                team: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert!(open_list.iter().all(|r| r.id != id));
}

pub async fn a_crew_event_is_refused_once_the_incident_went_to_another_team<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let one = team(&store, b, "救急1").await;
    let two = team(&store, b, "救急2").await;
    let id = assigned_incident(&store, b, "救急1").await;
    let a = patient(1);
    store
        .append(b, id, crew_event(one, face(&a), "k1", None), T0 + 2)
        .await
        .unwrap();
    store
        .append(
            b,
            id,
            dispatcher_event(EventKind::Assigned { team: two }, "a2"),
            T0 + 3,
        )
        .await
        .unwrap();
    refused(
        &store,
        b,
        id,
        crew_event(one, face(&a), "k2", None),
        T0 + 4,
        IncidentError::WrongTeam,
        4,
    )
    .await;
    // A phase tap is no patient event, so only the guard stops the old team's tablet.
    refused(
        &store,
        b,
        id,
        crew_event(one, phase(Phase::Arrival), "k3", None),
        T0 + 4,
        IncidentError::WrongTeam,
        4,
    )
    .await;
    // The team the incident went to records its own.
    store
        .append(b, id, crew_event(two, face(&a), "k4", None), T0 + 5)
        .await
        .unwrap();
    assert_eq!(event_count(&store, b, id).await, 5);
}

pub async fn consent_for_a_patient_whose_face_was_not_confirmed_is_refused<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, b, "救急1").await;
    let id = assigned_incident(&store, b, "救急1").await;
    let (a, pb) = (patient(1), patient(2));
    store
        .append(b, id, crew_event(t, face(&a), "face-a", None), T0 + 2)
        .await
        .unwrap();
    refused(
        &store,
        b,
        id,
        crew_event(t, consent(&pb, Consent::Obtained), "consent-b", None),
        T0 + 3,
        IncidentError::IdentityNotConfirmed,
        3,
    )
    .await;
    // Only a crew records a face check.
    refused(
        &store,
        b,
        id,
        dispatcher_event(face(&pb), "desk-face-b"),
        T0 + 3,
        IncidentError::NotACrewEvent,
        3,
    )
    .await;
    // A's own consent follows A's face check.
    let exception = Consent::Exception {
        reason: ExceptionReason::Unconscious,
    };
    store
        .append(
            b,
            id,
            crew_event(t, consent(&a, exception), "consent-a", None),
            T0 + 4,
        )
        .await
        .unwrap();
    // Once B's face is checked, the refused key records B's consent.
    store
        .append(b, id, crew_event(t, face(&pb), "face-b", None), T0 + 5)
        .await
        .unwrap();
    store
        .append(
            b,
            id,
            crew_event(t, consent(&pb, Consent::Obtained), "consent-b", None),
            T0 + 6,
        )
        .await
        .unwrap();
    let log = store.incident(b, id).await.unwrap().unwrap().log;
    assert_eq!(log.events.len(), 6);
    assert_eq!(log.patient_number(&a), Some(1));
    assert_eq!(log.patient_number(&pb), Some(2));
    assert_eq!(log.patient_status(t, &a).consent, Some(exception));
    assert_eq!(log.patient_status(t, &pb).consent, Some(Consent::Obtained));
}

pub async fn after_a_withdrawal_that_patients_face_check_and_consent_are_refused<S: EmsStore>(
    store: S,
) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, b, "救急1").await;
    let id = assigned_incident(&store, b, "救急1").await;
    let (a, pb, nobody) = (patient(1), patient(2), patient(3));
    let taps = [
        ("face-a", face(&a)),
        ("consent-a", consent(&a, Consent::Obtained)),
        ("face-b", face(&pb)),
        ("withdraw-a", withdrawn(&a)),
    ];
    for (i, (key, kind)) in taps.into_iter().enumerate() {
        let now = T0 + 10 + i64::try_from(i).unwrap();
        store
            .append(b, id, crew_event(t, kind, key, None), now)
            .await
            .unwrap();
    }
    let n = 6;
    assert_eq!(event_count(&store, b, id).await, n);

    refused(
        &store,
        b,
        id,
        crew_event(t, face(&a), "face-a-again", None),
        T0 + 20,
        IncidentError::ConsentWithdrawn,
        n,
    )
    .await;
    refused(
        &store,
        b,
        id,
        crew_event(t, consent(&a, Consent::Obtained), "consent-a-again", None),
        T0 + 20,
        IncidentError::ConsentWithdrawn,
        n,
    )
    .await;
    // A card never read in this incident cannot be withdrawn.
    refused(
        &store,
        b,
        id,
        crew_event(t, withdrawn(&nobody), "withdraw-nobody", None),
        T0 + 20,
        IncidentError::UnknownPatient,
        n,
    )
    .await;
    // The other patient is not touched by A's withdrawal.
    store
        .append(
            b,
            id,
            crew_event(t, consent(&pb, Consent::Obtained), "consent-b", None),
            T0 + 21,
        )
        .await
        .unwrap();
    let log = store.incident(b, id).await.unwrap().unwrap().log;
    assert!(log.patient_status(t, &a).withdrawn);
    assert!(!log.patient_status(t, &pb).withdrawn);
    assert_eq!(log.events.len(), n + 1);
}

pub async fn device_times_ahead_of_the_server_before_creation_or_before_the_previous_tap_are_refused<
    S: EmsStore,
>(
    store: S,
) {
    let tolerance = DEVICE_CLOCK_TOLERANCE.num_milliseconds();
    assert_eq!(tolerance, 5_000);
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, b, "救急1").await;
    let id = assigned_incident(&store, b, "救急1").await;
    let arrival = T0 + 60_000;
    store
        .append(
            b,
            id,
            crew_event(t, phase(Phase::Arrival), "arrival", Some(arrival)),
            arrival,
        )
        .await
        .unwrap();
    let now = T0 + 120_000;
    let contact = |key: &str, device: i64| crew_event(t, phase(Phase::Contact), key, Some(device));

    refused(
        &store,
        b,
        id,
        contact("ahead", now + tolerance + 1),
        now,
        IncidentError::DeviceTimeAhead,
        3,
    )
    .await;
    refused(
        &store,
        b,
        id,
        contact("before-creation", T0 - tolerance - 1),
        now,
        IncidentError::DeviceTimeBeforeCreation,
        3,
    )
    .await;
    refused(
        &store,
        b,
        id,
        contact("before-previous", arrival - tolerance - 1),
        now,
        IncidentError::DeviceTimeBeforePrevious,
        3,
    )
    .await;
    // A patient event is held to the same clock.
    refused(
        &store,
        b,
        id,
        crew_event(t, face(&patient(1)), "face", Some(now + tolerance + 1)),
        now,
        IncidentError::DeviceTimeAhead,
        3,
    )
    .await;
    // Within the tolerance either way, the tap is kept.
    store
        .append(b, id, contact("ahead", now + tolerance), now)
        .await
        .unwrap();
    assert_eq!(event_count(&store, b, id).await, 4);
}

pub async fn a_late_tap_keeps_its_device_time<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, b, "救急1").await;
    let id = assigned_incident(&store, b, "救急1").await;
    let arrival = T0 + 60_000;
    store
        .append(
            b,
            id,
            crew_event(t, phase(Phase::Arrival), "arrival", Some(arrival)),
            arrival,
        )
        .await
        .unwrap();

    // Tapped offline two minutes after arrival, delivered by the outbox half an hour later.
    let tapped = T0 + 180_000;
    let delivered = T0 + 30 * 60_000;
    let appended = store
        .append(
            b,
            id,
            crew_event(t, phase(Phase::Contact), "contact", Some(tapped)),
            delivered,
        )
        .await
        .unwrap();
    let Appended::New(event) = appended else {
        panic!("the late tap is new: {appended:?}");
    };
    assert_eq!(event.at.timestamp_millis(), delivered);
    assert_eq!(
        event.device_at.map(|d| d.timestamp_millis()),
        Some(tapped),
        "the late tap keeps the time it was tapped"
    );

    // The next tap is held to the late tap's device time, not to when it arrived.
    store
        .append(
            b,
            id,
            crew_event(t, face(&patient(1)), "face", Some(tapped + 10_000)),
            delivered + 1,
        )
        .await
        .unwrap();

    let log = store.incident(b, id).await.unwrap().unwrap().log;
    assert_eq!(
        log.by_key("contact"),
        Some(&event),
        "it reads back as committed"
    );
    let contact_at = log
        .phase_times()
        .into_iter()
        .find(|(p, _)| *p == Phase::Contact)
        .map(|(_, at)| at.timestamp_millis());
    assert_eq!(
        contact_at,
        Some(tapped),
        "the phase is timed by the tap, not by its delivery"
    );
}

// ---------------------------------------------------------------------------------------------
// The view log

/// A hospital's read is queued for the provider with its view-log entry, a crew's view is
/// not; due reads come oldest first, per the retry time; a settled read is not due again and
/// a second settlement changes nothing; each bureau's reads keep their own place; the
/// operator sees each bureau's counts and refusals, and queues its refused reads again.
pub async fn hospital_reads_wait_for_the_provider_until_settled<S: EmsStore>(store: S) {
    store.seed_bureau(small("a-fd")).await.unwrap();
    store.seed_bureau(small("b-fd")).await.unwrap();
    let hospital_read = |i: i64, bureau: &str| ViewRecord {
        bureau: bureau.into(),
        crew_member: "er-kawasaki-municipal".into(),
        terminal: 0,
        hospital: Some("kawasaki-municipal".into()),
        ..view_record(i, 1)
    };
    store.record_view(view_record(1, 1)).await.unwrap();
    let first = store.record_view(hospital_read(2, "a-fd")).await.unwrap();
    let second = store.record_view(hospital_read(3, "b-fd")).await.unwrap();
    store.record_view(view_record(4, 1)).await.unwrap();
    let third = store.record_view(hospital_read(5, "a-fd")).await.unwrap();

    assert!(
        store.due_hospital_reads(T0, 10).await.unwrap().is_empty(),
        "nothing is due before it was read"
    );
    let due = store.due_hospital_reads(T0 + 1_000, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.at).collect::<Vec<_>>(),
        vec![first, second, third],
        "the hospitals' reads only, oldest first, each at its view-log place"
    );
    assert_eq!(due[0].record, Ok(hospital_read(2, "a-fd")));
    assert_eq!(
        due[1].record.as_ref().map(|r| r.bureau.as_str()),
        Ok("b-fd")
    );
    assert!(due.iter().all(|d| d.attempts == 0));
    assert_eq!(
        store.due_hospital_reads(T0 + 1_000, 1).await.unwrap().len(),
        1
    );

    let delivered = HospitalReadOutcome::Delivered {
        provider_access_id: 77,
    };
    assert!(
        store
            .settle_hospital_read(first, T0 + 10, delivered.clone())
            .await
            .unwrap()
    );
    assert!(
        !store
            .settle_hospital_read(first, T0 + 11, delivered)
            .await
            .unwrap(),
        "a read settled already is left as it is"
    );
    assert!(
        store
            .settle_hospital_read(
                second,
                T0 + 10,
                HospitalReadOutcome::Retry {
                    next_try_ms: T0 + 5_000,
                    error: "connection refused".into(),
                },
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .settle_hospital_read(
                third,
                T0 + 10,
                HospitalReadOutcome::Refused {
                    error: "unknown_access".into(),
                },
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .due_hospital_reads(T0 + 1_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "delivered, refused, and one waiting for its retry time"
    );
    let retried = store.due_hospital_reads(T0 + 5_000, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].at, second);
    assert_eq!(retried[0].attempts, 1);
    let nowhere = crate::ChainPosition {
        partition: second.partition,
        seq: 99,
    };
    assert!(
        !store
            .settle_hospital_read(
                nowhere,
                T0,
                HospitalReadOutcome::Refused { error: "x".into() }
            )
            .await
            .unwrap(),
        "no read is queued there"
    );

    // The operator's view, per bureau, and the refused read queued again.
    let a = store.hospital_read_outbox("a-fd").await.unwrap();
    assert_eq!((a.delivered, a.waiting), (1, 0));
    assert_eq!(
        a.refused,
        vec![crate::ems::RefusedHospitalRead {
            at: third,
            refused_ms: T0 + 10,
            error: "unknown_access".into(),
        }]
    );
    let b = store.hospital_read_outbox("b-fd").await.unwrap();
    assert_eq!((b.delivered, b.waiting, b.refused.len()), (0, 1, 0));
    assert_eq!(
        store
            .requeue_refused_hospital_reads("b-fd", T0 + 20)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .requeue_refused_hospital_reads("a-fd", T0 + 20)
            .await
            .unwrap(),
        1
    );
    let again = store.due_hospital_reads(T0 + 20, 10).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "the refused read is due again, the retried one not yet"
    );
    assert_eq!(again[0].at, third);
    assert_eq!(
        store
            .requeue_refused_hospital_reads("a-fd", T0 + 30)
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        store.verify_view_log().await.unwrap(),
        ChainReport::Intact { entries: 5, .. }
    ));
}

pub async fn view_records_keep_their_patient_and_the_chain_verifies<S: EmsStore>(store: S) {
    assert_eq!(
        store.verify_view_log().await.unwrap(),
        ChainReport::Intact {
            entries: 0,
            partitions: 0,
            head_hash: None
        },
        "an empty log verifies"
    );
    let other_bureau = ViewRecord {
        bureau: "b-fd".into(),
        ..view_record(3, 1)
    };
    // A view names a bureau the database holds.
    store.seed_bureau(small("a-fd")).await.unwrap();
    store.seed_bureau(small("b-fd")).await.unwrap();
    let records = [
        view_record(1, 1),
        view_record(2, 2),
        other_bureau.clone(),
        view_record(4, 1),
    ];
    let mut at = Vec::new();
    for r in &records {
        at.push(store.record_view(r.clone()).await.unwrap());
    }
    // One chain for all (SQLite) or one per bureau (PostgreSQL): either way a bureau's views
    // share a chain, and each chain is numbered from 1 without gaps.
    assert_eq!(at[0].partition, at[1].partition);
    assert_eq!(at[0].partition, at[3].partition);
    let mut chains: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for p in &at {
        chains.entry(p.partition).or_default().push(p.seq);
    }
    for seqs in chains.values() {
        assert_eq!(
            *seqs,
            (1..=i64::try_from(seqs.len()).unwrap()).collect::<Vec<_>>(),
            "view records are numbered from 1 without gaps"
        );
    }

    let views = store.view_records("a-fd", 10).await.unwrap();
    assert_eq!(
        views.iter().map(|v| v.seq).collect::<Vec<_>>(),
        vec![at[3].seq, at[1].seq, at[0].seq],
        "newest first, this bureau's only"
    );
    assert_eq!(views[2].entry, records[0]);
    assert_eq!(views[1].entry, records[1]);
    assert_eq!(views[0].entry, records[3]);
    assert_eq!(views[1].entry.patient, patient(2));
    assert_eq!(views[1].entry.patient_number, 2);
    assert_eq!(views[0].entry.patient, patient(1));
    assert_eq!(views[0].entry.patient_number, 1);
    assert_eq!(
        views[1].prev_hash, views[2].hash,
        "entry 2 links to entry 1"
    );

    let newest_two = store.view_records("a-fd", 2).await.unwrap();
    assert_eq!(
        newest_two.iter().map(|v| v.seq).collect::<Vec<_>>(),
        vec![at[3].seq, at[1].seq]
    );
    let b = store.view_records("b-fd", 10).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].seq, at[2].seq);
    assert_eq!(b[0].entry, other_bureau);
    assert!(store.view_records("c-fd", 10).await.unwrap().is_empty());

    match store.verify_view_log().await.unwrap() {
        ChainReport::Intact {
            entries,
            partitions,
            head_hash,
        } => {
            assert_eq!(entries, 4);
            assert_eq!(partitions, chains.len() as u64);
            if partitions == 1 {
                assert_eq!(
                    head_hash,
                    Some(hex::encode(views[0].hash)),
                    "the head is the newest entry's hash"
                );
            }
        }
        broken => panic!("an untouched log must verify: {broken:?}"),
    }
    assert_eq!(
        store.view_log_hash(at[3]).await.unwrap(),
        Some(views[0].hash),
        "a checkpoint's entry is found by its place"
    );
    let beyond = crate::ChainPosition {
        seq: at[3].seq + 1,
        ..at[3]
    };
    assert_eq!(store.view_log_hash(beyond).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Sessions

pub async fn an_expired_session_is_not_returned<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let crew = store.account(b, "crew01").await.unwrap().unwrap();
    store
        .create_session("s".into(), crew.id, None, T0 + 1000)
        .await
        .unwrap();
    let live = store.session("s", T0 + 999).await.unwrap().unwrap();
    assert_eq!(live.account, crew);
    assert_eq!(live.expires_ms, T0 + 1000);
    assert_eq!(store.session("s", T0 + 1000).await.unwrap(), None);
    assert_eq!(store.session("s", T0 + 5000).await.unwrap(), None);
    assert_eq!(store.session("unknown", T0).await.unwrap(), None);
}

pub async fn a_new_password_ends_that_accounts_sessions_only<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let one = store.account(b, "crew01").await.unwrap().unwrap();
    let two = store.account(b, "crew02").await.unwrap().unwrap();
    let t1 = team(&store, b, "救急1").await;
    let tablet = store
        .add_terminal(b, t1, "tablet", "tablet-hash".into())
        .await
        .unwrap();
    let far = T0 + 86_400_000;
    store
        .create_session("one-a".into(), one.id, None, far)
        .await
        .unwrap();
    store
        .create_session("one-b".into(), one.id, Some(tablet), far)
        .await
        .unwrap();
    store
        .create_session("two".into(), two.id, None, far)
        .await
        .unwrap();

    assert!(
        store
            .set_password(b, "crew01", "new-hash".into())
            .await
            .unwrap()
    );
    assert_eq!(store.session("one-a", T0).await.unwrap(), None);
    assert_eq!(
        store.session("one-b", T0).await.unwrap(),
        None,
        "the session on a terminal ends too"
    );
    assert!(
        store.session("two", T0).await.unwrap().is_some(),
        "another account's session stays"
    );
    assert_eq!(
        store
            .account(b, "crew01")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "new-hash"
    );
}

pub async fn revoking_a_terminal_ends_the_sessions_bound_to_it_only<S: EmsStore>(store: S) {
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t1 = team(&store, b, "救急1").await;
    let t2 = team(&store, b, "救急2").await;
    let lost = store
        .add_terminal(b, t1, "lost tablet", "lost-hash".into())
        .await
        .unwrap();
    let kept = store
        .add_terminal(b, t2, "other tablet", "kept-hash".into())
        .await
        .unwrap();
    let one = store.account(b, "crew01").await.unwrap().unwrap();
    let two = store.account(b, "crew02").await.unwrap().unwrap();
    let desk = store.account(b, "dispatcher").await.unwrap().unwrap();
    let far = T0 + 86_400_000;
    store
        .create_session("on-lost".into(), one.id, Some(lost), far)
        .await
        .unwrap();
    store
        .create_session("on-kept".into(), two.id, Some(kept), far)
        .await
        .unwrap();
    store
        .create_session("desk".into(), desk.id, None, far)
        .await
        .unwrap();
    assert_eq!(
        store
            .session("on-lost", T0)
            .await
            .unwrap()
            .unwrap()
            .terminal_id,
        Some(lost)
    );

    assert!(store.revoke_terminal(b, lost).await.unwrap());
    assert_eq!(store.session("on-lost", T0).await.unwrap(), None);
    assert!(store.session("on-kept", T0).await.unwrap().is_some());
    assert!(store.session("desk", T0).await.unwrap().is_some());
    assert!(
        store
            .terminal_by_token("lost-hash")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !store
            .terminal_by_token("kept-hash")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

fn status(hospital: &str, beds: u32, minute: i64) -> HospitalStatus {
    HospitalStatus {
        hospital_id: hospital.into(),
        capabilities: vec![
            (Capability::Stroke, Acceptance::Accepting),
            (Capability::Trauma, Acceptance::NotAccepting),
        ],
        beds: Some(beds),
        note: format!("{beds}床"),
        updated_at: chrono::DateTime::from_timestamp_millis(T0 + minute * 60_000).unwrap(),
    }
}

pub async fn hospital_accounts_carry_their_hospital_and_statuses_are_per_bureau<S: EmsStore>(
    store: S,
) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let staff = store.account(a, "er-a").await.unwrap().unwrap();
    assert_eq!(staff.role, Role::Hospital);
    assert_eq!(staff.hospital_id.as_deref(), Some(HOSPITAL_A));
    let crew = store.account(a, "crew01").await.unwrap().unwrap();
    assert_eq!(crew.hospital_id, None);

    // A hospital account without its hospital is refused, and the seed leaves nothing.
    let mut bad = small("c-fd");
    bad.accounts.push(AccountSeed {
        login: "er-none".into(),
        display_name: "どこかの病院".into(),
        role: Role::Hospital,
        team: None,
        hospital: None,
        password_hash: "h".into(),
    });
    assert!(store.seed_bureau(bad).await.is_err());
    assert_eq!(store.bureau("c-fd").await.unwrap(), None);

    assert!(store.hospital_statuses(a).await.unwrap().is_empty());
    for (beds, minute) in [(3, 0), (1, 5)] {
        store
            .set_hospital_status(
                a,
                StatusChange {
                    status: status(HOSPITAL_A, beds, minute),
                    account: staff.id,
                },
            )
            .await
            .unwrap();
    }
    let now = store.hospital_statuses(a).await.unwrap();
    assert_eq!(
        now,
        vec![status(HOSPITAL_A, 1, 5)],
        "the latest change is current"
    );
    let history = store
        .hospital_status_history(a, HOSPITAL_A, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].status.beds, Some(1), "newest first");
    assert_eq!(history[1].status.beds, Some(3));
    assert!(history.iter().all(|c| c.account == staff.id));
    assert!(
        store.hospital_statuses(b).await.unwrap().is_empty(),
        "another bureau sees none of it"
    );
    assert!(
        store
            .hospital_status_history(b, HOSPITAL_A, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

fn snapshot(n: u32, view: View, access: i64) -> HandoffSnapshot {
    let set = crate::testsuite::sample_person(1, "01AA00000001");
    let table = myna_domain::alerts::AlertTable::builtin().unwrap();
    HandoffSnapshot {
        patient: patient(n),
        patient_number: n,
        view,
        provider_access_id: access,
        team: "救急1".into(),
        crew_member: "crew01".into(),
        saved_ms: T0 + access,
        summary: myna_domain::summary::build_summary(
            &set.person,
            &set.records,
            view,
            crate::testsuite::today(),
            None,
            &table,
        ),
    }
}

pub async fn handoff_copies_are_kept_per_incident_patient_and_view_and_per_bureau<S: EmsStore>(
    store: S,
) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let ia = assigned_incident(&store, a, "救急1").await;
    let ib = assigned_incident(&store, b, "救急1").await;
    store
        .save_handoff(a, ia, snapshot(1, View::Summary, 1))
        .await
        .unwrap();
    store
        .save_handoff(a, ia, snapshot(1, View::Summary, 2))
        .await
        .unwrap();
    store
        .save_handoff(a, ia, snapshot(1, View::Full, 3))
        .await
        .unwrap();
    let kept = store.handoffs(a, ia).await.unwrap();
    assert_eq!(
        kept.iter()
            .map(|h| (h.view, h.provider_access_id))
            .collect::<Vec<_>>(),
        vec![(View::Full, 3), (View::Summary, 2)],
        "a later view of the same patient and view replaces the earlier"
    );
    assert_eq!(kept[1], snapshot(1, View::Summary, 2), "kept exactly");
    assert!(store.handoffs(b, ia).await.unwrap().is_empty());
    assert!(store.handoffs(b, ib).await.unwrap().is_empty());
    assert!(
        store
            .save_handoff(b, ia, snapshot(1, View::Summary, 4))
            .await
            .is_err(),
        "bureau b cannot write into a's incident"
    );
    assert_eq!(store.handoffs(a, ia).await.unwrap().len(), 2);
}

pub async fn handoff_copies_are_purged_once_no_hospital_may_read_them<S: EmsStore>(store: S) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let id = assigned_incident(&store, a, "救急1").await;
    store
        .save_handoff(a, id, snapshot(1, View::Summary, 1))
        .await
        .unwrap();
    // small() has a one-hour window: readable for up to two hours after the call.
    let window_ms = 3_600_000;
    assert_eq!(
        store.purge_handoffs(T0 + 2 * window_ms - 1).await.unwrap(),
        0
    );
    assert_eq!(store.handoffs(a, id).await.unwrap().len(), 1);
    assert_eq!(
        store.purge_handoffs(T0 + 2 * window_ms + 1).await.unwrap(),
        1
    );
    assert!(store.handoffs(a, id).await.unwrap().is_empty());
}

pub async fn failed_sign_ins_lock_an_account_of_one_bureau_until_the_lock_ends_or_an_admin_clears_it<
    S: EmsStore,
>(
    store: S,
) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let policy = LockoutPolicy {
        lock_after: 3,
        lock_ms: 60_000,
    };
    let crew = store.account(a, "crew01").await.unwrap().unwrap();
    assert_eq!((crew.failed_logins, crew.locked_until_ms), (0, None));

    // Another bureau cannot count failures against this account.
    assert_eq!(
        store.sign_in_failed(b, crew.id, T0, policy).await.unwrap(),
        None
    );
    for n in 1..=2 {
        let after = store
            .sign_in_failed(a, crew.id, T0 + n, policy)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.failed_logins, u32::try_from(n).unwrap());
        assert!(!after.is_locked(T0 + n), "{n} failures do not lock");
    }
    let locked = store
        .sign_in_failed(a, crew.id, T0 + 3, policy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(locked.locked_until_ms, Some(T0 + 3 + 60_000));
    assert!(locked.is_locked(T0 + 3 + 59_999));
    assert!(!locked.is_locked(T0 + 3 + 60_000));
    assert_eq!(
        store.account(a, "crew01").await.unwrap().unwrap(),
        locked,
        "the lock is kept with the account"
    );
    // A further failure while locked does not extend the lock.
    let still = store
        .sign_in_failed(a, crew.id, T0 + 10, policy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.locked_until_ms, Some(T0 + 3 + 60_000));

    // The same login in the other bureau is untouched; the admin sees only their own.
    let other = store.account(b, "crew01").await.unwrap().unwrap();
    assert_eq!((other.failed_logins, other.locked_until_ms), (0, None));
    let listed = store.accounts_with_failures(a).await.unwrap();
    assert_eq!(
        listed.iter().map(|x| x.login.as_str()).collect::<Vec<_>>(),
        ["crew01"]
    );
    assert!(store.accounts_with_failures(b).await.unwrap().is_empty());
    assert_eq!(
        store
            .bureaus()
            .await
            .unwrap()
            .iter()
            .map(|x| x.code.as_str())
            .collect::<Vec<_>>(),
        ["a-fd", "b-fd"]
    );

    // After the lock ends, a failure starts the count again.
    let again = store
        .sign_in_failed(a, crew.id, T0 + 3 + 60_000, policy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.failed_logins, again.locked_until_ms), (1, None));

    // A success while locked does not clear it (a guess locked it while this one was
    // verified); one after the lock ended does, and only in its own bureau.
    let locked_again = store
        .sign_in_failed(a, crew.id, T0 + 3 + 60_000, policy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(locked_again.failed_logins, 2);
    store
        .sign_in_failed(a, crew.id, T0 + 3 + 60_000, policy)
        .await
        .unwrap();
    let until = store
        .account(a, "crew01")
        .await
        .unwrap()
        .unwrap()
        .locked_until_ms
        .unwrap();
    assert!(
        !store
            .sign_in_succeeded(a, crew.id, until - 1)
            .await
            .unwrap()
    );
    assert!(!store.sign_in_succeeded(b, crew.id, until).await.unwrap());
    assert!(store.sign_in_succeeded(a, crew.id, until).await.unwrap());
    let clean = store.account(a, "crew01").await.unwrap().unwrap();
    assert_eq!((clean.failed_logins, clean.locked_until_ms), (0, None));

    // The admin clears it, in their own bureau only; an unknown login is reported.
    for _ in 0..3 {
        store
            .sign_in_failed(a, crew.id, T0 + 70_000, policy)
            .await
            .unwrap();
    }
    assert!(
        store
            .account(a, "crew01")
            .await
            .unwrap()
            .unwrap()
            .is_locked(T0 + 70_000)
    );
    assert!(!store.clear_sign_in_failures(a, "nobody").await.unwrap());
    // b has its own crew01; clearing it there leaves a's lock.
    store.clear_sign_in_failures(b, "crew01").await.unwrap();
    assert!(
        store
            .account(a, "crew01")
            .await
            .unwrap()
            .unwrap()
            .is_locked(T0 + 70_000)
    );
    assert!(store.clear_sign_in_failures(a, "crew01").await.unwrap());
    let cleared = store.account(a, "crew01").await.unwrap().unwrap();
    assert_eq!((cleared.failed_logins, cleared.locked_until_ms), (0, None));
    assert!(store.accounts_with_failures(a).await.unwrap().is_empty());

    // A new password clears a lock too.
    for _ in 0..3 {
        store
            .sign_in_failed(a, crew.id, T0 + 80_000, policy)
            .await
            .unwrap();
    }
    assert!(store.set_password(a, "crew01", "new".into()).await.unwrap());
    let reset = store.account(a, "crew01").await.unwrap().unwrap();
    assert_eq!((reset.failed_logins, reset.locked_until_ms), (0, None));
}

fn enrollment_request(invite: &str, label: &str, poll: &str) -> crate::ems::NewEnrollment {
    crate::ems::NewEnrollment {
        invite_hash: invite.into(),
        label: label.into(),
        code: "1234-5678".into(),
        csr_pem: format!("-----BEGIN CERTIFICATE REQUEST----- {label}"),
        poll_hash: poll.into(),
        requested_from: "192.0.2.7".into(),
    }
}

fn invite(team: TeamId, secret_hash: &str, expires_ms: i64) -> crate::ems::NewInvite {
    crate::ems::NewInvite {
        team,
        secret_hash: secret_hash.into(),
        expires_ms,
        created_by: "admin".into(),
    }
}

fn issued(sha: &str) -> crate::ems::IssuedCertificate {
    crate::ems::IssuedCertificate {
        pem: format!("-----BEGIN CERTIFICATE----- {sha}"),
        sha256: sha.repeat(32),
        not_after_ms: T0 + 365 * 86_400_000,
    }
}

pub async fn an_enrollment_needs_an_open_invitation_of_its_bureau_and_uses_it_up<S: EmsStore>(
    store: S,
) {
    use crate::ems::{EnrollmentLimits, Filing};
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let a_team = team(&store, a, "救急1").await;
    let b_team = team(&store, b, "救急1").await;
    let limits = EnrollmentLimits::default();
    assert_eq!(
        store
            .create_invite(a, invite(b_team, "smuggled", T0 + 1_000), T0)
            .await
            .unwrap(),
        None,
        "an invitation for another bureau's team"
    );
    store
        .create_invite(a, invite(a_team, "inv-a", T0 + 1_000), T0)
        .await
        .unwrap()
        .unwrap();
    store
        .create_invite(a, invite(a_team, "inv-old", T0 + 10), T0)
        .await
        .unwrap()
        .unwrap();
    // Unknown, another bureau's, expired: nothing is filed.
    for (bureau, secret, poll) in [(a, "guess", "p1"), (b, "inv-a", "p2"), (a, "inv-old", "p3")] {
        assert_eq!(
            store
                .request_enrollment(
                    bureau,
                    enrollment_request(secret, "x", poll),
                    limits,
                    T0 + 20
                )
                .await
                .unwrap(),
            Filing::NoInvite,
            "{secret} in bureau {bureau}"
        );
    }
    assert!(store.enrollments(a, false).await.unwrap().is_empty());
    assert!(store.enrollments(b, false).await.unwrap().is_empty());
    let Filing::Filed(id) = store
        .request_enrollment(
            a,
            enrollment_request("inv-a", "A tablet", "poll-a"),
            limits,
            T0 + 20,
        )
        .await
        .unwrap()
    else {
        panic!("the open invitation did not file the request");
    };
    // Used up: a second request with it is refused.
    assert_eq!(
        store
            .request_enrollment(
                a,
                enrollment_request("inv-a", "twin", "poll-b"),
                limits,
                T0 + 21
            )
            .await
            .unwrap(),
        Filing::NoInvite
    );
    let pending = store.enrollments(a, true).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].id, pending[0].team_id), (id, a_team));
    assert_eq!(pending[0].code, "1234-5678");
}

pub async fn open_invitations_are_listed_per_bureau_and_a_cancelled_one_files_nothing<
    S: EmsStore,
>(
    store: S,
) {
    use crate::ems::{EnrollmentLimits, Filing};
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let a_team = team(&store, a, "救急1").await;
    let b_team = team(&store, b, "救急1").await;
    let limits = EnrollmentLimits::default();
    let open = |bureau, team, secret: &'static str, expires| {
        let store = &store;
        async move {
            store
                .create_invite(bureau, invite(team, secret, expires), T0)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let kept = open(a, a_team, "kept", T0 + 1_000).await;
    let cancelled = open(a, a_team, "cancelled", T0 + 1_000).await;
    let used = open(a, a_team, "used", T0 + 1_000).await;
    let _expired = open(a, a_team, "expired", T0 + 10).await;
    let theirs = open(b, b_team, "theirs", T0 + 1_000).await;
    store
        .request_enrollment(
            a,
            enrollment_request("used", "t", "p-used"),
            limits,
            T0 + 20,
        )
        .await
        .unwrap();
    let ids = |v: Vec<crate::ems::OpenInvite>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.open_invites(a, T0 + 20).await.unwrap()),
        vec![cancelled, kept],
        "newest first, without the used and the expired ones"
    );
    let listed = store.open_invites(a, T0 + 20).await.unwrap();
    assert_eq!(
        (
            listed[1].team_id,
            listed[1].created_by.as_str(),
            listed[1].expires_ms
        ),
        (a_team, "admin", T0 + 1_000)
    );
    // Another bureau cannot cancel it, nor can anyone cancel a used, expired or unknown one.
    assert!(!store.cancel_invite(b, cancelled, T0 + 30).await.unwrap());
    assert!(!store.cancel_invite(a, used, T0 + 30).await.unwrap());
    assert!(!store.cancel_invite(a, theirs, T0 + 30).await.unwrap());
    assert!(!store.cancel_invite(a, 999_999, T0 + 30).await.unwrap());
    assert!(store.cancel_invite(a, cancelled, T0 + 30).await.unwrap());
    assert!(
        !store.cancel_invite(a, cancelled, T0 + 31).await.unwrap(),
        "only once"
    );
    assert_eq!(
        ids(store.open_invites(a, T0 + 31).await.unwrap()),
        vec![kept]
    );
    assert_eq!(
        ids(store.open_invites(b, T0 + 31).await.unwrap()),
        vec![theirs]
    );
    assert_eq!(
        store
            .request_enrollment(
                a,
                enrollment_request("cancelled", "t", "p-c"),
                limits,
                T0 + 32
            )
            .await
            .unwrap(),
        Filing::NoInvite,
        "a cancelled invitation files nothing"
    );
    assert!(matches!(
        store
            .request_enrollment(a, enrollment_request("kept", "t", "p-k"), limits, T0 + 32)
            .await
            .unwrap(),
        Filing::Filed(_)
    ));
}

pub async fn an_enrollment_is_approved_once_by_its_own_bureau_into_a_certificate_bound_terminal<
    S: EmsStore,
>(
    store: S,
) {
    use crate::ems::{EnrollmentLimits, EnrollmentState, Filing};
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let a_team = team(&store, a, "救急1").await;
    let limits = EnrollmentLimits::default();
    store
        .create_invite(a, invite(a_team, "inv", T0 + 100_000), T0)
        .await
        .unwrap();
    let Filing::Filed(id) = store
        .request_enrollment(
            a,
            enrollment_request("inv", "A tablet", "poll-a"),
            limits,
            T0,
        )
        .await
        .unwrap()
    else {
        panic!("not filed");
    };
    assert!(store.enrollments(b, false).await.unwrap().is_empty());

    // Another bureau cannot approve or reject it.
    assert_eq!(
        store
            .approve_enrollment(b, id, issued("aa"), limits, T0 + 1)
            .await
            .unwrap(),
        None
    );
    assert!(!store.reject_enrollment(b, id, T0 + 1).await.unwrap());
    assert_eq!(
        store
            .terminal_by_certificate(&"aa".repeat(32))
            .await
            .unwrap(),
        None
    );

    let terminal = store
        .approve_enrollment(a, id, issued("aa"), limits, T0 + 2)
        .await
        .unwrap()
        .expect("A's admin approves");
    // Once only, and a decided request cannot be rejected afterwards.
    assert_eq!(
        store
            .approve_enrollment(a, id, issued("bb"), limits, T0 + 3)
            .await
            .unwrap(),
        None
    );
    assert!(!store.reject_enrollment(a, id, T0 + 3).await.unwrap());
    assert_eq!(
        store
            .terminal_by_certificate(&"bb".repeat(32))
            .await
            .unwrap(),
        None
    );

    let bound = store
        .terminal_by_certificate(&"aa".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (bound.id, bound.bureau_id, bound.team_id),
        (terminal, a, a_team),
        "the terminal is the invitation's team"
    );
    assert!(bound.certificate_bound && !bound.revoked);
    assert_eq!(
        bound.certificate_not_after_ms,
        Some(issued("aa").not_after_ms)
    );
    assert_eq!(bound.label, "A tablet");
    let polled = store.enrollment_by_poll("poll-a").await.unwrap().unwrap();
    assert_eq!(
        polled.state,
        EnrollmentState::Approved {
            terminal,
            certificate_pem: issued("aa").pem
        }
    );
    assert_eq!(store.enrollment_by_poll("poll-x").await.unwrap(), None);
    // No bearer token reaches it: a presented token is looked up by its hash (bare hex), and
    // neither the certificate's hash nor anything derived from it is stored as one.
    for token_hash in [
        "aa".repeat(32),
        crate::hash_secret(&"aa".repeat(32)),
        crate::hash_secret(&format!("certificate:{}", "aa".repeat(32))),
    ] {
        assert_eq!(store.terminal_by_token(&token_hash).await.unwrap(), None);
    }
    assert!(store.revoke_terminal(a, terminal).await.unwrap());
    assert!(
        store
            .terminal_by_certificate(&"aa".repeat(32))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

pub async fn enrollment_requests_are_capped_per_bureau_and_old_ones_lapse<S: EmsStore>(store: S) {
    use crate::ems::{EnrollmentLimits, EnrollmentState, Filing};
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let a_team = team(&store, a, "救急1").await;
    let limits = EnrollmentLimits {
        max_pending: 2,
        pending_for_ms: 1_000,
    };
    for i in 1..=5 {
        store
            .create_invite(a, invite(a_team, &format!("i{i}"), T0 + 1_000_000), T0)
            .await
            .unwrap();
    }
    let file = |i: u32, at: i64| {
        let store = &store;
        async move {
            store
                .request_enrollment(
                    a,
                    enrollment_request(&format!("i{i}"), &i.to_string(), &format!("p{i}")),
                    limits,
                    at,
                )
                .await
                .unwrap()
        }
    };
    let Filing::Filed(first) = file(1, T0).await else {
        panic!("not filed");
    };
    assert!(matches!(file(2, T0 + 10).await, Filing::Filed(_)));
    assert_eq!(file(3, T0 + 20).await, Filing::TooManyPending);
    // A refused request leaves its invitation open.
    // The first is past its time but not swept yet: it cannot be approved.
    assert_eq!(
        store
            .approve_enrollment(a, first, issued("cc"), limits, T0 + 1_500)
            .await
            .unwrap(),
        None,
        "a lapsed request was approved"
    );
    // The next request sweeps the lapsed ones (rejected) and makes room.
    assert!(matches!(file(3, T0 + 5_000).await, Filing::Filed(_)));
    let lapsed = store.enrollment_by_poll("p1").await.unwrap().unwrap();
    assert_eq!(lapsed.state, EnrollmentState::Rejected);
    assert_eq!(store.enrollments(a, true).await.unwrap().len(), 1);
    assert_eq!(store.enrollments(a, false).await.unwrap().len(), 3);
}

/// Asserts that the stored statistics row of every incident of `bureau` equals the facts of
/// its log, and that there is one row per incident.
pub async fn assert_facts_follow_logs<S: EmsStore>(store: &S, bureau: BureauId) {
    let stored = store
        .incident_facts(bureau, i64::MIN, i64::MAX)
        .await
        .unwrap();
    let incidents = store
        .incidents(
            bureau,
            IncidentFilter {
                open_only: false,
                team: None,
                limit: u32::MAX,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        incidents.len(),
        "one statistics row per incident"
    );
    for record in incidents {
        let row = stored
            .iter()
            .find(|(id, _)| *id == record.id)
            .unwrap_or_else(|| panic!("incident {} has no statistics row", record.number));
        assert_eq!(
            Some(&row.1),
            IncidentFacts::of(&record.log).as_ref(),
            "incident {}: the statistics row differs from the facts of its log",
            record.number
        );
    }
}

pub async fn the_statistics_row_follows_every_append_and_stays_in_its_bureau<S: EmsStore>(
    store: S,
) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let id = assigned_incident(&store, a, "救急1").await;
    let t = team(&store, a, "救急1").await;
    assert_facts_follow_logs(&store, a).await;
    let p = patient(1);
    let minute = 60_000;
    let steps: Vec<(EventKind, i64)> = vec![
        (phase(Phase::Arrival), 8 * minute),
        (phase(Phase::Contact), 9 * minute),
        (face(&p), 10 * minute),
        (
            consent(
                &p,
                Consent::Exception {
                    reason: ExceptionReason::Unconscious,
                },
            ),
            10 * minute + 1,
        ),
        (
            EventKind::SummaryViewed {
                patient: p.clone(),
                view: View::Summary,
            },
            11 * minute,
        ),
        (
            EventKind::Inquiry {
                hospital: HOSPITAL_A.into(),
                result: InquiryResult::Declined,
                reason: Some(DeclineReason::BedsFull),
            },
            12 * minute,
        ),
        (
            EventKind::Inquiry {
                hospital: "kawasaki-saiwai".into(),
                result: InquiryResult::Accepted,
                reason: None,
            },
            13 * minute,
        ),
        (phase(Phase::InVehicle), 14 * minute),
        (phase(Phase::Departure), 20 * minute),
        (phase(Phase::HospitalArrival), 30 * minute),
    ];
    for (i, (kind, at)) in steps.into_iter().enumerate() {
        store
            .append(a, id, crew_event(t, kind, &format!("s{i}"), None), T0 + at)
            .await
            .unwrap();
        assert_facts_follow_logs(&store, a).await;
    }
    store
        .append(
            a,
            id,
            dispatcher_event(EventKind::Closed, "close"),
            T0 + 31 * minute,
        )
        .await
        .unwrap();
    assert_facts_follow_logs(&store, a).await;
    let rows = store.incident_facts(a, T0, T0 + 1).await.unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the incident created at T0 is in [T0, T0 + 1)"
    );
    let f = &rows[0].1;
    assert_eq!(f.stage(), Stage::Viewed);
    assert_eq!((f.views, f.exception_views, f.inquiries), (1, 1, 2));
    assert_eq!(f.ward.as_deref(), Some("中原区"));
    assert_eq!(f.team, Some(t));
    assert_eq!(
        f.intervals_s,
        [Some(60), Some(5 * 60), Some(6 * 60), Some(12 * 60)],
        "arrival→contact, contact→in vehicle, in vehicle→departure, arrival→departure"
    );
    assert!(f.transported && !f.difficult);
    assert!(
        store
            .incident_facts(a, T0 + 1, i64::MAX)
            .await
            .unwrap()
            .is_empty(),
        "created before the range"
    );
    assert!(
        store
            .incident_facts(b, i64::MIN, i64::MAX)
            .await
            .unwrap()
            .is_empty(),
        "another bureau's statistics hold none of a-fd's incidents"
    );
}

/// A simulated incident of `team`: created at `at`, assigned, arrived; with `view`, the face
/// check, consent and a view of patient 1 (and its view record).
fn past_incident(team: TeamId, at: i64, view: bool, key: &str) -> PastIncident {
    let p = patient(1);
    let mut events = vec![
        (dispatcher_event(created(), &format!("{key}-c")), at),
        (
            dispatcher_event(EventKind::Assigned { team }, &format!("{key}-a")),
            at + 60_000,
        ),
        (
            crew_event(team, phase(Phase::Arrival), &format!("{key}-r"), None),
            at + 600_000,
        ),
    ];
    let mut views = Vec::new();
    if view {
        events.push((
            crew_event(team, face(&p), &format!("{key}-f"), None),
            at + 700_000,
        ));
        events.push((
            crew_event(
                team,
                consent(&p, Consent::Obtained),
                &format!("{key}-o"),
                None,
            ),
            at + 710_000,
        ));
        events.push((
            crew_event(
                team,
                EventKind::SummaryViewed {
                    patient: p.clone(),
                    view: View::Summary,
                },
                &format!("{key}-v"),
                None,
            ),
            at + 720_000,
        ));
        let mut record = view_record(7, 1);
        record.at_ms = at + 720_000;
        record.incident_number = "set by the store".into();
        views.push(record);
    }
    PastIncident { events, views }
}

pub async fn past_incidents_load_whole_numbered_per_japan_day_or_not_at_all<S: EmsStore>(store: S) {
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&store, a, "救急1").await;
    let two_hours = 7_200_000;
    let ids = store
        .load_incidents(
            a,
            vec![
                past_incident(t, T0, false, "x"),
                past_incident(t, T0 + 60_000, true, "y"),
                past_incident(t, T0 + two_hours, false, "z"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let mut numbers = Vec::new();
    for id in &ids {
        numbers.push(store.incident(a, *id).await.unwrap().unwrap().number);
    }
    assert_eq!(
        numbers,
        ["20260921-0001", "20260921-0002", "20260922-0001"],
        "T0 is 23:13 in Japan; two hours later is the next Japan day"
    );
    assert_facts_follow_logs(&store, a).await;
    let views = store.view_records("a-fd", 10).await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].entry.incident_number, "20260921-0002");
    assert!(
        matches!(
            store.verify_view_log().await.unwrap(),
            ChainReport::Intact { entries: 1, .. }
        ),
        "the loaded view is chained"
    );
    // A later creation on the same day continues the day's numbers.
    let next = store
        .create_incident(a, dispatcher_event(created(), "live"), T0 + 120_000)
        .await
        .unwrap();
    assert_eq!(next.number, "20260921-0003");

    // A batch whose second incident breaks a rule is refused whole.
    let mut bad = past_incident(t, T0 + 3 * two_hours, false, "bad");
    bad.events.remove(1); // the arrival now comes before any assignment
    let err = store
        .load_incidents(
            a,
            vec![past_incident(t, T0 + 3 * two_hours, true, "ok"), bad],
        )
        .await
        .unwrap_err();
    // The crew event carries its team guard, and the incident has no team yet.
    assert_eq!(err, AppendError::Rule(IncidentError::WrongTeam));
    assert_eq!(
        store
            .incident_facts(a, i64::MIN, i64::MAX)
            .await
            .unwrap()
            .len(),
        4,
        "nothing of the refused batch was kept"
    );
    assert_eq!(store.view_records("a-fd", 10).await.unwrap().len(), 1);
    // A view record of another bureau, another bureau's team, an incident with no events:
    // each refuses the whole load.
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let theirs = team(&store, b, "救急1").await;
    let mut foreign_view = past_incident(t, T0 + 4 * two_hours, true, "fv");
    foreign_view.views[0].bureau = "b-fd".into();
    let foreign_team = past_incident(theirs, T0 + 4 * two_hours, false, "ft");
    let empty = PastIncident {
        events: Vec::new(),
        views: Vec::new(),
    };
    for bad in [foreign_view, foreign_team, empty] {
        let err = store
            .load_incidents(
                a,
                vec![past_incident(t, T0 + 4 * two_hours, false, "ok2"), bad],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, AppendError::Store(StoreError::InvalidPast(_))),
            "{err:?}"
        );
    }
    assert_eq!(
        store
            .incident_facts(a, i64::MIN, i64::MAX)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(store.view_records("b-fd", 10).await.unwrap().is_empty());
    // An idempotency key used twice in one incident is refused, not retried.
    let mut twice = past_incident(t, T0 + 4 * two_hours, false, "twice");
    twice.events[2].0.idempotency_key = twice.events[1].0.idempotency_key.clone();
    let err = store.load_incidents(a, vec![twice]).await.unwrap_err();
    assert!(matches!(err, AppendError::KeyReused(_)), "{err:?}");
    assert_eq!(
        store
            .incident_facts(a, i64::MIN, i64::MAX)
            .await
            .unwrap()
            .len(),
        4
    );
    assert_facts_follow_logs(&store, a).await;
}

pub async fn exception_views_are_listed_per_bureau_and_reviewed_once_each_in_a_chain<
    S: EmsStore,
>(
    store: S,
) {
    use myna_domain::review::{ReviewDecision, ReviewRecord};
    store.seed_bureau(small("a-fd")).await.unwrap();
    store.seed_bureau(small("b-fd")).await.unwrap();
    let exception = Consent::Exception {
        reason: ExceptionReason::Unconscious,
    };
    store
        .record_view(ViewRecord {
            consent: exception,
            ..view_record(1, 1)
        })
        .await
        .unwrap();
    store.record_view(view_record(2, 2)).await.unwrap();
    store
        .record_view(ViewRecord {
            bureau: "b-fd".into(),
            consent: exception,
            ..view_record(3, 1)
        })
        .await
        .unwrap();
    // A hospital's read of the crew's copy carries the crew's basis; it is not a crew's view.
    store
        .record_view(ViewRecord {
            consent: exception,
            hospital: Some(HOSPITAL_A.into()),
            crew_member: "er-a".into(),
            terminal: 0,
            ..view_record(4, 1)
        })
        .await
        .unwrap();
    let views = store.exception_views("a-fd").await.unwrap();
    assert_eq!(
        views.len(),
        1,
        "a-fd's one exception; not its consented view, not b-fd's, not a hospital's read"
    );
    let (at, entry) = &views[0];
    assert_eq!(entry.entry.consent, exception);
    assert_eq!(entry.entry.bureau, "a-fd");
    let review = ReviewRecord {
        at_ms: T0 + 100,
        bureau: "a-fd".into(),
        view_partition: at.partition,
        view_seq: at.seq,
        view_hash: hex::encode(entry.hash),
        incident_number: entry.entry.incident_number.clone(),
        officer: "privacy".into(),
        decision: ReviewDecision::Justified,
        comment: "意識レベル JCS 300".into(),
    };
    assert!(store.record_review(review.clone()).await.unwrap().is_some());
    let again = ReviewRecord {
        decision: ReviewDecision::NotJustified,
        ..review.clone()
    };
    assert_eq!(
        store.record_review(again).await.unwrap(),
        None,
        "one decision per view"
    );
    let kept = store.reviews("a-fd").await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].entry, review);
    assert!(store.reviews("b-fd").await.unwrap().is_empty());
    assert!(matches!(
        store.verify_review_log().await.unwrap(),
        ChainReport::Intact { entries: 1, .. }
    ));
    // The incident behind a view is found by its number, in its own bureau only.
    let a = store.bureau("a-fd").await.unwrap().unwrap().id;
    let b = store.bureau("b-fd").await.unwrap().unwrap().id;
    let created = store
        .create_incident(a, dispatcher_event(created(), "n"), T0)
        .await
        .unwrap();
    let found = store.incident_by_number(a, &created.number).await.unwrap();
    assert_eq!(found.map(|r| r.id), Some(created.id));
    assert!(
        store
            .incident_by_number(b, &created.number)
            .await
            .unwrap()
            .is_none()
    );

    // The call and the first contact of each incident a view names, in the bureau only.
    let t = team(&store, a, "救急1").await;
    store
        .append(
            a,
            created.id,
            dispatcher_event(EventKind::Assigned { team: t }, "as"),
            T0 + 1,
        )
        .await
        .unwrap();
    for (i, p) in [Phase::Arrival, Phase::Contact].into_iter().enumerate() {
        store
            .append(
                a,
                created.id,
                crew_event(t, phase(p), &format!("p{i}"), None),
                T0 + 60_000 * (i as i64 + 1),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        created.number, "20260921-0001",
        "the number view_record(1, …) names"
    );
    let times = store.viewed_incident_times(a).await.unwrap();
    assert_eq!(times.len(), 1, "{times:?}");
    assert_eq!(times[0].0, created.number);
    assert_eq!(times[0].1.call_ms, T0);
    assert_eq!(times[0].1.contact_ms, Some(T0 + 120_000));
    assert!(store.viewed_incident_times(b).await.unwrap().is_empty());
}

/// Calls `$m!(args…; every test of this suite)`: each backend's conformance file names the
/// suite once, so a new test runs on every backend.
#[macro_export]
macro_rules! ems_suite {
    ($m:ident!($($args:tt)*)) => {
        $m!($($args)*;
            a_kawasaki_shaped_seed_gives_31_teams_at_their_stations_and_a_second_seed_is_refused,
            a_seed_that_fails_half_way_leaves_no_bureau_behind,
            one_bureau_never_reads_or_writes_another_bureaus_incidents,
            one_bureau_cannot_revoke_or_register_terminals_of_another,
            accounts_and_passwords_are_per_bureau,
            the_same_key_and_kind_twice_is_one_event_answered_as_a_duplicate,
            the_same_key_with_a_different_kind_is_refused_as_key_reused,
            a_phase_before_any_assignment_is_refused_as_not_assigned,
            nothing_is_appended_after_closed,
            a_crew_event_is_refused_once_the_incident_went_to_another_team,
            consent_for_a_patient_whose_face_was_not_confirmed_is_refused,
            after_a_withdrawal_that_patients_face_check_and_consent_are_refused,
            device_times_ahead_of_the_server_before_creation_or_before_the_previous_tap_are_refused,
            a_late_tap_keeps_its_device_time,
            view_records_keep_their_patient_and_the_chain_verifies,
            an_expired_session_is_not_returned,
            a_new_password_ends_that_accounts_sessions_only,
            failed_sign_ins_lock_an_account_of_one_bureau_until_the_lock_ends_or_an_admin_clears_it,
            revoking_a_terminal_ends_the_sessions_bound_to_it_only,
            hospital_accounts_carry_their_hospital_and_statuses_are_per_bureau,
            handoff_copies_are_kept_per_incident_patient_and_view_and_per_bureau,
            handoff_copies_are_purged_once_no_hospital_may_read_them,
            an_enrollment_needs_an_open_invitation_of_its_bureau_and_uses_it_up,
            open_invitations_are_listed_per_bureau_and_a_cancelled_one_files_nothing,
            an_enrollment_is_approved_once_by_its_own_bureau_into_a_certificate_bound_terminal,
            enrollment_requests_are_capped_per_bureau_and_old_ones_lapse,
            the_statistics_row_follows_every_append_and_stays_in_its_bureau,
            past_incidents_load_whole_numbered_per_japan_day_or_not_at_all,
            exception_views_are_listed_per_bureau_and_reviewed_once_each_in_a_chain,
            hospital_reads_wait_for_the_provider_until_settled,
        );
    };
}
