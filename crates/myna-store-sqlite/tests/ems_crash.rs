#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Kill -9 a process in the middle of a stream of incident events and view records: every event
//! and view it acknowledged is in the ems database afterwards, the log has no gap, and the view
//! chain verifies.

use myna_store::ChainReport;
use myna_store::ems::EmsStore;
use myna_store::ems_testsuite::{
    assigned_incident, crew_event, face, patient, small, team, view_record,
};
use myna_store_sqlite::EmsSqlite;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "MYNA_EMS_CRASH_CHILD_DB";
const BUREAU: &str = "crash-fd";

/// Runs only as the child of `acknowledged_events_survive_sigkill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ems_crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = std::sync::Arc::new(EmsSqlite::open(std::path::Path::new(&path)).unwrap());
    let bureau = store.seed_bureau(small(BUREAU)).await.unwrap();
    let team = team(&*store, bureau, "救急1").await;
    let incident = assigned_incident(&*store, bureau, "救急1").await;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("w{w}-{i}");
                s.append(
                    bureau,
                    incident,
                    crew_event(team, face(&patient(1)), &key, None),
                    1_790_000_001_000 + i,
                )
                .await
                .unwrap();
                let view = s.record_view(view_record(i, 1)).await.unwrap().seq;
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
    let bureau = store.bureau(BUREAU).await.unwrap().unwrap().id;
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
