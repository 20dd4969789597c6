#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What only the SQLite file can show: the log and the view chain survive a reopen, a view
//! record rewritten behind the store's back breaks the chain, and a file written before consent
//! was bound to a patient is refused. The behaviour every backend shares is in
//! `myna_store::ems_testsuite` (run by `conformance.rs`).

use myna_domain::incident::Phase;
use myna_store::ems::EmsStore;
use myna_store::ems_testsuite::{
    T0, assigned_incident, crew_event, face, patient, phase, small, team, view_record,
};
use myna_store::{ChainReport, StoreError};
use myna_store_sqlite::EmsSqlite;
use std::path::Path;

fn open(path: &Path) -> EmsSqlite {
    EmsSqlite::open(path).unwrap()
}

#[tokio::test]
async fn events_and_views_survive_a_reopen_and_a_tampered_view_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ems.db");
    let (bureau, id, before) = {
        let store = open(&path);
        let bureau = store.seed_bureau(small("a-fd")).await.unwrap();
        let t = team(&store, bureau, "救急1").await;
        let id = assigned_incident(&store, bureau, "救急1").await;
        store
            .append(
                bureau,
                id,
                crew_event(t, phase(Phase::Arrival), "p1", Some(T0 + 10)),
                T0 + 10,
            )
            .await
            .unwrap();
        store
            .append(
                bureau,
                id,
                crew_event(t, face(&patient(1)), "face", Some(T0 + 15)),
                T0 + 20,
            )
            .await
            .unwrap();
        for i in 1..=3 {
            assert_eq!(store.record_view(view_record(i, 1)).await.unwrap().seq, i);
        }
        let before = store.incident(bureau, id).await.unwrap().unwrap();
        (bureau, id, before)
    };

    let store = open(&path);
    let after = store.incident(bureau, id).await.unwrap().unwrap();
    assert_eq!(after, before, "the log reads back exactly as committed");
    assert_eq!(after.log.events.len(), 4);
    assert_eq!(
        after
            .log
            .by_key("face")
            .unwrap()
            .device_at
            .unwrap()
            .timestamp_millis(),
        T0 + 15
    );
    assert_eq!(
        store.bureau("a-fd").await.unwrap().unwrap().patient_secret,
        small("a-fd").patient_secret,
        "the patient secret survives the reopen"
    );
    let views = store.view_records("a-fd", 10).await.unwrap();
    assert_eq!(
        views.iter().map(|v| v.seq).collect::<Vec<_>>(),
        vec![3, 2, 1],
        "newest first"
    );
    assert_eq!(views[2].entry, view_record(1, 1));
    assert!(store.view_records("b-fd", 10).await.unwrap().is_empty());

    // The chain continues across the reopen.
    assert_eq!(store.record_view(view_record(4, 1)).await.unwrap().seq, 4);
    match store.verify_view_log().await.unwrap() {
        ChainReport::Intact {
            entries, head_hash, ..
        } => {
            assert_eq!(entries, 4);
            assert!(head_hash.is_some());
        }
        broken => panic!("an untouched log must verify: {broken:?}"),
    }
    drop(store);

    // Rewrite entry 2 behind the store's back: still valid JSON, a different crew member.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let entry: String = conn
            .query_row("SELECT entry FROM view_log WHERE seq = 2", [], |r| r.get(0))
            .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&entry).unwrap();
        assert_eq!(v["crew_member"], "crew01");
        v["crew_member"] = "crew02".into();
        let changed = conn
            .execute(
                "UPDATE view_log SET entry = ?1 WHERE seq = 2",
                [v.to_string()],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    let store = open(&path);
    match store.verify_view_log().await.unwrap() {
        ChainReport::Broken {
            verified,
            first_break,
            ..
        } => {
            assert_eq!(verified, 1, "entry 1 still verifies");
            assert_eq!(first_break.seq(), 2);
        }
        intact => panic!("a rewritten entry went unnoticed: {intact:?}"),
    }
}

/// The provider credential an older ems kept in clear in its database.
const OLD_TOKEN: &str = "old-fd.c0ffee0123456789abcdef0123456789abcdef";

/// A file as the first ems release left it: schema 1 only, applied by refinery itself (so its
/// history row and checksum are the real ones), with one bureau.
fn v1_file(path: &Path) -> rusqlite::Connection {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let v1 =
        refinery::Migration::unapplied("V1__ems", include_str!("../migrations_ems/V1__ems.sql"))
            .unwrap();
    refinery::Runner::new(&[v1]).run(&mut conn).unwrap();
    conn.execute(
        "INSERT INTO bureau (id, code, name, provider_url, provider_token, view_window_s) \
         VALUES (1, 'old-fd', 'old', 'http://127.0.0.1:9', ?1, 3600)",
        [OLD_TOKEN],
    )
    .unwrap();
    conn
}

