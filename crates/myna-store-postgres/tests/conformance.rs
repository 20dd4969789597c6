#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shared store conformance suites on a real PostgreSQL server, each test on a fresh
//! database.

/// `suite!(Db, module, Store; tests…)`: one test per suite function, on fresh databases made by
/// `Db` (`TestDb`: one node; `ShardedTestDb`: a coordinator and three data nodes).
macro_rules! suite {
    ($db:ident, $suite:ident, $store:ty; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = myna_store_postgres::testing::$db::create(stringify!($name))
                .await
                .unwrap();
            let store = <$store>::connect(&db.url).await.unwrap();
            myna_store::$suite::$name(store).await;
            db.drop_now().await.unwrap();
        }
    )*};
}

mod provider {
    myna_store::provider_suite!(suite!(
        TestDb,
        testsuite,
        myna_store_postgres::PgProviderStore
    ));
}

mod ems {
    myna_store::ems_suite!(suite!(
        TestDb,
        ems_testsuite,
        myna_store_postgres::PgEmsStore
    ));
}

/// The provider suite on the several-node deployment (postgres_fdw).
mod provider_sharded {
    myna_store::provider_suite!(suite!(
        ShardedTestDb,
        testsuite,
        myna_store_postgres::PgProviderStore
    ));
}
