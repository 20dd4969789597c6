//! The stores on PostgreSQL, chosen by a `postgres://` database URL. The SQL stays within what
//! Citus, CockroachDB and YugabyteDB also accept:
//! - keys are made by the client (hashed natural keys, or time-then-random ids), never a
//!   sequence on a hot path;
//! - every large table carries its distribution key first in every unique key (the person for
//!   medical data, the bureau for ems);
//! - writes use `INSERT … ON CONFLICT`, never an engine-specific upsert, and no conflict target
//!   on a person-keyed table (the several-node deployment's foreign partitions have no unique
//!   index): there an `UPDATE` of what is held, then an `INSERT` of the rest;
//! - a transaction that loses a race (SQLSTATE 40001, 40P01, or the unique key of a chain's
//!   next place or of a person two imports insert at once) runs again.
//!
//! `ProviderStore` is `PgProviderStore`; `EmsStore` is `PgEmsStore`. Each keeps its own
//! migration history, so both can share one database.

mod ems;
mod provider;
pub mod sharded;
pub mod testing;
mod two_phase;

pub use ems::PgEmsStore;
pub use provider::{PgProviderStore, baseline_copy};
pub use two_phase::{CrashPoint, Recovered};

use myna_store::StoreError;
use tokio_postgres::error::SqlState;

/// Connections per store. A serving provider has at most a few hundred requests in flight, and
/// each holds a connection only for its one transaction.
const POOL_SIZE: usize = 16;

/// How often a transaction that lost a race is run again before the caller gets `Unavailable`.
const MAX_ATTEMPTS: u32 = 8;

/// The server's code and message (its DETAIL, which can hold logins or person ids, is left
/// out), or the client's own error.
pub(crate) fn db_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => with_causes(&e),
    })
}

fn pool_err(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Unavailable(format!("database pool: {}", with_causes(&e)))
}

/// A column of the expected type; anything else is bad stored data (500), not an outage.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| myna_store::columns::corrupt(format!("column {i}: {e}")))
}

/// A stored count that must not be negative; one that is, is bad stored data.
pub(crate) fn to_u32(n: i32, what: &str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| myna_store::columns::corrupt(format!("{what} {n} is negative")))
}

pub(crate) fn to_u16(n: i32, what: &str) -> Result<u16, StoreError> {
    u16::try_from(n)
        .map_err(|_| myna_store::columns::corrupt(format!("{what} {n} is out of range")))
}

/// A stored SHA-256.
pub(crate) fn hash32(
    bytes: &[u8],
    what: impl std::fmt::Display,
) -> Result<myna_domain::access::Hash32, String> {
    myna_domain::access::Hash32::try_from(bytes)
        .map_err(|_| format!("{what}: hash is not 32 bytes"))
}

/// A race another transaction won: running again is correct.
pub(crate) fn lost_race(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

/// A statement's error as the end of one run: a lost race runs again, anything else fails.
pub(crate) fn race_or_fail<E: From<StoreError>>(e: tokio_postgres::Error) -> Attempt<E> {
    if lost_race(&e) {
        Attempt::Retry(e)
    } else {
        Attempt::Fail(db_err(e).into())
    }
}

/// Why one run of a transaction ended: a race to run again, or an answer.
pub(crate) enum Attempt<E = StoreError> {
    Retry(tokio_postgres::Error),
    Fail(E),
}

impl<E: From<StoreError>> From<StoreError> for Attempt<E> {
    fn from(e: StoreError) -> Self {
        Attempt::Fail(e.into())
    }
}

/// Runs `once` again while it loses races, up to `MAX_ATTEMPTS` times.
pub(crate) async fn retrying<T, E, F, Fut>(mut once: F) -> Result<T, E>
where
    E: From<StoreError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match once().await {
            Ok(v) => return Ok(v),
            Err(Attempt::Retry(e)) if attempts < MAX_ATTEMPTS => {
                tracing::debug!(error = %e, attempts, "transaction lost a race; running it again");
                tokio::time::sleep(std::time::Duration::from_millis(
                    u64::from(attempts) * (1 + u64::from(rand::random::<u8>() % 8)),
                ))
                .await;
            }
            Err(Attempt::Retry(e)) => return Err(db_err(e).into()),
            Err(Attempt::Fail(e)) => return Err(e),
        }
    }
}

/// How long a request waits for a connection, a new connection for the server, a statement
/// for a lock, and a transaction left idle: a stuck database answers 503 rather than hanging
/// every crew's request behind it.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const SERVER_LIMITS: &str = "-c statement_timeout=10000 -c lock_timeout=5000 \
     -c idle_in_transaction_session_timeout=30000";

/// A walk of a whole log's limits (`audit verify`, a checkpoint), set in its transaction: it
/// reads every entry, which at a national log's size takes longer than a crew's request may.
pub(crate) const WALK_LIMITS: &str = "SET LOCAL statement_timeout = 0";

/// A bulk write's own limits, set in its transaction (`SET LOCAL`): a batch of 200,000 lines
/// takes longer than a crew's request may, and may wait for another batch to finish.
pub(crate) const BULK_LIMITS: &str =
    "SET LOCAL statement_timeout = '10min'; SET LOCAL lock_timeout = '10min'";

/// The connection settings of a `postgres://` URL, with the timeouts.
pub(crate) fn config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Unavailable(format!("database URL: {e}")))?;
    Ok(limited(config))
}

/// Connection settings with the timeouts added.
pub(crate) fn limited(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    config.connect_timeout(WAIT);
    config.options(SERVER_LIMITS);
    config
}

