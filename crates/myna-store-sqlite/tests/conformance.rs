#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shared store conformance suite, on a real SQLite file.

use myna_store::testsuite;
use myna_store_sqlite::SqliteStore;

fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("provider.db")).unwrap();
    (dir, store)
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_dir, store) = fresh();
            testsuite::$name(store).await;
        }
    )*};
}

suite!(
    access_returns_records_and_logs,
    summary_view_reads_within_its_windows,
    refused_access_writes_nothing,
    long_supplies_are_read_and_impossible_ones_refused,
    organisations_authenticate,
    concurrent_accesses_chain_correctly,
    dataset_info_round_trips,
);
