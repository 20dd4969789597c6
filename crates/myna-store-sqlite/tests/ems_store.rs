#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `EmsSqlite` on a real SQLite file in a temporary directory: seeding, tenant isolation,
//! idempotent appends, the incident rules enforced inside the store, durability across a
//! reopen with a verifying (and tamper-evident) view log, and when sessions end.

use myna_domain::access::Consent;
use myna_domain::incident::{
    Actor, ComplaintCategory, EventKind, IncidentError, MynaOutcome, Phase, ViewRecord,
};
use myna_domain::summary::View;
use myna_store::ems::{
    AccountSeed, AppendError, Appended, BureauId, BureauSeed, EmsStore, IncidentFilter, NewEvent,
    Role,
};
use myna_store::{ChainReport, StoreError};
use myna_store_sqlite::EmsSqlite;
use std::path::Path;

/// 2026-09-21 (JST), well inside any viewing window the tests use.
const T0: i64 = 1_790_000_000_000;

/// Kawasaki's 7 ward stations with their number of ambulance teams (31 in all), the shape of
/// `myna_ems::seed::kawasaki` (this crate cannot depend on `myna-ems`; its own tests seed the
/// real thing).
const KAWASAKI_SHAPE: [(&str, usize); 7] = [
    ("川崎消防署", 5),
    ("幸消防署", 4),
    ("中原消防署", 5),
    ("高津消防署", 4),
    ("宮前消防署", 4),
    ("多摩消防署", 4),
    ("麻生消防署", 5),
];

fn kawasaki_like(code: &str) -> BureauSeed {
    BureauSeed {
        code: code.into(),
        name: "川崎市消防局".into(),
        provider_url: "http://127.0.0.1:9".into(),
        provider_token: "token".into(),
        view_window_s: 6 * 3600,
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
            password_hash: "dispatcher-hash".into(),
        }],
    }
}

/// A small bureau: one station, two teams, a crew member for each and a dispatcher. Two
/// bureaus built from it share team names and logins, so nothing but the bureau id tells their
/// rows apart.
fn small(code: &str) -> BureauSeed {
    let crew = |login: &str, team: &str| AccountSeed {
        login: login.into(),
        display_name: format!("{team} 隊長"),
        role: Role::Crew,
        team: Some(team.into()),
        password_hash: format!("{code}-{login}-hash"),
    };
    BureauSeed {
        code: code.into(),
        name: format!("{code} 消防本部"),
        provider_url: "http://127.0.0.1:9".into(),
        provider_token: "token".into(),
        view_window_s: 3600,
        stations: vec![("本署".into(), vec!["救急1".into(), "救急2".into()])],
        accounts: vec![
            crew("crew01", "救急1"),
            crew("crew02", "救急2"),
            AccountSeed {
                login: "dispatcher".into(),
                display_name: "指令員".into(),
                role: Role::Dispatcher,
                team: None,
                password_hash: format!("{code}-dispatcher-hash"),
            },
        ],
    }
}

fn open(path: &Path) -> EmsSqlite {
    EmsSqlite::open(path).unwrap()
}

fn event(kind: EventKind, key: &str) -> NewEvent {
    NewEvent {
        kind,
        actor: Actor::Dispatcher { account: 1 },
        idempotency_key: key.into(),
        device_at_ms: None,
        team_guard: None,
    }
}

fn created() -> EventKind {
    EventKind::Created {
        location: "川崎市中原区小杉町".into(),
        category: ComplaintCategory::ChestPain,
        note: "60代男性 胸痛".into(),
        card_prep_requested: true,
    }
}

fn phase(p: Phase) -> EventKind {
    EventKind::Phase { phase: p }
}

async fn team(store: &EmsSqlite, bureau: BureauId, name: &str) -> i64 {
    store
        .teams(bureau)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap()
        .id
}

/// An incident of `bureau` assigned to its team `team_name`.
async fn assigned_incident(store: &EmsSqlite, bureau: BureauId, team_name: &str) -> i64 {
    let team = team(store, bureau, team_name).await;
    let id = store
        .create_incident(bureau, event(created(), "create"), T0)
        .await
        .unwrap()
        .id;
    store
        .append(
            bureau,
            id,
            event(EventKind::Assigned { team }, "assign"),
            T0 + 1,
        )
        .await
        .unwrap();
    id
}

