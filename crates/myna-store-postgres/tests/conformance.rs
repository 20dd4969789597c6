#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shared store conformance suites on a real PostgreSQL server, each test on a fresh
//! database.

/// `suite!(module, Store; tests…)`: one test per suite function, on a fresh database.
macro_rules! suite {
    ($suite:ident, $store:ty; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = myna_store_postgres::testing::TestDb::create(stringify!($name))
                .await
                .unwrap();
            let store = <$store>::connect(&db.url).await.unwrap();
            myna_store::$suite::$name(store).await;
            db.drop_now().await.unwrap();
        }
    )*};
}

mod provider {
    suite!(testsuite, myna_store_postgres::PgProviderStore;
        access_returns_records_and_logs,
        products_sharing_a_yj_code_keep_their_own_names,
        summary_view_reads_within_its_windows,
        refused_access_writes_nothing,
        long_supplies_are_read_and_impossible_ones_refused,
        organisations_authenticate,
        a_revoked_organisation_certificate_is_refused_and_its_others_are_not,
        concurrent_accesses_chain_correctly,
        dataset_info_round_trips,
    );
}
