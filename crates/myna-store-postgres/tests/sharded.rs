#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What the several-node deployment promises beyond passing the shared suite (which
//! `conformance.rs` runs on it): the persons and their chains really are on the data nodes,
//! each person whole on one; an access needs only its person's node; an entry edited on a
//! data node fails `verify` on the coordinator; and sharding is refused where it would lose
//! data.

use myna_domain::access::ChainBreak;
use myna_domain::summary::View;
use myna_store::testsuite::{request, sample_person};
use myna_store::{ChainReport, ProviderStore, StoreError};
use myna_store_postgres::PgProviderStore;
use myna_store_postgres::sharded::{self, PERSON_KEYED};
use myna_store_postgres::testing::ShardedTestDb;
use std::collections::{BTreeMap, BTreeSet};

const PERSONS: i64 = 30;

fn serial(i: i64) -> String {
    format!("01DD{i:08X}")
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// The person ids each table holds on one data node, read there directly.
async fn held_on(url: &str) -> BTreeMap<&'static str, BTreeSet<i64>> {
    let c = client(url).await;
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
    let coordinator = client(&db.url).await;
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
    client(&format!("{}/postgres", &db.shard_urls[0][..cut]))
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
    let node = client(&db.shard_urls[2]).await;
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
    let mut tasks = Vec::new();
    for n in 0..32i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.access_records(request(&serial(5), View::Summary, n))
                .await
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap().position.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=32).collect::<Vec<i64>>());
    drop(store);
    db.drop_now().await.unwrap();
}
