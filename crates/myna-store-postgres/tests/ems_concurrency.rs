#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What the shared suite runs one call at a time, here at once: each read-then-write of the
//! PostgreSQL ems store stays correct when callers race (row locks, and the unique keys as the
//! backstop of a transaction that runs again).

use myna_store_postgres::testing::TestDb;

use myna_domain::incident::ViewRecord;
use myna_store::ChainReport;
use myna_store::StoreError;
use myna_store::ems::{Appended, EmsStore, EnrollmentLimits, Filing, NewEnrollment, NewInvite};
use myna_store::ems_testsuite::{
    T0, assigned_incident, created, crew_event, dispatcher_event, face, patient, small, team,
    view_record,
};
use myna_store_postgres::PgEmsStore;
use std::collections::BTreeSet;
use std::sync::Arc;

async fn store(test: &str) -> (TestDb, Arc<PgEmsStore>) {
    let db = TestDb::create(test).await.unwrap();
    let store = Arc::new(PgEmsStore::connect(&db.url).await.unwrap());
    (db, store)
}

async fn all<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_appends_to_one_incident_each_get_their_own_place_and_a_resend_is_one_event() {
    let (db, store) = store("racing_appends").await;
    let b = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&*store, b, "救急1").await;
    let id = assigned_incident(&*store, b, "救急1").await;
    let mut tasks = Vec::new();
    for n in 1..=12u32 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.append(
                b,
                id,
                crew_event(t, face(&patient(n)), &format!("face-{n}"), None),
                T0 + 10,
            )
            .await
            .unwrap()
        }));
    }
    // The same tap sent five times at once: one event.
    for _ in 0..5 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.append(
                b,
                id,
                crew_event(t, face(&patient(99)), "resent", None),
                T0 + 10,
            )
            .await
            .unwrap()
        }));
    }
    let answers = all(tasks).await;
    let new = answers
        .iter()
        .filter(|a| matches!(a, Appended::New(_)))
        .count();
    assert_eq!(new, 13, "12 faces and the resent tap once");
    let log = store.incident(b, id).await.unwrap().unwrap().log;
    assert_eq!(
        log.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=15).collect::<Vec<u32>>(),
        "created, assigned and 13 taps, gapless"
    );
    let resent = log.by_key("resent").unwrap();
    assert!(
        answers
            .iter()
            .filter(|a| a.event().idempotency_key == "resent")
            .all(|a| a.event() == resent)
    );
    db.drop_now().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_created_at_once_get_the_days_numbers_in_turn_per_bureau() {
    let (db, store) = store("racing_numbers").await;
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..16 {
        let s = store.clone();
        let bureau = if n % 2 == 0 { a } else { b };
        tasks.push(tokio::spawn(async move {
            let r = s
                .create_incident(bureau, dispatcher_event(created(), "create"), T0)
                .await
                .unwrap();
            (bureau, r.number)
        }));
    }
    let made = all(tasks).await;
    for bureau in [a, b] {
        let numbers: BTreeSet<String> = made
            .iter()
            .filter(|(x, _)| *x == bureau)
            .map(|(_, n)| n.clone())
            .collect();
        let expected: BTreeSet<String> = (1..=8).map(|i| format!("20260921-{i:04}")).collect();
        assert_eq!(numbers, expected, "bureau {bureau}");
    }
    db.drop_now().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_recorded_at_once_form_one_gapless_chain_per_bureau() {
    let (db, store) = store("racing_views").await;
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let b = store.seed_bureau(small("b-fd")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 1..=20i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let record = if i % 3 == 0 {
                ViewRecord {
                    bureau: "b-fd".into(),
                    ..view_record(i, 1)
                }
            } else {
                view_record(i, 1)
            };
            s.record_view(record).await.unwrap()
        }));
    }
    let placed = all(tasks).await;
    let seqs = |bureau: i64| -> Vec<i64> {
        let mut s: Vec<i64> = placed
            .iter()
            .filter(|p| p.partition == bureau)
            .map(|p| p.seq)
            .collect();
        s.sort_unstable();
        s
    };
    assert_eq!(seqs(a), (1..=14).collect::<Vec<i64>>(), "a-fd's own chain");
    assert_eq!(seqs(b), (1..=6).collect::<Vec<i64>>(), "b-fd's own chain");
    assert_eq!(
        store.verify_view_log().await.unwrap(),
        ChainReport::Intact {
            entries: 20,
            partitions: 2,
            head_hash: None
        }
    );
    // The heads a checkpoint records: each bureau's last place, with the hash stored there.
    let heads = store.view_log_walk(Default::default()).await.unwrap().heads;
    assert_eq!(
        heads
            .iter()
            .map(|h| (h.partition, h.seq))
            .collect::<Vec<_>>(),
        {
            let mut want = vec![(a, 14), (b, 6)];
            want.sort_unstable();
            want
        }
    );
    for h in &heads {
        let at = myna_store::ChainPosition {
            partition: h.partition,
            seq: h.seq,
        };
        assert_eq!(store.view_log_hash(at).await.unwrap(), Some(h.hash));
    }
    // A view of a bureau this database does not hold is refused, and changes nothing.
    let stranger = ViewRecord {
        bureau: "z-fd".into(),
        ..view_record(1, 1)
    };
    assert_eq!(
        store.record_view(stranger).await,
        Err(StoreError::UnknownOrganisation("z-fd".into()))
    );

    let (admin, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let cut = |sql: String| {
        let admin = &admin;
        async move { admin.batch_execute(&sql).await.unwrap() }
    };
    let broken = |r: ChainReport| match r {
        ChainReport::Broken { first_break, .. } => first_break,
        intact => panic!("tampering went unseen: {intact:?}"),
    };
    // A head set back one entry, or given another hash: the chain no longer ends at it.
    cut(format!(
        "UPDATE view_log_head SET seq = seq - 1 WHERE bureau_id = {a}"
    ))
    .await;
    assert!(matches!(
        broken(store.verify_view_log().await.unwrap()),
        myna_domain::access::ChainBreak::Rewritten { seq: 14 }
    ));
    cut(format!(
        "UPDATE view_log_head SET seq = seq + 1, hash = decode(repeat('00', 32), 'hex') \
         WHERE bureau_id = {a}"
    ))
    .await;
    assert!(matches!(
        broken(store.verify_view_log().await.unwrap()),
        myna_domain::access::ChainBreak::Rewritten { seq: 14 }
    ));
    cut(format!(
        "UPDATE view_log_head h SET hash = v.hash FROM view_log v \
         WHERE v.bureau_id = h.bureau_id AND v.seq = h.seq AND h.bureau_id = {a}"
    ))
    .await;
    assert!(matches!(
        store.verify_view_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));
    // A whole chain moved, with its head, to a bureau with no views: its entries name b-fd.
    let c = store.seed_bureau(small("c-fd")).await.unwrap();
    let swap = |from: i64, to: i64| {
        format!(
            "UPDATE view_log SET bureau_id = {to} WHERE bureau_id = {from}; \
             UPDATE view_log_head t SET seq = f.seq, hash = f.hash FROM view_log_head f \
             WHERE t.bureau_id = {to} AND f.bureau_id = {from}; \
             UPDATE view_log_head SET seq = 0, hash = NULL WHERE bureau_id = {from}"
        )
    };
    cut(swap(b, c)).await;
    assert!(matches!(
        broken(store.verify_view_log().await.unwrap()),
        myna_domain::access::ChainBreak::Unreadable { seq: 1, .. }
    ));
    assert!(store.view_records("c-fd", 10).await.unwrap().len() == 6);
    cut(swap(c, b)).await;
    assert!(matches!(
        store.verify_view_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));

    // The newest entries of one bureau cut: its head row remembers them.
    cut(format!(
        "DELETE FROM view_log WHERE bureau_id = {b} AND seq > 4"
    ))
    .await;
    assert!(matches!(
        store.verify_view_log().await.unwrap(),
        ChainReport::Broken {
            first_break: myna_domain::access::ChainBreak::Truncated { seq: 6 },
            ..
        }
    ));
    // Every entry of that bureau cut: its head still remembers six.
    cut(format!("DELETE FROM view_log WHERE bureau_id = {b}")).await;
    assert!(matches!(
        store.verify_view_log().await.unwrap(),
        ChainReport::Broken {
            first_break: myna_domain::access::ChainBreak::Truncated { seq: 6 },
            ..
        }
    ));
    // The other bureau's newest entries cut together with its head row: refused as corrupt,
    // not verified as a shorter chain.
    cut(format!(
        "DELETE FROM view_log WHERE bureau_id = {a} AND seq > 11; \
         DELETE FROM view_log_head WHERE bureau_id = {a}"
    ))
    .await;
    assert!(matches!(
        store.verify_view_log().await,
        Err(StoreError::Corrupt(_))
    ));
    db.drop_now().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bureau_seeded_at_once_twice_exists_once() {
    let (db, store) = store("racing_seeds").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(
            async move { s.seed_bureau(small("a-fd")).await },
        ));
    }
    let results = all(tasks).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| *r == Err(StoreError::OrganisationExists("a-fd".into())))
    );
    assert_eq!(store.bureaus().await.unwrap().len(), 1);
    db.drop_now().await.unwrap();
}

