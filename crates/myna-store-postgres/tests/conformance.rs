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
    myna_store::provider_suite!(suite!(testsuite, myna_store_postgres::PgProviderStore));
}

mod ems {
    myna_store::ems_suite!(suite!(ems_testsuite, myna_store_postgres::PgEmsStore));
}

/// `sharded_suite!(module, Store; tests…)`: the same tests on the several-node deployment
/// (a coordinator and three data nodes, postgres_fdw), each on fresh databases.
macro_rules! sharded_suite {
    ($suite:ident, $store:ty; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = myna_store_postgres::testing::ShardedTestDb::create(stringify!($name))
                .await
                .unwrap();
            let store = <$store>::connect(&db.url).await.unwrap();
            myna_store::$suite::$name(store).await;
            db.drop_now().await.unwrap();
        }
    )*};
}

mod provider_sharded {
    myna_store::provider_suite!(sharded_suite!(
        testsuite,
        myna_store_postgres::PgProviderStore
    ));
}
