#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What only the PostgreSQL store promises beyond the shared suite: the access log is chained
//! per person, so accesses to one person queue on that person's chain alone, and `verify`
//! walks every person's chain and finds an edit in any of them.

use myna_domain::access::ChainBreak;
use myna_domain::person::PersonId;
use myna_domain::summary::View;
use myna_store::PersonRecordSet;
use myna_store::testsuite::{accesses_at_once, request, sample_person};
use myna_store::{ChainReport, ProviderStore};
use myna_store_postgres::PgProviderStore;
use myna_store_postgres::testing::TestDb;
use std::sync::Arc;

mod common;

/// A fresh database on the project's server, holding the sample persons `ids`, each with the
/// card `card_of(id)`.
async fn store_holding(test: &str, ids: &[i64]) -> (TestDb, Arc<PgProviderStore>) {
    let db = TestDb::create(test).await.unwrap();
    let store = Arc::new(PgProviderStore::connect(&db.url).await.unwrap());
    let persons: Vec<PersonRecordSet> = ids
        .iter()
        .map(|&id| sample_person(id, &card_of(id)))
        .collect();
    store.load_persons(persons).await.unwrap();
    (db, store)
}

/// The card serial of sample person `id`.
fn card_of(id: i64) -> String {
    format!("01CC{id:08}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_person_has_a_chain_of_their_own_and_an_edit_anywhere_is_found() {
    let (db, store) = store_holding("partitions", &[501, 502]).await;
    // 12 accesses to each person at once: the same person's race for the next place.
    let mut places: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    let serial_of = |n: i64| format!("01CC0000050{}", 1 + n % 2);
    for g in accesses_at_once(&store, 24, View::Summary, serial_of).await {
        let g = g.unwrap();
        assert_eq!(
            g.position.partition, g.person.id.0,
            "the chain is the person's own"
        );
        places
            .entry(g.position.partition)
            .or_default()
            .push(g.position.seq);
    }
    for seqs in places.values_mut() {
        seqs.sort_unstable();
        assert_eq!(*seqs, (1..=12).collect::<Vec<i64>>());
    }
    assert_eq!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact {
            entries: 24,
            partitions: 2,
            head_hash: None
        }
    );
    assert_eq!(
        store
            .access_log_for(PersonId(501), 100)
            .await
            .unwrap()
            .len(),
        12
    );

    // The heads a checkpoint records, from the verifying walk: each person's last place, with
    // the hash stored there, and the hash at a place asked for.
    let walk = store
        .access_log_walk([(501, 5)].into_iter().collect())
        .await
        .unwrap();
    assert!(matches!(
        walk.report,
        ChainReport::Intact { entries: 24, .. }
    ));
    assert_eq!(
        walk.found.get(&501).copied(),
        store
            .access_log_hash(myna_store::ChainPosition {
                partition: 501,
                seq: 5
            })
            .await
            .unwrap()
    );
    let heads = walk.heads;
    assert_eq!(
        heads
            .iter()
            .map(|h| (h.partition, h.seq))
            .collect::<Vec<_>>(),
        vec![(501, 12), (502, 12)]
    );
    for h in &heads {
        let at = myna_store::ChainPosition {
            partition: h.partition,
            seq: h.seq,
        };
        assert_eq!(store.access_log_hash(at).await.unwrap(), Some(h.hash));
    }

    // Someone with database access edits one person's entry, then removes another's.
    let admin = common::client(&db.url).await;
    let edit = |sql: &'static str| {
        let admin = &admin;
        async move { admin.execute(sql, &[]).await.unwrap() }
    };
    edit("UPDATE access_log SET viewer_team = 'someone else' WHERE person_id = 502 AND seq = 7")
        .await;
    assert_eq!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Broken {
            verified: 18,
            first_break: ChainBreak::Content { seq: 7 },
            chain: Some(502),
            broken_chains: vec![502],
        }
    );
    edit(
        "UPDATE access_log SET viewer_team = (SELECT viewer_team FROM access_log \
         WHERE person_id = 502 AND seq = 6) WHERE person_id = 502 AND seq = 7",
    )
    .await;
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { entries: 24, .. }
    ));
    edit("DELETE FROM access_log WHERE person_id = 501 AND seq = 4").await;
    let ChainReport::Broken { first_break, .. } = store.verify_access_log().await.unwrap() else {
        panic!("a removed entry went unnoticed");
    };
    assert_eq!(
        first_break,
        ChainBreak::Sequence {
            seq: 5,
            expected: 4
        }
    );
    // Both persons' chains broken: the walk goes past the first and names both.
    edit("UPDATE access_log SET viewer_team = 'someone else' WHERE person_id = 502 AND seq = 2")
        .await;
    assert_eq!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Broken {
            verified: 3,
            first_break: ChainBreak::Sequence {
                seq: 5,
                expected: 4
            },
            chain: Some(501),
            broken_chains: vec![501, 502],
        }
    );
    drop(store);
    db.drop_now().await.unwrap();
}