fn request(secret: &str, poll: &str) -> NewEnrollment {
    NewEnrollment {
        invite_hash: secret.into(),
        label: poll.into(),
        code: "1234-5678".into(),
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----".into(),
        poll_hash: poll.into(),
        requested_from: "192.0.2.7".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_enrollments_use_an_invitation_once_and_keep_the_cap() {
    let (db, store) = store("racing_enrollments").await;
    let a = store.seed_bureau(small("a-fd")).await.unwrap();
    let t = team(&*store, a, "救急1").await;
    for i in 0..7 {
        store
            .create_invite(
                a,
                NewInvite {
                    team: t,
                    secret_hash: format!("inv-{i}"),
                    expires_ms: T0 + 1_000_000,
                    created_by: "admin".into(),
                },
                T0,
            )
            .await
            .unwrap()
            .unwrap();
    }
    let limits = EnrollmentLimits {
        max_pending: 3,
        pending_for_ms: 1_000_000,
    };
    // Five tablets with one invitation.
    let mut tasks = Vec::new();
    for n in 0..5 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.request_enrollment(a, request("inv-0", &format!("same-{n}")), limits, T0 + 1)
                .await
                .unwrap()
        }));
    }
    let filed = all(tasks)
        .await
        .into_iter()
        .filter(|f| matches!(f, Filing::Filed(_)))
        .count();
    assert_eq!(filed, 1, "one invitation files one request");
    // Six invitations at once against a cap of 3, one already pending.
    let mut tasks = Vec::new();
    for i in 1..7 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.request_enrollment(
                a,
                request(&format!("inv-{i}"), &format!("p-{i}")),
                limits,
                T0 + 2,
            )
            .await
            .unwrap()
        }));
    }
    let answers = all(tasks).await;
    assert_eq!(
        answers
            .iter()
            .filter(|f| matches!(f, Filing::Filed(_)))
            .count(),
        2
    );
    assert_eq!(
        answers
            .iter()
            .filter(|f| **f == Filing::TooManyPending)
            .count(),
        4
    );
    assert_eq!(store.enrollments(a, true).await.unwrap().len(), 3);
    assert_eq!(store.open_invites(a, T0 + 3).await.unwrap().len(), 4);
    db.drop_now().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_and_ems_share_one_database() {
    use myna_store::ProviderStore;
    let (db, ems) = store("shared_database").await;
    let provider = myna_store_postgres::PgProviderStore::connect(&db.url)
        .await
        .unwrap();
    // Each keeps its own history: connecting again migrates nothing twice.
    let ems = {
        drop(ems);
        PgEmsStore::connect(&db.url).await.unwrap()
    };
    ems.seed_bureau(small("a-fd")).await.unwrap();
    assert!(provider.dataset_info().await.is_ok());
    db.drop_now().await.unwrap();
}

