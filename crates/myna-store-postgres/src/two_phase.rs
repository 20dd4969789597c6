//! Writes that span data nodes (the several-node deployment), committed on every node or on
//! none. postgres_fdw commits each node's remote transaction in turn and has no two-phase
//! commit, so a load or an import batch does not go through the coordinator's foreign
//! partitions. The provider routes each person's rows to their node itself (by PostgreSQL's own
//! hash, asked of the coordinator), writes them on a direct connection, and drives
//! PostgreSQL's two-phase commit:
//!
//! 1. The coordinator's transaction takes the one-writer advisory lock (such writes run one at
//!    a time, so two never wait for each other's prepared shares), an advisory lock on a new
//!    token, and inserts the token into `node_commit`, beside its own rows (the batch, card
//!    links, masters).
//! 2. Each node's share is written in a transaction of its own, then `PREPARE TRANSACTION
//!    'myna_provider_<token>'`: durable on the node, invisible, its locks held.
//! 3. The coordinator commits. That is the decision: the token's row is committed exactly when
//!    the coordinator's part of the write is.
//! 4. Each node's prepared transaction is committed (`COMMIT PREPARED`), then the token's row
//!    is deleted.
//!
//! A crash at any step leaves prepared transactions that `recover` resolves (presumed abort):
//! committed where the coordinator holds the token; rolled back where it does not and the
//! token's lock is free, since its coordinator transaction has ended without committing. A
//! token whose lock is held is a write still in flight and is left alone.

use crate::{Attempt, connection, db_err, read_committed};
use deadpool_postgres::{Pool, Transaction};
use myna_store::StoreError;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use tokio_postgres::error::SqlState;

/// Every prepared transaction this provider makes on a data node is named this, then its token.
const GID_PREFIX: &str = "myna_provider_";

/// Connections per data node for writes that span nodes. An access reaches a node through the
/// coordinator (postgres_fdw), not through these.
const NODE_POOL_SIZE: usize = 4;

/// The data nodes of a coordinator, reached directly.
pub(crate) struct Nodes {
    /// By remainder of `hash(person) mod` their number.
    pools: Vec<Pool>,
}

impl Nodes {
    /// The nodes of the coordinator behind `coordinator`; `None` when it is one node.
    pub(crate) async fn of(coordinator: &Pool) -> Result<Option<Nodes>, StoreError> {
        let configs = crate::sharded::node_configs(coordinator).await?;
        if configs.is_empty() {
            return Ok(None);
        }
        let pools = configs
            .into_iter()
            .map(|c| crate::pool_of(c, NODE_POOL_SIZE))
            .collect::<Result<_, _>>()?;
        Ok(Some(Nodes { pools }))
    }

    pub(crate) fn len(&self) -> usize {
        self.pools.len()
    }

    pub(crate) fn pool(&self, node: usize) -> Result<&Pool, StoreError> {
        self.pools
            .get(node)
            .ok_or_else(|| StoreError::Unavailable(format!("no data node {node}")))
    }

    /// The node of each person, as the coordinator's partitioning places them: PostgreSQL's
    /// own hash of the key (`satisfies_hash_partition`), so the rows written directly are
    /// where the coordinator's reads look.
    pub(crate) async fn route(
        &self,
        tx: &Transaction<'_>,
        persons: &[i64],
    ) -> Result<HashMap<i64, usize>, Attempt> {
        let modulus = i32::try_from(self.len()).unwrap_or(i32::MAX);
        let rows = tx
            .query(
                "SELECT p, r FROM unnest($1::int8[]) p, generate_series(0, $2 - 1) r \
                 WHERE satisfies_hash_partition('person'::regclass, $2, r, p)",
                &[&persons, &modulus],
            )
            .await
            .map_err(crate::race_or_fail)?;
        let mut nodes = HashMap::with_capacity(persons.len());
        for row in rows {
            let person: i64 = crate::col(&row, 0)?;
            let remainder: i32 = crate::col(&row, 1)?;
            let node = usize::try_from(remainder)
                .map_err(|_| myna_store::columns::corrupt(format!("remainder {remainder}")))?;
            nodes.insert(person, node);
        }
        if let Some(lost) = persons.iter().find(|p| !nodes.contains_key(p)) {
            return Err(myna_store::columns::corrupt(format!("person {lost} has no node")).into());
        }
        Ok(nodes)
    }
}

