#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Kill -9 a process in the middle of a stream of incident events and view records: every event
//! and view it acknowledged is in the ems database afterwards, the log has no gap, and the view
//! chain verifies.

use myna_domain::access::Consent;
use myna_domain::incident::{Actor, EventKind, ViewRecord};
use myna_domain::patient::PatientSecret;
use myna_domain::summary::View;
use myna_store::ChainReport;
use myna_store::ems::{EmsStore, NewEvent};
use myna_store_sqlite::EmsSqlite;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "MYNA_EMS_CRASH_CHILD_DB";

fn event(kind: EventKind, key: String) -> NewEvent {
    NewEvent {
        kind,
        actor: Actor::Dispatcher { account: 1 },
        idempotency_key: key,
        device_at_ms: None,
        team_guard: None,
    }
}

/// An event of the crew of `team` (a face check is recorded by a crew only).
fn crew_event(team: i64, kind: EventKind, key: String) -> NewEvent {
    NewEvent {
        actor: Actor::Crew {
            account: 2,
            terminal: 1,
            team,
        },
        team_guard: Some(team),
        ..event(kind, key)
    }
}

/// Runs only as the child of `acknowledged_events_survive_sigkill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ems_crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = std::sync::Arc::new(EmsSqlite::open(std::path::Path::new(&path)).unwrap());
    let seed = myna_ems_seed();
    let bureau = store.seed_bureau(seed).await.unwrap();
    let team = store.teams(bureau).await.unwrap()[0].id;
    let created = EventKind::Created {
        location: "川崎市".into(),
        category: myna_domain::incident::ComplaintCategory::Other,
        note: String::new(),
        card_prep_requested: false,
    };
    let incident = store
        .create_incident(bureau, event(created, "c".into()), 1_790_000_000_000)
        .await
        .unwrap()
        .id;
    store
        .append(
            bureau,
            incident,
            event(EventKind::Assigned { team }, "a".into()),
            1_790_000_000_001,
        )
        .await
        .unwrap();
    let patient = PatientSecret::from_bytes([9; 32]).patient("01AA0001");
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = store.clone();
        let patient = patient.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("w{w}-{i}");
                let kind = EventKind::IdentityConfirmed {
                    patient: patient.clone(),
                };
                s.append(
                    bureau,
                    incident,
                    crew_event(team, kind, key.clone()),
                    1_790_000_001_000 + i,
                )
                .await
                .unwrap();
                let view = s
                    .record_view(ViewRecord {
                        at_ms: 1_790_000_001_000 + i,
                        bureau: "crash-fd".into(),
                        incident_number: "1".into(),
                        team: "t".into(),
                        crew_member: "crew01".into(),
                        terminal: 1,
                        patient: patient.clone(),
                        patient_number: 1,
                        consent: Consent::Obtained,
                        view: View::Summary,
                        provider_access_id: i,
                    })
                    .await
                    .unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {incident} {key} {view}").unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn myna_ems_seed() -> myna_store::ems::BureauSeed {
    myna_store::ems::BureauSeed {
        code: "crash-fd".into(),
        name: "crash".into(),
        provider_url: "http://127.0.0.1:9".into(),
        provider_token: "t".into(),
        view_window_s: 3600,
        patient_secret: PatientSecret::from_bytes([9; 32]),
        stations: vec![("s".into(), vec!["t".into()])],
        accounts: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ems-crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ems_crash_child_writer",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut keys = BTreeSet::new();
    let mut incident = 0i64;
    let mut max_view = 0i64;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ACK ") {
            let parts: Vec<&str> = rest.split(' ').collect();
            incident = parts[0].parse().unwrap();
            keys.insert(parts[1].to_owned());
            max_view = max_view.max(parts[2].parse().unwrap());
            if keys.len() == 300 {
                child.kill().unwrap(); // SIGKILL on Unix
                break;
            }
        }
    }
    let _ = child.wait();
    assert_eq!(keys.len(), 300, "the child stopped early");

    let store = EmsSqlite::open(&path).unwrap();
    let bureau = store.bureau("crash-fd").await.unwrap().unwrap().id;
    let log = store.incident(bureau, incident).await.unwrap().unwrap().log;
    for key in &keys {
        assert!(
            log.by_key(key).is_some(),
            "acknowledged event {key} was lost"
        );
    }
    let seqs: Vec<u32> = log.events.iter().map(|e| e.seq).collect();
    let expected: Vec<u32> = (1..=u32::try_from(seqs.len()).unwrap()).collect();
    assert_eq!(seqs, expected, "the event log has no gap");
    match store.verify_view_log().await.unwrap() {
        ChainReport::Intact { entries, .. } => assert!(
            entries as i64 >= max_view,
            "acknowledged view {max_view} lost; log has {entries}"
        ),
        ChainReport::Broken { first_break, .. } => panic!("view chain broken: {first_break}"),
    }
}