/// An access's id is the crew's receipt and what a hospital's read points back to: changing it
/// in the table is found by `verify`, on a crew's access and on a hospital's read. An entry
/// written before ids were chained still verifies, but not after one with its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_access_id_is_found_and_an_entry_from_before_ids_were_chained_verifies() {
    let (db, store) = store_holding("access_id", &[508, 509]).await;
    let crew = store
        .access_records(request(&card_of(508), View::Summary, 1))
        .await
        .unwrap();
    store
        .access_records(request(&card_of(509), View::Summary, 1))
        .await
        .unwrap();
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { entries: 2, .. }
    ));

    // Person 509's entry `seq` as an older version wrote it: hashed without its id.
    let rehash_as_legacy = |seq: i64| {
        let (store, db) = (store.clone(), &db);
        async move {
            let (_, written) = store
                .access_log_for(PersonId(509), 10)
                .await
                .unwrap()
                .into_iter()
                .find(|(at, _)| at.seq == seq)
                .unwrap();
            let legacy = myna_domain::access::AccessEntry {
                access_id: None,
                ..written.entry.clone()
            };
            let legacy_hash = myna_domain::access::link_hash(seq, &legacy, &written.prev_hash);
            db.execute(&format!(
                "UPDATE access_log SET hash = decode('{}', 'hex') \
                 WHERE person_id = 509 AND seq = {seq}",
                hex::encode(legacy_hash)
            ))
            .await
            .unwrap();
            written.hash
        }
    };
    rehash_as_legacy(1).await;
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { entries: 2, .. }
    ));
    // The next access chains after it, with its id; an entry without one may not follow.
    store
        .access_records(request(&card_of(509), View::Summary, 2))
        .await
        .unwrap();
    store
        .access_records(request(&card_of(509), View::Summary, 3))
        .await
        .unwrap();
    let head = rehash_as_legacy(3).await;
    assert_eq!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Broken {
            verified: 3,
            first_break: ChainBreak::Content { seq: 3 },
            chain: Some(509),
            broken_chains: vec![509],
        }
    );
    db.execute(&format!(
        "UPDATE access_log SET hash = decode('{}', 'hex') WHERE person_id = 509 AND seq = 3",
        hex::encode(head)
    ))
    .await
    .unwrap();

    // A hospital's read of the crew's copy is logged with an id of its own, chained too.
    let read = store
        .record_hospital_read(myna_store::testsuite::hospital_read_report(
            &crew, "INC-1", 1,
        ))
        .await
        .unwrap();
    assert_ne!(read.access_id, crew.access_id);
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { entries: 5, .. }
    ));
    db.execute(&format!(
        "UPDATE access_log SET access_id = access_id + 1 WHERE person_id = 508 AND seq = {}",
        read.position.seq
    ))
    .await
    .unwrap();
    match store.verify_access_log().await.unwrap() {
        ChainReport::Broken {
            first_break, chain, ..
        } => {
            assert_eq!(first_break, ChainBreak::Content { seq: 2 });
            assert_eq!(chain, Some(508));
        }
        other => panic!("a hospital read's changed id went unnoticed: {other:?}"),
    }

    db.execute("UPDATE access_log SET access_id = access_id + 1 WHERE person_id = 508 AND seq = 1")
        .await
        .unwrap();
    match store.verify_access_log().await.unwrap() {
        ChainReport::Broken { first_break, .. } => {
            assert_eq!(first_break, ChainBreak::Content { seq: 1 })
        }
        other => panic!("a changed access id went unnoticed: {other:?}"),
    }
    drop(store);
    db.drop_now().await.unwrap();
}

