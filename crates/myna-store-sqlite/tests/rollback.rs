#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! When SQLite rolls back a whole batch transaction mid-way (I/O error, disk full), every access
//! in the batch is refused and none of them is logged: granted ⇔ logged, for every request.

use myna_domain::person::PersonId;
use myna_domain::summary::View;
use myna_store::testsuite::{accesses_at_once, sample_person};
use myna_store::{ChainReport, ProviderStore};
use myna_store_sqlite::SqliteStore;
use std::collections::HashSet;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_batch_grants_and_logs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    store
        .load_persons(vec![sample_person(1, "01EE00000001")])
        .await
        .unwrap();
    // Stand-in for an I/O error: abort the whole transaction when INC-3 is logged.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER inject BEFORE INSERT ON access_log WHEN NEW.incident_ref = 'INC-3' \
         BEGIN SELECT RAISE(ROLLBACK, 'injected failure'); END;",
    )
    .unwrap();
    drop(conn);
    let mut granted = HashSet::new();
    let outcomes = accesses_at_once(&store, 48, View::Summary, |_| "01EE00000001".into()).await;
    for (n, outcome) in outcomes.iter().enumerate() {
        if outcome.is_ok() {
            granted.insert(format!("INC-{n}"));
        }
    }
    assert!(!granted.contains("INC-3"));
    let logged: HashSet<String> = store
        .access_log_for(PersonId(1), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.entry.incident_ref)
        .collect();
    assert_eq!(
        logged, granted,
        "every granted access is logged and nothing else is"
    );
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));
}
