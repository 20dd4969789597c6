#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shared store conformance suites (`ProviderStore` and `EmsStore`), each test on a fresh,
//! real SQLite file.

/// `suite!(module, Store, "file.db"; tests…)`: one test per suite function, on a fresh file.
macro_rules! suite {
    ($suite:ident, $store:ty, $file:literal; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let store = <$store>::open(&dir.path().join($file)).unwrap();
            myna_store::$suite::$name(store).await;
        }
    )*};
}

mod provider {
    myna_store::provider_suite!(suite!(
        testsuite,
        myna_store_sqlite::SqliteStore,
        "provider.db"
    ));
}

mod ems {
    myna_store::ems_suite!(suite!(
        ems_testsuite,
        myna_store_sqlite::EmsSqlite,
        "ems.db"
    ));
}