/// An access waits for the person's turn at their chain while another transaction holds it,
/// and a revoked card is refused as revoked without waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_waits_for_the_persons_turn_and_a_revoked_card_does_not() {
    let (db, store) = store_holding("turns", &[503, 504]).await;
    store
        .revoke_serial("01CC00000504", "card reported lost")
        .await
        .unwrap();
    let mut admin = common::client(&db.url).await;
    let holder = admin.transaction().await.unwrap();
    for person in [503i64, 504] {
        holder
            .execute("SELECT pg_advisory_xact_lock($1)", &[&person])
            .await
            .unwrap();
    }

    let waiting = common::access_waiting_for_its_turn(&store, &db.url, "01CC00000503").await;

    match store
        .access_records(request("01CC00000504", View::Summary, 2))
        .await
    {
        Err(myna_store::StoreError::Revoked { serial, .. }) => assert_eq!(serial, "01CC00000504"),
        other => panic!("a revoked card waiting for the turn: {other:?}"),
    }

    holder.commit().await.unwrap();
    let granted = waiting.await.unwrap().unwrap();
    assert_eq!(granted.position.seq, 1);
    assert_eq!(granted.person.id, PersonId(503));
    drop((admin, store));
    db.drop_now().await.unwrap();
}

/// A card revoked while its access waits for the person's turn is refused once the turn
/// comes, and the refused access leaves no entry in the person's chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_revoked_while_its_access_waits_for_the_turn_is_refused() {
    let (db, store) = store_holding("revoked_wait", &[506]).await;
    common::a_card_revoked_while_its_access_waits_is_refused(store, &db.url, 506, "01CC00000506")
        .await;
    db.drop_now().await.unwrap();
}

/// A claims date the store cannot read is reported to the crew as unknown, as a missing one
/// is, and the access is served and logged; the operator's `dataset_info` names it as corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_claims_date_is_reported_as_unknown_and_the_access_served() {
    let (db, store) = store_holding("bad_claims_date", &[507]).await;
    db.execute(
        "INSERT INTO dataset_info (key, value) VALUES ('claims_through', '2026-02-30') \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .await
    .unwrap();
    let granted = store
        .access_records(request("01CC00000507", View::Summary, 1))
        .await
        .unwrap();
    assert_eq!(granted.claims_through, None);
    assert_eq!(granted.position.seq, 1);
    match store.dataset_info().await {
        Err(myna_store::StoreError::Corrupt(why)) => assert!(why.contains("2026-02-30"), "{why}"),
        other => panic!("dataset_info with an unreadable claims date: {other:?}"),
    }
    drop(store);
    db.drop_now().await.unwrap();
}

/// Settings a database or role may carry do not change what an access reads or where it
/// chains: numbers come back exact with `extra_float_digits` lowered (the view's records
/// travel as JSON text), and accesses to one person still queue for their turn with the
/// database's default isolation REPEATABLE READ (a snapshot from before the lock would read a
/// head already passed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_databases_own_settings_change_nothing_an_access_reads_or_chains() {
    let db = TestDb::create("settings").await.unwrap();
    db.execute(
        "DO $$ BEGIN \
         EXECUTE format('ALTER DATABASE %I SET extra_float_digits = 0', current_database()); \
         EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = ''repeatable read''', \
             current_database()); END $$",
    )
    .await
    .unwrap();
    let store = Arc::new(PgProviderStore::connect(&db.url).await.unwrap());
    let mut p = sample_person(505, "01CC00000505");
    p.records.health_checks[0].height_cm = 172.345_678_901_234_57;
    p.records.health_checks[0].weight_kg = 104.767_768_295_794_41;
    p.records.dispensings[0].daily_quantity = 0.1 + 0.2;
    store.load_persons(vec![p.clone()]).await.unwrap();

    let mut seqs = Vec::new();
    for g in accesses_at_once(&store, 16, View::Full, |_| "01CC00000505".into()).await {
        let g = g.expect("an access refused while others of the person ran");
        assert_eq!(g.records, p.records, "records read exactly");
        seqs.push(g.position.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=16).collect::<Vec<i64>>());
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { entries: 16, .. }
    ));
    drop(store);
    db.drop_now().await.unwrap();
}