/// For tests of recovery: where a write that spans nodes stops, as if its process had died
/// there, leaving what it wrote for `recover`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Every node's share prepared; the coordinator's transaction not committed.
    BeforeDecision = 1,
    /// The coordinator's transaction committed; no node's prepared transaction committed.
    AfterDecision = 2,
}

/// The crash point a test set, if any (none in service).
#[derive(Default)]
pub(crate) struct CrashSwitch(AtomicU8);

impl CrashSwitch {
    pub(crate) fn set(&self, at: Option<CrashPoint>) {
        self.0.store(at.map_or(0, |c| c as u8), Ordering::SeqCst);
    }

    pub(crate) fn at(&self, point: CrashPoint) -> Result<(), Attempt> {
        if self.0.load(Ordering::SeqCst) == point as u8 {
            return Err(
                StoreError::Unavailable(format!("stopped at {point:?} (a test's crash)")).into(),
            );
        }
        Ok(())
    }
}

/// One write across the nodes: its token names its prepared transactions and the
/// coordinator's row that decides them.
pub(crate) struct Spanning {
    token: i64,
}

impl Spanning {
    /// Step 1, in the coordinator's transaction `tx`.
    pub(crate) async fn begin(
        tx: &Transaction<'_>,
        coordinator: &Pool,
        nodes: &Nodes,
    ) -> Result<Spanning, Attempt> {
        let now = chrono::Utc::now().timestamp_millis();
        let token = crate::new_id(now);
        let (high, low) = lock_key(token);
        // The nodes' shares are written while this transaction waits, and it may wait for
        // another such write (a batch of 200,000 lines) to finish first.
        tx.batch_execute(&format!(
            "{}; SET LOCAL idle_in_transaction_session_timeout = '10min'",
            crate::BULK_LIMITS
        ))
        .await
        .map_err(crate::race_or_fail)?;
        // One such write at a time: two writing persons in common on two nodes would each
        // wait for the other's prepared share there, which no deadlock detector sees.
        let (one_high, one_low) = ONE_WRITER;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&one_high, &one_low],
        )
        .await
        .map_err(crate::race_or_fail)?;
        // No other such write runs now, so whatever is still prepared on the nodes was left
        // by one that ended: resolved before this write meets its locks.
        if let Err(e) = recover(coordinator, nodes).await {
            tracing::warn!(error = %e, "prepared writes on the data nodes not resolved yet");
        }
        tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&high, &low])
            .await
            .map_err(crate::race_or_fail)?;
        tx.execute(
            "INSERT INTO node_commit (token, at_ms) VALUES ($1, $2)",
            &[&token, &now],
        )
        .await
        .map_err(crate::race_or_fail)?;
        Ok(Spanning { token })
    }

    fn gid(&self) -> String {
        gid(self.token)
    }

    /// Step 2 for one node: ends `node_tx`, which holds the node's share, by preparing it.
    pub(crate) async fn prepare(&self, node_tx: Transaction<'_>) -> Result<(), Attempt> {
        // PREPARE ends the transaction on the server; the empty one begun after it is what
        // the client's COMMIT then ends, so that nothing is sent outside a transaction.
        node_tx
            .batch_execute(&format!("PREPARE TRANSACTION '{}'; BEGIN", self.gid()))
            .await
            .map_err(crate::race_or_fail)?;
        node_tx.commit().await.map_err(crate::race_or_fail)
    }

    /// Step 4, once the coordinator has committed: the prepared shares on `nodes` are
    /// committed and the token's row removed. What fails here is left to `recover`: the
    /// write is decided and will be committed.
    pub(crate) async fn finish(self, coordinator: &Pool, nodes: &Nodes, prepared: &[usize]) {
        let mut all = true;
        for &node in prepared {
            match end_prepared(nodes, node, &self.gid(), true).await {
                Ok(Ended::Done) => {}
                // A recovery is committing it: the token stays until one sees it finished.
                Ok(Ended::Busy) => all = false,
                Err(e) => {
                    tracing::warn!(error = %e, node, token = self.token, "a prepared share was not committed yet; recovery will");
                    all = false;
                }
            }
        }
        if all && let Err(e) = forget_tokens(coordinator, &[self.token]).await {
            tracing::warn!(error = %e, token = self.token, "a finished write's token was not removed");
        }
    }

    /// After the coordinator's commit failed or went unanswered: the shares prepared on
    /// `nodes` are ended as the token's row says, once its lock shows the coordinator's
    /// transaction over (waited for up to 5 s). What cannot be settled is left to `recover`.
    pub(crate) async fn settle(self, coordinator: &Pool, nodes: &Nodes, prepared: &[usize]) {
        let settled: Result<(), StoreError> = async {
            let mut client = connection(coordinator).await?;
            let tx = read_committed(&mut client).await?;
            let (high, low) = lock_key(self.token);
            tx.batch_execute("SET LOCAL lock_timeout = '5s'")
                .await
                .map_err(db_err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&high, &low])
                .await
                .map_err(db_err)?;
            let commit = is_decided(&tx, self.token).await?;
            for &node in prepared {
                end_prepared(nodes, node, &self.gid(), commit).await?;
            }
            tx.commit().await.map_err(db_err)
        }
        .await;
        if let Err(e) = settled {
            tracing::warn!(error = %e, token = self.token, "a write's prepared shares were not settled yet; recovery will");
        }
    }

    /// After a failure before the decision: the shares prepared on `nodes` are rolled back.
    /// What fails here is left to `recover`, which rolls it back too.
    pub(crate) async fn abandon(self, nodes: &Nodes, prepared: &[usize]) {
        for &node in prepared {
            if let Err(e) = end_prepared(nodes, node, &self.gid(), false).await {
                tracing::warn!(error = %e, node, token = self.token, "a prepared share was not rolled back yet; recovery will");
            }
        }
    }
}

