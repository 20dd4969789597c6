#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What the several-node deployment promises beyond passing the shared suite (which
//! `conformance.rs` runs on it): the persons and their chains really are on the data nodes,
//! each person whole on one; an access needs only its person's node; an entry edited on a
//! data node fails `verify` on the coordinator; and sharding is refused where it would lose
//! data.

use myna_domain::access::ChainBreak;
use myna_domain::summary::View;
use myna_store::testsuite::{accesses_at_once, request, sample_person};
use myna_store::{ChainReport, ProviderStore, StoreError};
use myna_store_postgres::PgProviderStore;
use myna_store_postgres::sharded::{self, PERSON_KEYED};
use myna_store_postgres::testing::ShardedTestDb;
use std::collections::{BTreeMap, BTreeSet};

mod common;

const PERSONS: i64 = 30;

fn serial(i: i64) -> String {
    format!("01DD{i:08X}")
}

/// The person ids each table holds on one data node, read there directly.
async fn held_on(url: &str) -> BTreeMap<&'static str, BTreeSet<i64>> {
    let c = common::client(url).await;
    let mut held = BTreeMap::new();
    for (table, column) in PERSON_KEYED {
        let ids = c
            .query(&format!("SELECT DISTINCT {column} FROM {table}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .collect();
        held.insert(table, ids);
    }
    held
}

async fn loaded(db: &ShardedTestDb) -> PgProviderStore {
    let store = PgProviderStore::connect(&db.url).await.unwrap();
    store
        .load_persons(
            (1..=PERSONS)
                .map(|i| sample_person(i, &serial(i)))
                .collect(),
        )
        .await
        .unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_person_lives_whole_on_one_data_node_with_their_chain() {
    let db = ShardedTestDb::create("sharded_whole").await.unwrap();
    let layout = sharded::layout(&db.url).await.unwrap();
    assert_eq!(
        layout
            .iter()
            .map(|s| (s.remainder, s.modulus))
            .collect::<Vec<_>>(),
        vec![(0, 3), (1, 3), (2, 3)],
        "the coordinator's catalog names one server per remainder"
    );
    let store = loaded(&db).await;
    for i in 1..=PERSONS {
        store
            .access_records(request(&serial(i), View::Full, i))
            .await
            .unwrap();
    }
    let mut everyone = BTreeSet::new();
    for url in &db.shard_urls {
        let held = held_on(url).await;
        let persons = &held["person"];
        assert!(
            !persons.is_empty(),
            "{} of {PERSONS} persons on one node: the hash spreads them",
            persons.len()
        );
        for (table, ids) in &held {
            assert!(
                ids.is_subset(persons),
                "{table} rows of persons held on another node"
            );
        }
        assert_eq!(
            &held["access_log"], persons,
            "each person's log entry is on the person's node"
        );
        assert!(
            everyone.is_disjoint(persons),
            "a person is held on two nodes"
        );
        everyone.extend(persons.iter().copied());
    }
    assert_eq!(everyone, (1..=PERSONS).collect(), "every person is held");
    // The coordinator itself holds none: its person-keyed tables are only partitioned.
    let coordinator = common::client(&db.url).await;
    let local: i64 = coordinator
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'person' AND relkind = 'p'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(local, 1, "person is a partitioned table on the coordinator");
    assert_eq!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact {
            entries: PERSONS as u64,
            partitions: PERSONS as u64,
            head_hash: None
        }
    );
    drop(store);
    db.drop_now().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_needs_only_its_persons_node() {
    let db = ShardedTestDb::create("sharded_one_node").await.unwrap();
    let store = loaded(&db).await;
    let lost: BTreeSet<i64> = held_on(&db.shard_urls[0]).await["person"].clone();
    assert!(!lost.is_empty());
    // Node 0 goes away (its database is dropped, closing the coordinator's connections).
    let cut = db.shard_urls[0].rfind('/').unwrap();
    let name = &db.shard_urls[0][cut + 1..];
    common::client(&format!("{}/postgres", &db.shard_urls[0][..cut]))
        .await
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    for i in 1..=PERSONS {
        let got = store
            .access_records(request(&serial(i), View::Summary, i))
            .await;
        if lost.contains(&i) {
            assert!(
                matches!(got, Err(StoreError::Unavailable(_))),
                "person {i}'s node is gone: {got:?}"
            );
        } else {
            let granted = got.unwrap();
            assert_eq!(granted.person.id.0, i);
            assert_eq!(granted.position.seq, 1);
        }
    }
    drop(store);
    db.drop_now().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_edited_on_a_data_node_fails_verify_on_the_coordinator() {
    let db = ShardedTestDb::create("sharded_edit").await.unwrap();
    let store = loaded(&db).await;
    for n in 0..4 {
        for i in 1..=PERSONS {
            store
                .access_records(request(&serial(i), View::Summary, n * PERSONS + i))
                .await
                .unwrap();
        }
    }
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { entries: 120, .. }
    ));
    // Someone with access to node 2 alone edits an entry there.
    let node = common::client(&db.shard_urls[2]).await;
    let victim: i64 = node
        .query_one("SELECT min(person_id) FROM access_log", &[])
        .await
        .unwrap()
        .get(0);
    node.execute(
        "UPDATE access_log SET consent = 'obtained', exception_reason = NULL \
         WHERE person_id = $1 AND seq = 3",
        &[&victim],
    )
    .await
    .unwrap();
    let ChainReport::Broken { first_break, .. } = store.verify_access_log().await.unwrap() else {
        panic!("an entry edited on a data node verified");
    };
    assert_eq!(first_break, ChainBreak::Content { seq: 3 });
    drop(store);
    db.drop_now().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharding_twice_or_over_data_is_refused() {
    let db = ShardedTestDb::create("sharded_twice").await.unwrap();
    let again = sharded::shard_provider(&db.url, &db.shard_urls).await;
    assert!(
        matches!(&again, Err(StoreError::Unavailable(m)) if m.contains("already a coordinator")),
        "{again:?}"
    );
    db.drop_now().await.unwrap();

    // The coordinator named as its own node, or a node twice.
    let plain = myna_store_postgres::testing::TestDb::create("sharded_over_data")
        .await
        .unwrap();
    let node = myna_store_postgres::testing::TestDb::create("sharded_node")
        .await
        .unwrap();
    for nodes in [
        vec![plain.url.clone()],
        vec![node.url.clone(), node.url.clone()],
    ] {
        let refused = sharded::shard_provider(&plain.url, &nodes).await;
        assert!(
            matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("given again")),
            "{refused:?}"
        );
    }
    // The same, with one of the two spelled by host name instead of address.
    let by_name = |url: &str| {
        assert!(url.contains("@127.0.0.1:"), "{url}");
        url.replace("@127.0.0.1:", "@localhost:")
    };
    for nodes in [
        vec![by_name(&plain.url)],
        vec![node.url.clone(), by_name(&node.url)],
    ] {
        let refused = sharded::shard_provider(&plain.url, &nodes).await;
        assert!(
            matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("under another name")),
            "{refused:?}"
        );
    }
    // A coordinator already holding persons (its rows would be hidden behind the
    // partitions), or a node holding some, is refused.
    let store = PgProviderStore::connect(&plain.url).await.unwrap();
    store
        .load_persons(vec![sample_person(1, &serial(1))])
        .await
        .unwrap();
    drop(store);
    let refused = sharded::shard_provider(&plain.url, std::slice::from_ref(&node.url)).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("coordinator already holds rows in person")),
        "{refused:?}"
    );
    let refused = sharded::shard_provider(&node.url, std::slice::from_ref(&plain.url)).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("node 0 already holds rows in person")),
        "{refused:?}"
    );
    plain.drop_now().await.unwrap();
    node.drop_now().await.unwrap();
}