/// Parses a `postgres://` URL and builds a pool of `POOL_SIZE` connections (without TLS: the
/// database is on loopback or a private network in the deployments documented).
pub(crate) fn pool(url: &str) -> Result<deadpool_postgres::Pool, StoreError> {
    pool_of(config(url)?, POOL_SIZE)
}

/// The provider's pool: `pool`, with every prepared statement run on its generic plan.
/// PostgreSQL plans a prepared statement again at every call while a plan for the call's
/// values looks cheaper than the generic one, as one for the access path's date bounds does:
/// that re-planning was about 6 % of the machine's CPU per summary (docs/benchmarks.md). The
/// access path's statements are keyed by one person; the import's and the log walk's keep
/// the plans they had (compared with `EXPLAIN` in review). On the several-node deployment a generic plan
/// still prunes to the person's partition, at run time. `extra_float_digits=3`: the view's
/// records come back as JSON text, whose numbers the server writes exactly only at this
/// setting (shortest exact form), whatever a database or role sets.
pub(crate) fn provider_pool(url: &str) -> Result<deadpool_postgres::Pool, StoreError> {
    let mut config = config(url)?;
    config.options(format!(
        "{SERVER_LIMITS} -c plan_cache_mode=force_generic_plan -c extra_float_digits=3"
    ));
    pool_of(config, POOL_SIZE)
}

/// A pool of at most `size` connections with these settings.
pub(crate) fn pool_of(
    config: tokio_postgres::Config,
    size: usize,
) -> Result<deadpool_postgres::Pool, StoreError> {
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(WAIT))
        .create_timeout(Some(WAIT))
        .recycle_timeout(Some(WAIT))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(pool_err)
}

/// A pool on `url` whose schema `runner` brought up to date, its history kept in `history`.
pub(crate) async fn migrated_pool(
    url: &str,
    runner: refinery::Runner,
    history: &str,
) -> Result<deadpool_postgres::Pool, StoreError> {
    let pool = pool(url)?;
    migrate(&pool, runner, history)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migrating {}: {e}", redacted(url))))?;
    Ok(pool)
}

/// Brings the database behind `pool` up to `runner`'s migrations, recorded in `history`, one
/// process at a time: two starting together on a new database would both create its tables,
/// and one would fail.
pub(crate) async fn migrate(
    pool: &deadpool_postgres::Pool,
    runner: refinery::Runner,
    history: &str,
) -> Result<(), String> {
    /// The advisory lock's key: "myna-mig" in ASCII.
    const MIGRATION_LOCK: i64 = 0x6d79_6e61_2d6d_6967;
    let mut client = connection(pool).await.map_err(|e| e.to_string())?;
    let free: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| with_causes(&e))?;
    if !free {
        // Another process migrates: an upgrade may take minutes (an index built on a large
        // table), so this waits without the connection's timeouts, then restores them.
        tracing::info!("another process is migrating the database; waiting for it");
        let waited = client
            .batch_execute(&format!(
                "SET statement_timeout = 0; SET lock_timeout = 0; \
                 SELECT pg_advisory_lock({MIGRATION_LOCK}); \
                 RESET statement_timeout; RESET lock_timeout"
            ))
            .await;
        if waited.is_err() {
            // The connection goes back to the pool: with its timeouts.
            let _ = client
                .batch_execute("RESET statement_timeout; RESET lock_timeout")
                .await;
        }
        waited.map_err(|e| with_causes(&e))?;
    }
    let ran = migrate_on(&mut client, runner, history).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| with_causes(&e));
    ran.and(unlocked.map(drop))
}

/// An error with the causes under it, "outer: inner: …": tokio-postgres says only "db error"
/// at the top, and the server's message is below it.
pub(crate) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = match c.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(d) => format!("{} ({})", d.message(), d.code().code()),
            None => c.to_string(),
        };
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// `migrate` on a connection the caller holds (one that holds a lock, say).
pub(crate) async fn migrate_on(
    client: &mut tokio_postgres::Client,
    mut runner: refinery::Runner,
    history: &str,
) -> Result<(), String> {
    runner.set_migration_table_name(history);
    runner
        .run_async(client)
        .await
        .map(drop)
        .map_err(|e| with_causes(&e))
}

/// A transaction whose every statement sees the newest commits (READ COMMITTED, whatever the
/// server's default): what is read after a lock is taken then includes the commit that freed
/// the lock (a two-phase token, a person's turn at their chain).
pub(crate) async fn read_committed(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(db_err)
}

pub(crate) async fn connection(
    pool: &deadpool_postgres::Pool,
) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get().await.map_err(pool_err)
}

/// A new id: milliseconds since the epoch, then 20 random bits. Ids sort by time, need no
/// sequence, and two made in the same millisecond differ with probability 1 − 2⁻²⁰.
pub(crate) fn new_id(now_ms: i64) -> i64 {
    (now_ms << 20) | i64::from(rand::random::<u32>() & 0xF_FFFF)
}

/// A URL with its password hidden, for messages and logs: in the user part and in a
/// `password=` parameter.
pub fn redacted(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match base[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    match query {
        None => base,
        Some(q) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_stay_positive() {
        let a = new_id(1_800_000_000_000);
        let b = new_id(1_800_000_000_001);
        assert!(a > 0 && b > a);
        assert_eq!(a >> 20, 1_800_000_000_000);
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redacted("postgres://myna:s3cret@db.example:5432/provider"),
            "postgres://myna:***@db.example:5432/provider"
        );
        assert_eq!(
            redacted("postgres://myna@127.0.0.1:54329/postgres"),
            "postgres://myna@127.0.0.1:54329/postgres"
        );
        assert_eq!(
            redacted("postgres://db.example/provider?user=myna&password=s3cret&sslmode=disable"),
            "postgres://db.example/provider?user=myna&password=***&sslmode=disable"
        );
    }
}
