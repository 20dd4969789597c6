//! Scenarios run on one node (`partitions.rs`) and on the three-node deployment (`sharded.rs`)
//! alike.

use myna_domain::summary::View;
use myna_store::testsuite::request;
use myna_store::{AccessGranted, ChainReport, ProviderStore, StoreError};
use myna_store_postgres::PgProviderStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// An access by `serial`'s card, started while another transaction holds its person's turn,
/// returned once the database (at `url`, where the turn is taken) shows it waiting for that
/// advisory lock.
pub async fn access_waiting_for_its_turn(
    store: &Arc<PgProviderStore>,
    url: &str,
    serial: &str,
) -> tokio::task::JoinHandle<Result<AccessGranted, StoreError>> {
    let (s, serial) = (store.clone(), serial.to_owned());
    let access =
        tokio::spawn(async move { s.access_records(request(&serial, View::Summary, 1)).await });
    let watcher = client(url).await;
    // Within the server's lock timeout (5 s), after which the access would give up.
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            !access.is_finished() && Instant::now() < deadline,
            "the access did not wait for its turn"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    access
}

/// A card revoked while its access waits for the person's turn is refused once the turn
/// comes, and the refused access leaves no entry in the log. `person` holds `serial`'s card
/// and has no entries yet.
pub async fn a_card_revoked_while_its_access_waits_is_refused(
    store: Arc<PgProviderStore>,
    url: &str,
    person: i64,
    serial: &str,
) {
    let mut admin = client(url).await;
    let holder = admin.transaction().await.unwrap();
    holder
        .execute("SELECT pg_advisory_xact_lock($1)", &[&person])
        .await
        .unwrap();
    let waiting = access_waiting_for_its_turn(&store, url, serial).await;
    store
        .revoke_serial(serial, "card reported stolen")
        .await
        .unwrap();
    holder.commit().await.unwrap();

    match waiting.await.unwrap() {
        Err(StoreError::Revoked {
            serial: refused, ..
        }) => assert_eq!(refused, serial),
        other => panic!("a card revoked during the wait was served: {other:?}"),
    }
    let logged: i64 = admin
        .query_one(
            "SELECT count(*) FROM access_log WHERE person_id = $1",
            &[&person],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 0);
    assert!(matches!(
        store.verify_access_log().await.unwrap(),
        ChainReport::Intact { .. }
    ));
}