/// Many accesses to one person at once, each on its own connection: every one is served and
/// gets its own place, none exhausting its retries (a node's REPEATABLE READ side would
/// otherwise read a stale head after waiting for the person).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_accesses_to_one_person_all_get_the_next_place() {
    let db = ShardedTestDb::create("sharded_burst").await.unwrap();
    let store = std::sync::Arc::new(loaded(&db).await);
    let mut seqs: Vec<i64> = accesses_at_once(&store, 32, View::Summary, |_| serial(5))
        .await
        .into_iter()
        .map(|g| g.unwrap().position.seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=32).collect::<Vec<i64>>());
    drop(store);
    db.drop_now().await.unwrap();
}

/// Persons 101 to 130 (over every node) in one import batch.
fn batch_over_every_node(id: &str) -> myna_store::import::ImportBatch {
    let sets: Vec<_> = (101..=130).map(|i| sample_person(i, &serial(i))).collect();
    myna_store::testsuite::import_batch_of(id, 7, 1, &sets)
}

/// What the nodes hold of that batch, read on each directly: (persons, records, prepared
/// transactions left on the nodes).
async fn batch_on_nodes(db: &ShardedTestDb) -> (i64, i64, i64) {
    let mut held = (0, 0, 0);
    for url in &db.shard_urls {
        let c = common::client(url).await;
        let n = |sql: String| {
            let c = &c;
            async move { c.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
        };
        held.0 += n("SELECT count(*) FROM person WHERE id BETWEEN 101 AND 130".into()).await;
        for (table, column) in &PERSON_KEYED[1..6] {
            held.1 += n(format!(
                "SELECT count(*) FROM {table} WHERE {column} BETWEEN 101 AND 130"
            ))
            .await;
        }
        held.2 +=
            n("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()".into())
                .await;
    }
    held
}

/// Rows of a coordinator table.
async fn count_on_coordinator(db: &ShardedTestDb, table: &str) -> i64 {
    common::client(&db.url)
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Every person of the batch is served whole from the coordinator.
async fn batch_served_whole(store: &PgProviderStore) {
    for i in 101..=130 {
        let granted = store
            .access_records(request(&serial(i), View::Full, i))
            .await
            .unwrap();
        assert_eq!(
            granted.records,
            sample_person(i, &serial(i)).records,
            "person {i}"
        );
    }
}

/// A fresh deployment whose import of a batch over every node stops at `point`, as if the
/// writer died there; the store, and the batch.
async fn cut_import(
    test: &str,
    point: myna_store_postgres::CrashPoint,
) -> (
    ShardedTestDb,
    PgProviderStore,
    myna_store::import::ImportBatch,
) {
    let db = ShardedTestDb::create(test).await.unwrap();
    let store = PgProviderStore::connect(&db.url).await.unwrap();
    store.crash_spanning_writes_at(Some(point));
    let batch = batch_over_every_node(test);
    let cut = store.import_batch(batch.clone()).await;
    assert!(
        matches!(&cut, Err(StoreError::Unavailable(m)) if m.contains(&format!("{point:?}"))),
        "{cut:?}"
    );
    (db, store, batch)
}

/// Every person and record of the batch on the nodes, nothing left prepared, no token left.
async fn batch_held_whole(db: &ShardedTestDb, batch: &myna_store::import::ImportBatch) {
    let (persons, records, prepared) = batch_on_nodes(db).await;
    assert_eq!((persons, prepared), (30, 0));
    assert_eq!(
        u64::try_from(records).unwrap(),
        batch.len() - 60,
        "every record (the batch less its persons and cards) is held"
    );
    assert_eq!(count_on_coordinator(db, "node_commit").await, 0);
}

/// Makes the database at `url` refuse, at commit, any transaction that inserted into `table`
/// (a deferred constraint trigger, checked at COMMIT or PREPARE TRANSACTION); the batch over
/// every node imported there is refused with that error and leaves nothing behind: no row on
/// a node, nothing prepared, no batch or token row. The client that undoes it
/// (`DROP TRIGGER refuse_at_commit ON table`).
async fn refused_at_commit_by(
    db: &ShardedTestDb,
    store: &PgProviderStore,
    url: &str,
    table: &str,
) -> tokio_postgres::Client {
    let refusing = common::client(url).await;
    refusing
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$; \
             CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON {table} \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()"
        ))
        .await
        .unwrap();
    let refused = store.import_batch(batch_over_every_node(table)).await;
    assert!(
        matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("refused at commit")),
        "{refused:?}"
    );
    assert_eq!(
        batch_on_nodes(db).await,
        (0, 0, 0),
        "no node holds any of the batch, and nothing is left prepared"
    );
    for table in ["import_batch", "auth_cert", "node_commit"] {
        assert_eq!(count_on_coordinator(db, table).await, 0, "{table}");
    }
    refusing
}