/// Whether the token's row is committed: the write it names is decided.
async fn is_decided(tx: &Transaction<'_>, token: i64) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt("SELECT 1 FROM node_commit WHERE token = $1", &[&token])
        .await
        .map_err(db_err)?
        .is_some())
}

fn gid(token: i64) -> String {
    format!("{GID_PREFIX}{token}")
}

/// The advisory lock that writes spanning nodes take one at a time. No token has a high half
/// of 0 (a token's time would be before 1970-01-01 00:00:04).
const ONE_WRITER: (i32, i32) = (0, 1);

/// The token as the two 32-bit keys of an advisory lock: that key space is apart from the
/// one-key locks an access takes on its person.
fn lock_key(token: i64) -> (i32, i32) {
    ((token >> 32) as i32, token as i32)
}

/// How ending a prepared transaction went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Ended now, or already (by a recovery or the writer meanwhile).
    Done,
    /// Another session is ending it at this moment ("is busy"): it is theirs to finish.
    Busy,
}

/// Commits or rolls back one prepared transaction.
async fn end_prepared(
    nodes: &Nodes,
    node: usize,
    gid: &str,
    commit: bool,
) -> Result<Ended, StoreError> {
    let client = connection(nodes.pool(node)?).await?;
    let verb = if commit { "COMMIT" } else { "ROLLBACK" };
    match client
        .batch_execute(&format!("{verb} PREPARED '{gid}'"))
        .await
    {
        Ok(()) => Ok(Ended::Done),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(Ended::Done),
        Err(e) if e.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => Ok(Ended::Busy),
        Err(e) => Err(db_err(e)),
    }
}

async fn forget_tokens(coordinator: &Pool, tokens: &[i64]) -> Result<(), StoreError> {
    connection(coordinator)
        .await?
        .execute("DELETE FROM node_commit WHERE token = ANY($1)", &[&tokens])
        .await
        .map_err(db_err)?;
    Ok(())
}

/// What `recover` found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Prepared shares of decided writes, now committed.
    pub committed: usize,
    /// Prepared shares of writes that never decided, now rolled back.
    pub rolled_back: usize,
    /// Prepared shares of writes still running, or being ended by another session at this
    /// moment, left alone.
    pub in_flight: usize,
    /// Nodes that could not be asked.
    pub unreachable: usize,
}