fn schema_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn a_v1_file_that_holds_events_is_refused_as_predating_per_patient_consent() {
    let dir = tempfile::tempdir().unwrap();

    // Control: a schema-1 file nobody used yet is migrated, and its bureau gets a secret.
    let unused = dir.path().join("unused.db");
    {
        // An account with a live session: the rebuild of the account table (schema 3) keeps
        // both, and the foreign keys still hold.
        let conn = v1_file(&unused);
        conn.execute_batch(
            "INSERT INTO account (id, bureau_id, login, display_name, role, password_hash) \
             VALUES (5, 1, 'dispatcher', '指令員', 'dispatcher', 'h'); \
             INSERT INTO session (token_hash, account_id, expires_ms) VALUES ('tok', 5, 9e15);",
        )
        .unwrap();
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&unused, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let store = EmsSqlite::open(&unused).unwrap();
    let kept = store.session("tok", 0).await.unwrap().unwrap();
    assert_eq!(kept.account.login, "dispatcher");
    assert_eq!(kept.account.hospital_id, None);
    let old = store.bureau("old-fd").await.unwrap();
    assert!(
        old.is_some(),
        "an unused schema-1 file migrates, and its bureau reads with a patient secret"
    );
    assert_eq!(
        old.unwrap().provider_credential_file,
        "",
        "the credential kept in clear is dropped; the operator names its file"
    );
    drop(store);
    assert_eq!(schema_version(&unused), 10, "every migration ran");
    let columns: String = rusqlite::Connection::open(&unused)
        .unwrap()
        .query_row(
            "SELECT group_concat(name) FROM pragma_table_info('bureau')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!columns.contains("provider_token"), "{columns}");
    for suffix in ["", "-wal"] {
        let name = format!("{}{suffix}", unused.display());
        let bytes = std::fs::read(&name).unwrap_or_default();
        assert!(
            !bytes
                .windows(OLD_TOKEN.len())
                .any(|w| w == OLD_TOKEN.as_bytes()),
            "{name} still holds the old credential's bytes"
        );
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&unused).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "an older file readable by others is narrowed");
    }

    // A schema-1 file with an incident whose face check names no card.
    let used = dir.path().join("used.db");
    {
        let conn = v1_file(&used);
        conn.execute(
            "INSERT INTO incident (id, bureau_id, number, created_ms) \
             VALUES (1, 1, '20260921-0001', ?1)",
            [T0],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO incident_event (incident_id, seq, at_ms, device_ms, idempotency_key, \
             actor, kind) VALUES (1, 1, ?1, NULL, 'face', \
             '{\"role\":\"crew\",\"account\":1,\"terminal\":1}', '{\"kind\":\"identity_confirmed\"}')",
            [T0],
        )
        .unwrap();
    }
    let refused = EmsSqlite::open(&used).err();
    let Some(StoreError::Unavailable(message)) = refused else {
        panic!("a schema-1 file with events must be refused, got {refused:?}");
    };
    assert!(
        message.contains("consents name no patient"),
        "the refusal says the file predates per-patient consent: {message}"
    );
    assert!(
        message.contains(&used.display().to_string()) && message.contains("new database file"),
        "the refusal names the file and what to do: {message}"
    );
    assert_eq!(
        schema_version(&used),
        1,
        "the refused file was not migrated"
    );
    let events: i64 = rusqlite::Connection::open(&used)
        .unwrap()
        .query_row("SELECT count(*) FROM incident_event", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 1, "the refused file's history is kept as it was");
}

/// Owner-only from the start: the database file and its WAL, for both stores.
#[tokio::test]
async fn new_database_files_and_their_wal_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let ems = dir.path().join("ems.db");
    let store = open(&ems);
    store
        .seed_bureau(myna_store::ems_testsuite::small("a-fd"))
        .await
        .unwrap();
    let provider = dir.path().join("provider.db");
    let p = myna_store_sqlite::SqliteStore::open(&provider).unwrap();
    for path in [&ems, &provider] {
        assert_eq!(mode(path), 0o600, "{}", path.display());
        let wal = path.with_extension("db-wal");
        assert_eq!(mode(&wal), 0o600, "{}", wal.display());
    }
    drop((store, p));
}
