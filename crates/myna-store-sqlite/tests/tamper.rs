#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Editing the database file behind the service's back is caught by chain verification.

use myna_domain::access::ChainBreak;
use myna_domain::summary::View;
use myna_store::testsuite::{request, sample_person};
use myna_store::{ChainReport, ProviderStore};
use myna_store_sqlite::SqliteStore;

async fn store_with_log(path: &std::path::Path, n: i64) {
    let store = SqliteStore::open(path).unwrap();
    store
        .load_persons(vec![sample_person(1, "01CC00000001")])
        .await
        .unwrap();
    for i in 0..n {
        store
            .access_records(request("01CC00000001", View::Summary, i))
            .await
            .unwrap();
    }
    assert!(
        matches!(store.verify_access_log().await.unwrap(), ChainReport::Intact { entries, .. } if entries == n as u64)
    );
}

async fn verify(path: &std::path::Path) -> ChainReport {
    SqliteStore::open(path)
        .unwrap()
        .verify_access_log()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_entry_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    store_with_log(&path, 10).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE access_log SET viewer_team = '麻生救急1' WHERE seq = 6",
        [],
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        verify(&path).await,
        ChainReport::Broken {
            verified: 5,
            first_break: ChainBreak::Content { seq: 6 },
            chain: None,
            broken_chains: Vec::new(),
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_entry_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    store_with_log(&path, 10).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM access_log WHERE seq = 3", [])
        .unwrap();
    drop(conn);
    assert_eq!(
        verify(&path).await,
        ChainReport::Broken {
            verified: 2,
            first_break: ChainBreak::Sequence {
                seq: 4,
                expected: 3
            },
            chain: None,
            broken_chains: Vec::new(),
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_a_column_is_reported_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    store_with_log(&path, 3).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE access_log SET consent = 'maybe' WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    assert!(matches!(
        verify(&path).await,
        ChainReport::Broken {
            verified: 1,
            first_break: ChainBreak::Unreadable { seq: 2, .. },
            ..
        }
    ));
}
