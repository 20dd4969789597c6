#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The ems store on a real SQLite file: seeding, sessions, the rules enforced inside the append
//! transaction, and a tampered view log.

use myna_domain::access::Consent;
use myna_domain::incident::{
    Actor, ComplaintCategory, EventKind, IncidentError, Phase, ViewRecord,
};
use myna_domain::summary::View;
use myna_store::ChainReport;
use myna_store::ems::{AccountSeed, AppendError, BureauSeed, EmsStore, NewEvent, Role};
use myna_store_sqlite::EmsSqlite;

fn seed(code: &str) -> BureauSeed {
    BureauSeed {
        code: code.into(),
        name: "test".into(),
        provider_url: "http://127.0.0.1:9".into(),
        provider_token: "t".into(),
        view_window_s: 3600,
        stations: vec![("署".into(), vec!["救急1".into(), "救急2".into()])],
        accounts: vec![AccountSeed {
            login: "crew01".into(),
            display_name: "隊員".into(),
            role: Role::Crew,
            team: Some("救急1".into()),
            password_hash: "h".into(),
        }],
    }
}

fn ev(kind: EventKind, key: &str) -> NewEvent {
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
        location: "川崎市".into(),
        category: ComplaintCategory::Trauma,
        note: String::new(),
        card_prep_requested: false,
    }
}

const T0: i64 = 1_790_000_000_000;

#[tokio::test]
async fn seeding_twice_is_refused_and_kawasaki_has_31_teams() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmsSqlite::open(&dir.path().join("ems.db")).unwrap();
    let k = myna_ems_free_kawasaki();
    let id = store.seed_bureau(k.clone()).await.unwrap();
    assert_eq!(store.teams(id).await.unwrap().len(), 31);
    assert!(store.seed_bureau(k).await.is_err());
}

/// The Kawasaki seed shape without depending on the ems crate: 7 stations, 31 teams.
fn myna_ems_free_kawasaki() -> BureauSeed {
    let stations: Vec<(String, Vec<String>)> = [5, 4, 5, 4, 4, 4, 5]
        .iter()
        .enumerate()
        .map(|(s, n)| {
            (
                format!("署{s}"),
                (0..*n).map(|t| format!("救急{s}-{t}")).collect(),
            )
        })
        .collect();
    BureauSeed {
        stations,
        accounts: Vec::new(),
        ..seed("kawasaki-fd")
    }
}

#[tokio::test]
async fn rules_hold_inside_the_store_and_refusals_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmsSqlite::open(&dir.path().join("ems.db")).unwrap();
    let b = store.seed_bureau(seed("a-fd")).await.unwrap();
    let team = store.teams(b).await.unwrap()[0].id;
    let id = store
        .create_incident(b, ev(created(), "c"), T0)
        .await
        .unwrap()
        .id;
    let arrival = EventKind::Phase {
        phase: Phase::Arrival,
    };
    assert_eq!(
        store.append(b, id, ev(arrival.clone(), "p1"), T0).await,
        Err(AppendError::Rule(IncidentError::NotAssigned))
    );
    store
        .append(b, id, ev(EventKind::Assigned { team }, "a"), T0)
        .await
        .unwrap();
    store.append(b, id, ev(arrival, "p1"), T0).await.unwrap();
    store
        .append(b, id, ev(EventKind::Closed, "x"), T0)
        .await
        .unwrap();
    assert_eq!(
        store
            .append(b, id, ev(EventKind::IdentityConfirmed, "late"), T0)
            .await,
        Err(AppendError::Rule(IncidentError::Closed))
    );
    let log = store.incident(b, id).await.unwrap().unwrap().log;
    assert_eq!(log.events.len(), 4, "created, assigned, arrival, closed");
    assert!(log.by_key("late").is_none());
    // A second create through append is refused too.
    assert_eq!(
        store.append(b, id, ev(created(), "again"), T0).await,
        Err(AppendError::Rule(IncidentError::NotCreatedFirst))
    );
}