/// Two stores on one database, as two ems processes hold it: the feed says when it listens,
/// then a change one store publishes (an incident, a revoked terminal) reaches the other's
/// feed with its origin, so that process can tell its own push streams. (The ems processes
/// themselves are tested in myna-kyukyu's `tests/processes.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_published_by_one_store_reaches_another_on_the_same_database() {
    use myna_store::ems::{ChangeNote, ChangeSink, Changed, Feed};
    let db = TestDb::create("change_feed").await.unwrap();
    let desk_side = PgEmsStore::connect(&db.url).await.unwrap();
    let tablet_side = Arc::new(PgEmsStore::connect(&db.url).await.unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let deliver: ChangeSink = Arc::new(move |feed| {
        let _ = tx.send(feed);
    });
    let follower = {
        let store = tablet_side.clone();
        tokio::spawn(async move { store.follow_changes(deliver).await })
    };
    let wait = std::time::Duration::from_secs(10);
    let first = tokio::time::timeout(wait, rx.recv())
        .await
        .expect("the feed never listened");
    assert_eq!(first, Some(Feed::Listening));
    for what in [
        Changed::Incident {
            incident: 42,
            teams: vec![3, 5],
        },
        Changed::TerminalRevoked(9),
    ] {
        let note = ChangeNote {
            origin: 7,
            bureau: 11,
            what,
        };
        desk_side.publish_change(note.clone()).await;
        let received = tokio::time::timeout(wait, rx.recv())
            .await
            .expect("no change reached the other store in 10 s");
        assert_eq!(received, Some(Feed::Note(note)));
    }
    follower.abort();
    db.drop_now().await.unwrap();
}