/// Resolves every prepared share on the nodes that no running write owns (the module's
/// rule). Runs at connect, before each write that spans nodes, and on a schedule in the
/// service. A node that cannot be reached is counted and skipped.
pub(crate) async fn recover(coordinator: &Pool, nodes: &Nodes) -> Result<Recovered, StoreError> {
    let mut done = Recovered::default();
    // The decided tokens first: every share of a token is prepared before its row commits,
    // so the shares listed after this read are all there are.
    let decided: HashSet<i64> = connection(coordinator)
        .await?
        .query("SELECT token FROM node_commit", &[])
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| crate::col(r, 0))
        .collect::<Result<_, _>>()?;
    let mut shares: Vec<(usize, i64)> = Vec::new();
    for node in 0..nodes.len() {
        match prepared_on(nodes, node).await {
            Ok(tokens) => shares.extend(tokens.into_iter().map(|t| (node, t))),
            Err(e) => {
                tracing::warn!(error = %e, node, "data node not reached to resolve prepared writes");
                done.unreachable += 1;
            }
        }
    }
    // Only tokens decided at the first read may be forgotten: a token found decided later
    // may have shares prepared after the nodes were listed.
    let mut unfinished: HashSet<i64> = HashSet::new();
    for (node, token) in shares {
        if decided.contains(&token) {
            match end_prepared(nodes, node, &gid(token), true).await? {
                Ended::Done => done.committed += 1,
                Ended::Busy => {
                    done.in_flight += 1;
                    unfinished.insert(token);
                }
            }
            continue;
        }
        // Not decided when read: decide now, holding the token's lock, which a running write
        // holds until its coordinator transaction ends.
        let mut client = connection(coordinator).await?;
        let tx = read_committed(&mut client).await?;
        let (high, low) = lock_key(token);
        let free: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1, $2)", &[&high, &low])
            .await
            .map_err(db_err)
            .and_then(|r| crate::col(&r, 0))?;
        if !free {
            done.in_flight += 1;
            continue;
        }
        let commit = is_decided(&tx, token).await?;
        let ended = end_prepared(nodes, node, &gid(token), commit).await?;
        tx.commit().await.map_err(db_err)?;
        match (ended, commit) {
            (Ended::Busy, _) => done.in_flight += 1,
            (Ended::Done, true) => done.committed += 1,
            (Ended::Done, false) => done.rolled_back += 1,
        }
    }
    // With every node asked, no share of these is left anywhere.
    let finished: Vec<i64> = decided.difference(&unfinished).copied().collect();
    if done.unreachable == 0 && !finished.is_empty() {
        forget_tokens(coordinator, &finished).await?;
    }
    if done.committed + done.rolled_back > 0 {
        tracing::info!(?done, "prepared writes on the data nodes resolved");
    }
    Ok(done)
}

/// The tokens of this provider's prepared transactions on one node.
async fn prepared_on(nodes: &Nodes, node: usize) -> Result<Vec<i64>, StoreError> {
    let rows = connection(nodes.pool(node)?)
        .await?
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() \
             AND starts_with(gid, $1)",
            &[&GID_PREFIX],
        )
        .await
        .map_err(db_err)?;
    let mut tokens = Vec::new();
    for row in rows {
        let gid: String = crate::col(&row, 0)?;
        match gid.strip_prefix(GID_PREFIX).and_then(|t| t.parse().ok()) {
            Some(token) => tokens.push(token),
            None => tracing::warn!(gid, "a prepared transaction not of this provider's form"),
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_its_lock_key_and_its_name() {
        let token = crate::new_id(1_800_000_000_000);
        let (high, low) = lock_key(token);
        assert_eq!(
            (i64::from(high) << 32) | i64::from(low as u32),
            token,
            "the two keys give the token back"
        );
        assert_eq!(
            gid(token)
                .strip_prefix(GID_PREFIX)
                .and_then(|t| t.parse().ok()),
            Some(token)
        );
    }
}
