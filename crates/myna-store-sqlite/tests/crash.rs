#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Kill -9 a process in the middle of a stream of accesses: every access it acknowledged is in
//! the log afterwards and the chain verifies.

use myna_domain::summary::View;
use myna_store::testsuite::{request, sample_person};
use myna_store::{ChainReport, ProviderStore};
use myna_store_sqlite::SqliteStore;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "MYNA_CRASH_CHILD_DB";

/// Runs only as the child of `acknowledged_accesses_survive_sigkill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = std::sync::Arc::new(SqliteStore::open(std::path::Path::new(&path)).unwrap());
    store
        .load_persons(vec![sample_person(1, "01DD00000001")])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let g = s
                    .access_records(request("01DD00000001", View::Summary, w * 1_000_000 + i))
                    .await
                    .unwrap();
                let mut out = std::io::stdout().lock();
                // SQLite's log is one chain (partition 0): its place is its length then.
                writeln!(out, "ACK {}", g.position.seq).unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_accesses_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
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
    let mut max_acked = 0i64;
    let mut acks = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ACK ") {
            max_acked = max_acked.max(n.trim().parse().unwrap());
            acks += 1;
            if acks == 400 {
                child.kill().unwrap(); // SIGKILL on Unix
                break;
            }
        }
    }
    let _ = child.wait();
    assert!(
        acks >= 400,
        "child stopped early after {acks} acknowledgements"
    );
    let store = SqliteStore::open(&path).unwrap();
    match store.verify_access_log().await.unwrap() {
        ChainReport::Intact { entries, .. } => {
            assert!(
                entries as i64 >= max_acked,
                "acknowledged seq {max_acked} lost; log has {entries}"
            )
        }
        ChainReport::Broken { first_break, .. } => {
            panic!("chain broken after crash: {first_break}")
        }
    }
}