async fn event_count(store: &EmsSqlite, bureau: BureauId, id: i64) -> usize {
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

fn view(i: i64) -> ViewRecord {
    ViewRecord {
        at_ms: T0 + i,
        bureau: "a-fd".into(),
        incident_number: format!("20260921-{i:04}"),
        team: "救急1".into(),
        crew_member: "crew01".into(),
        terminal: 1,
        cert_serial: format!("01AA{i:08}"),
        consent: Consent::Obtained,
        view: View::Summary,
        provider_access_id: 100 + i,
    }
}

// ---------------------------------------------------------------------------------------------
// Seeding

#[tokio::test]
async fn a_kawasaki_shaped_seed_gives_31_teams_at_their_stations_and_a_second_seed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
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

#[tokio::test]
async fn a_seed_that_fails_half_way_leaves_no_bureau_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
    let mut seed = small("broken-fd");
    seed.accounts.push(AccountSeed {
        login: "crew99".into(),
        display_name: "どこにもいない隊".into(),
        role: Role::Crew,
        team: Some("存在しない救急".into()),
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

#[tokio::test]
async fn one_bureau_never_reads_or_writes_another_bureaus_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
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
            .append(b, a_incident, event(phase(Phase::Arrival), "b-tap"), T0 + 2)
            .await,
        Err(AppendError::NotFound)
    );
    assert_eq!(
        store
            .append(b, a_incident, event(EventKind::Closed, "b-close"), T0 + 2)
            .await,
        Err(AppendError::NotFound)
    );
    assert_eq!(
        store.incident(a, a_incident).await.unwrap().unwrap().log,
        before,
        "A's log is untouched"
    );
}

#[tokio::test]
async fn one_bureau_cannot_revoke_or_register_terminals_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
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
            .is_err()
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

#[tokio::test]
async fn accounts_and_passwords_are_per_bureau() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
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

#[tokio::test]
async fn the_same_key_and_kind_twice_is_one_event_answered_as_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let id = assigned_incident(&store, b, "救急1").await;

    let first = store
        .append(b, id, event(phase(Phase::Arrival), "tap-1"), T0 + 10)
        .await
        .unwrap();
    let Appended::New(committed) = first else {
        panic!("the first append is new: {first:?}");
    };
    assert_eq!(committed.seq, 3);

    // A resend, later: the committed event comes back, with its original time.
    let again = store
        .append(b, id, event(phase(Phase::Arrival), "tap-1"), T0 + 99)
        .await
        .unwrap();
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
        .append(b, id, event(EventKind::Closed, "close"), T0 + 20)
        .await
        .unwrap();
    assert_eq!(
        store
            .append(b, id, event(phase(Phase::Arrival), "tap-1"), T0 + 30)
            .await
            .unwrap(),
        Appended::Duplicate(committed)
    );
}

#[tokio::test]
async fn the_same_key_with_a_different_kind_is_refused_as_key_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let id = assigned_incident(&store, b, "救急1").await;
    store
        .append(b, id, event(phase(Phase::Arrival), "tap-1"), T0 + 10)
        .await
        .unwrap();
    assert_eq!(
        store
            .append(b, id, event(phase(Phase::Contact), "tap-1"), T0 + 11)
            .await,
        Err(AppendError::KeyReused("tap-1".into()))
    );
    assert_eq!(
        store
            .append(b, id, event(EventKind::IdentityConfirmed, "tap-1"), T0 + 11)
            .await,
        Err(AppendError::KeyReused("tap-1".into()))
    );
    let log = store.incident(b, id).await.unwrap().unwrap().log;
    assert_eq!(log.events.len(), 3);
    assert_eq!(log.by_key("tap-1").unwrap().kind, phase(Phase::Arrival));
}

// ---------------------------------------------------------------------------------------------
// The rules, inside the store

#[tokio::test]
async fn a_phase_before_any_assignment_is_refused_as_not_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let id = store
        .create_incident(b, event(created(), "create"), T0)
        .await
        .unwrap()
        .id;
    assert_eq!(
        store
            .append(b, id, event(phase(Phase::Arrival), "tap"), T0 + 1)
            .await,
        Err(AppendError::Rule(IncidentError::NotAssigned))
    );
    assert_eq!(event_count(&store, b, id).await, 1);
    // The refused key was not consumed: the same tap succeeds once a team is assigned.
    let t = team(&store, b, "救急1").await;
    store
        .append(
            b,
            id,
            event(EventKind::Assigned { team: t }, "assign"),
            T0 + 2,
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .append(b, id, event(phase(Phase::Arrival), "tap"), T0 + 3)
            .await,
        Ok(Appended::New(_))
    ));
}