#[tokio::test]
async fn sessions_expire_and_end_with_a_new_password_or_a_revoked_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmsSqlite::open(&dir.path().join("ems.db")).unwrap();
    let b = store.seed_bureau(seed("a-fd")).await.unwrap();
    let crew = store.account(b, "crew01").await.unwrap().unwrap();
    let team = store.teams(b).await.unwrap()[0].id;
    let terminal = store
        .add_terminal(b, team, "tab", "th".into())
        .await
        .unwrap();

    store
        .create_session("s1".into(), crew.id, Some(terminal), T0 + 1000)
        .await
        .unwrap();
    assert!(store.session("s1", T0).await.unwrap().is_some());
    assert!(
        store.session("s1", T0 + 1000).await.unwrap().is_none(),
        "expired"
    );

    store
        .create_session("s2".into(), crew.id, Some(terminal), T0 + 9_999_999)
        .await
        .unwrap();
    assert!(store.set_password(b, "crew01", "new".into()).await.unwrap());
    assert!(
        store.session("s2", T0).await.unwrap().is_none(),
        "a new password ends sessions"
    );

    store
        .create_session("s3".into(), crew.id, Some(terminal), T0 + 9_999_999)
        .await
        .unwrap();
    assert!(store.revoke_terminal(b, terminal).await.unwrap());
    assert!(
        store.session("s3", T0).await.unwrap().is_none(),
        "revocation ends sessions"
    );
    assert!(
        store
            .terminal_by_token("th")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

#[tokio::test]
async fn a_tampered_view_record_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ems.db");
    {
        let store = EmsSqlite::open(&path).unwrap();
        for i in 0..5 {
            store
                .record_view(ViewRecord {
                    at_ms: T0 + i,
                    bureau: "a-fd".into(),
                    incident_number: format!("n{i}"),
                    team: "救急1".into(),
                    crew_member: "crew01".into(),
                    terminal: 1,
                    cert_serial: "01".into(),
                    consent: Consent::Obtained,
                    view: View::Summary,
                    provider_access_id: i,
                })
                .await
                .unwrap();
        }
        assert!(matches!(
            store.verify_view_log().await.unwrap(),
            ChainReport::Intact { entries: 5, .. }
        ));
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE view_log SET entry = replace(entry, 'crew01', 'crew02') WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(conn);
    let store = EmsSqlite::open(&path).unwrap();
    match store.verify_view_log().await.unwrap() {
        ChainReport::Broken {
            verified,
            first_break,
        } => {
            assert_eq!(verified, 2);
            assert_eq!(first_break.seq(), 3);
        }
        other => panic!("tampering not detected: {other:?}"),
    }
}

#[tokio::test]
async fn a_crew_event_is_refused_once_the_incident_went_to_another_team() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmsSqlite::open(&dir.path().join("ems.db")).unwrap();
    let b = store.seed_bureau(seed("a-fd")).await.unwrap();
    let teams = store.teams(b).await.unwrap();
    let (one, two) = (teams[0].id, teams[1].id);
    let id = store
        .create_incident(b, ev(created(), "c"), T0)
        .await
        .unwrap()
        .id;
    store
        .append(b, id, ev(EventKind::Assigned { team: one }, "a1"), T0)
        .await
        .unwrap();
    let crew_event = |key: &str| NewEvent {
        team_guard: Some(one),
        ..ev(EventKind::IdentityConfirmed, key)
    };
    store.append(b, id, crew_event("k1"), T0).await.unwrap();
    store
        .append(b, id, ev(EventKind::Assigned { team: two }, "a2"), T0)
        .await
        .unwrap();
    assert_eq!(
        store.append(b, id, crew_event("k2"), T0).await,
        Err(AppendError::Rule(IncidentError::WrongTeam))
    );
    assert_eq!(
        store
            .incident(b, id)
            .await
            .unwrap()
            .unwrap()
            .log
            .events
            .len(),
        4
    );
}