/// A node that refuses at commit time (a deferred constraint, checked as its share is
/// prepared) leaves the batch applied on no node: postgres_fdw alone would already have
/// committed the nodes before it. The same batch then applies whole once the node accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_one_node_refuses_at_commit_is_applied_on_none() {
    use myna_store::import::Imported;
    let db = ShardedTestDb::create("sharded_refuse").await.unwrap();
    let store = PgProviderStore::connect(&db.url).await.unwrap();
    let batch = batch_over_every_node("visit");
    let last = refused_at_commit_by(&db, &store, &db.shard_urls[2], "visit").await;
    last.batch_execute("DROP TRIGGER refuse_at_commit ON visit")
        .await
        .unwrap();
    assert_eq!(
        store.import_batch(batch.clone()).await.unwrap(),
        Imported::Applied { items: batch.len() },
        "the same batch is not refused as partly held"
    );
    batch_held_whole(&db, &batch).await;
    for url in &db.shard_urls {
        let mine = &held_on(url).await["person"];
        assert!(
            mine.iter().any(|p| (101..=130).contains(p)),
            "the batch had a share on every node, so the refusal undid the others'"
        );
    }
    batch_served_whole(&store).await;
    drop(store);
    db.drop_now().await.unwrap();
}

/// The coordinator refusing its own commit (a deferred check on the decision's row) leaves
/// the batch on no node and nothing prepared: the shares are settled from the token's row,
/// which never committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_coordinator_refuses_at_commit_is_applied_on_none() {
    use myna_store::import::Imported;
    let db = ShardedTestDb::create("sharded_coord_refuse").await.unwrap();
    let store = PgProviderStore::connect(&db.url).await.unwrap();
    let batch = batch_over_every_node("node_commit");
    let coordinator = refused_at_commit_by(&db, &store, &db.url, "node_commit").await;
    coordinator
        .batch_execute("DROP TRIGGER refuse_at_commit ON node_commit")
        .await
        .unwrap();
    assert_eq!(
        store.import_batch(batch.clone()).await.unwrap(),
        Imported::Applied { items: batch.len() }
    );
    batch_held_whole(&db, &batch).await;
    drop(store);
    db.drop_now().await.unwrap();
}