#[tokio::test]
async fn nothing_is_appended_after_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let id = assigned_incident(&store, b, "救急1").await;
    let other = team(&store, b, "救急2").await;
    store
        .append(b, id, event(EventKind::Closed, "close"), T0 + 5)
        .await
        .unwrap();
    let n = event_count(&store, b, id).await;
    assert_eq!(n, 3);

    let refused = [
        phase(Phase::Arrival),
        EventKind::Assigned { team: other },
        EventKind::IdentityConfirmed,
        EventKind::Consent {
            consent: Consent::Obtained,
        },
        EventKind::Outcome {
            outcome: MynaOutcome::NoCard,
        },
        EventKind::SummaryViewed {
            serial: "01".into(),
        },
        EventKind::Closed,
    ];
    for (i, kind) in refused.into_iter().enumerate() {
        assert_eq!(
            store
                .append(b, id, event(kind.clone(), &format!("late-{i}")), T0 + 6)
                .await,
            Err(AppendError::Rule(IncidentError::Closed)),
            "{kind:?} after closing"
        );
    }
    let record = store.incident(b, id).await.unwrap().unwrap();
    assert_eq!(record.log.events.len(), n);
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

// ---------------------------------------------------------------------------------------------
// Durability and the view log

#[tokio::test]
async fn events_and_views_survive_a_reopen_and_a_tampered_view_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ems.db");
    let (bureau, id, before) = {
        let store = open(&path);
        let bureau = store.seed_bureau(small("a-fd")).await.unwrap();
        let id = assigned_incident(&store, bureau, "救急1").await;
        store
            .append(bureau, id, event(phase(Phase::Arrival), "p1"), T0 + 10)
            .await
            .unwrap();
        store
            .append(
                bureau,
                id,
                NewEvent {
                    device_at_ms: Some(T0 + 15),
                    ..event(EventKind::IdentityConfirmed, "face")
                },
                T0 + 20,
            )
            .await
            .unwrap();
        for i in 1..=3 {
            assert_eq!(store.record_view(view(i)).await.unwrap(), i);
        }
        let before = store.incident(bureau, id).await.unwrap().unwrap();
        (bureau, id, before)
    };

    let store = open(&path);
    let after = store.incident(bureau, id).await.unwrap().unwrap();
    assert_eq!(after, before, "the log reads back exactly as committed");
    assert_eq!(after.log.events.len(), 4);
    assert_eq!(
        after
            .log
            .by_key("face")
            .unwrap()
            .device_at
            .unwrap()
            .timestamp_millis(),
        T0 + 15
    );
    let views = store.view_records("a-fd", 10).await.unwrap();
    assert_eq!(
        views.iter().map(|v| v.seq).collect::<Vec<_>>(),
        vec![3, 2, 1],
        "newest first"
    );
    assert_eq!(views[2].entry, view(1));
    assert!(store.view_records("b-fd", 10).await.unwrap().is_empty());

    // The chain continues across the reopen.
    assert_eq!(store.record_view(view(4)).await.unwrap(), 4);
    match store.verify_view_log().await.unwrap() {
        ChainReport::Intact { entries, head_hash } => {
            assert_eq!(entries, 4);
            assert!(head_hash.is_some());
        }
        broken => panic!("an untouched log must verify: {broken:?}"),
    }
    drop(store);

    // Rewrite entry 2 behind the store's back: still valid JSON, a different crew member.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let entry: String = conn
            .query_row("SELECT entry FROM view_log WHERE seq = 2", [], |r| r.get(0))
            .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&entry).unwrap();
        assert_eq!(v["crew_member"], "crew01");
        v["crew_member"] = "crew02".into();
        let changed = conn
            .execute(
                "UPDATE view_log SET entry = ?1 WHERE seq = 2",
                [v.to_string()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    let store = open(&path);
    match store.verify_view_log().await.unwrap() {
        ChainReport::Broken {
            verified,
            first_break,
        } => {
            assert_eq!(verified, 1, "entry 1 still verifies");
            assert_eq!(first_break.seq(), 2);
        }
        intact => panic!("a rewritten entry went unnoticed: {intact:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

#[tokio::test]
async fn an_expired_session_is_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
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

#[tokio::test]
async fn a_new_password_ends_that_accounts_sessions_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let one = store.account(b, "crew01").await.unwrap().unwrap();
    let two = store.account(b, "crew02").await.unwrap().unwrap();
    let far = T0 + 86_400_000;
    store
        .create_session("one-a".into(), one.id, None, far)
        .await
        .unwrap();
    store
        .create_session("one-b".into(), one.id, None, far)
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
    assert_eq!(store.session("one-b", T0).await.unwrap(), None);
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

#[tokio::test]
async fn revoking_a_terminal_ends_the_sessions_bound_to_it_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("ems.db"));
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