/// A writer that dies once the coordinator has committed (the decision) leaves every node's
/// share prepared and unseen; the next connect commits them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_after_its_decision_is_committed_by_recovery() {
    use myna_store::import::Imported;
    let (db, store, batch) = cut_import(
        "sharded_after",
        myna_store_postgres::CrashPoint::AfterDecision,
    )
    .await;
    drop(store);
    assert_eq!(
        batch_on_nodes(&db).await,
        (0, 0, 3),
        "each node's share is prepared, not yet seen"
    );
    assert_eq!(count_on_coordinator(&db, "import_batch").await, 1);
    assert_eq!(count_on_coordinator(&db, "node_commit").await, 1);

    let store = PgProviderStore::connect(&db.url).await.unwrap();
    batch_held_whole(&db, &batch).await;
    assert_eq!(
        store.import_batch(batch).await.unwrap(),
        Imported::AlreadyImported
    );
    batch_served_whole(&store).await;
    drop(store);
    db.drop_now().await.unwrap();
}

/// A writer that dies before the decision leaves prepared shares that recovery rolls back,
/// but only once the writer's coordinator transaction is over: while its token's lock is
/// held, the write is in flight and left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_before_its_decision_is_rolled_back_by_recovery_never_in_flight() {
    use myna_store::import::Imported;
    use myna_store_postgres::Recovered;
    let (db, store, batch) = cut_import(
        "sharded_before",
        myna_store_postgres::CrashPoint::BeforeDecision,
    )
    .await;
    assert_eq!(batch_on_nodes(&db).await, (0, 0, 3));
    assert_eq!(count_on_coordinator(&db, "import_batch").await, 0);
    assert_eq!(count_on_coordinator(&db, "node_commit").await, 0);

    // Hold the write's lock, as its coordinator transaction would while still running: the
    // token's two 32-bit halves (`two_phase::lock_key`). (`pg_prepared_xacts` lists every
    // database's on the server, and other tests run beside this one.)
    let gid: String = common::client(&db.shard_urls[0])
        .await
        .query_one(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let token: i64 = gid.strip_prefix("myna_provider_").unwrap().parse().unwrap();
    let mut holder = common::client(&db.url).await;
    let running = holder.transaction().await.unwrap();
    running
        .execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&((token >> 32) as i32), &(token as i32)],
        )
        .await
        .unwrap();
    assert_eq!(
        store.recover_spanning_writes().await.unwrap(),
        Recovered {
            in_flight: 3,
            ..Recovered::default()
        }
    );
    assert_eq!(
        batch_on_nodes(&db).await,
        (0, 0, 3),
        "a running write is left alone"
    );
    running.rollback().await.unwrap();
    assert_eq!(
        store.recover_spanning_writes().await.unwrap(),
        Recovered {
            rolled_back: 3,
            ..Recovered::default()
        }
    );
    assert_eq!(batch_on_nodes(&db).await, (0, 0, 0));

    store.crash_spanning_writes_at(None);
    assert_eq!(
        store.import_batch(batch.clone()).await.unwrap(),
        Imported::Applied { items: batch.len() }
    );
    batch_held_whole(&db, &batch).await;
    batch_served_whole(&store).await;
    drop(store);
    db.drop_now().await.unwrap();
}

/// Each node refuses rows of persons that are not its own: its `person_slice` check computes
/// the same remainder as the coordinator's hash partitioning, over keys of every size, and a
/// row written on the wrong node directly is refused there, in every person-keyed table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_rows_of_persons_not_its_own() {
    let db = ShardedTestDb::create("sharded_slice").await.unwrap();
    let store = loaded(&db).await;
    // The node's slice function against PostgreSQL's own partition hash.
    let mut ids: Vec<i64> = (-5000..5000).collect();
    ids.extend([i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX]);
    ids.extend((0..5000).map(|_| rand::random::<i64>()));
    let node = common::client(&db.shard_urls[1]).await;
    let slices: Vec<i32> = node
        .query(
            "SELECT person_slice(id, 3) FROM unnest($1::int8[]) WITH ORDINALITY AS t(id, n) \
             ORDER BY n",
            &[&ids],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let wrong: i64 = common::client(&db.url)
        .await
        .query_one(
            "SELECT count(*) FROM unnest($1::int8[], $2::int4[]) AS t(id, r) \
             WHERE NOT satisfies_hash_partition('person'::regclass, 3, r, id)",
            &[&ids, &slices],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        wrong,
        0,
        "of {} keys, some sliced unlike the coordinator",
        ids.len()
    );

    // Node 1's rows moved by hand to a person held on node 0: every table refuses it.
    let theirs = *held_on(&db.shard_urls[0]).await["person"].first().unwrap();
    let mut tables = 0;
    for (table, column) in PERSON_KEYED {
        let sql = format!(
            "UPDATE {table} SET {column} = $1 \
             WHERE {column} = (SELECT min({column}) FROM {table})"
        );
        let held: i64 = node
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        if held == 0 {
            continue;
        }
        tables += 1;
        let refused = node
            .execute(&sql, &[&theirs])
            .await
            .expect_err(&format!("{table} on node 1 took person {theirs} of node 0"));
        assert_eq!(
            refused.as_db_error().and_then(|d| d.constraint()),
            Some(format!("{table}_person_slice").as_str()),
            "{table}: {refused}"
        );
    }
    assert!(tables >= 3, "node 1 held rows in {tables} tables only");
    drop(store);
    db.drop_now().await.unwrap();
}

/// On the three-node deployment too, a card revoked while its access waits for the person's
/// turn (taken on the coordinator) is refused once the turn comes, and nothing is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_revoked_while_its_access_waits_for_the_turn_is_refused() {
    let db = ShardedTestDb::create("sharded_revoked_wait").await.unwrap();
    let store = std::sync::Arc::new(loaded(&db).await);
    common::a_card_revoked_while_its_access_waits_is_refused(store, &db.url, 1, &serial(1)).await;
    db.drop_now().await.unwrap();
}
