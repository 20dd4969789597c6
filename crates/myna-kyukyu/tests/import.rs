#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `import` as an operator runs it: a claims file that `gen --claims-out` wrote goes into a
//! fresh database (SQLite and PostgreSQL) and reads back as `gen` loads the same population;
//! a second run changes nothing; a run killed part-way resumes; a bad line is named and its
//! batch applies nothing.

mod common;

use common::refused_with;
use myna_domain::summary::View;
use myna_store::ProviderStore;
use myna_store::testsuite::request;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const SEED: u64 = 7;
const AS_OF: &str = "2026-11-24";

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_myna-kyukyu"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `gen` of `persons` of the one population (seed and date), into what `out` names.
fn gen_population(persons: u64, out: &[&str]) {
    let (persons, seed) = (persons.to_string(), SEED.to_string());
    let mut args = vec![
        "gen",
        "--persons",
        &persons,
        "--seed",
        &seed,
        "--as-of",
        AS_OF,
    ];
    args.extend_from_slice(out);
    ok(run(&args));
}

fn claims_file(dir: &Path, persons: u64, batch: u64) -> String {
    let file = dir.join(format!("claims-{persons}.ndjson"));
    let batch = batch.to_string();
    gen_population(
        persons,
        &[
            "--claims-out",
            file.to_str().unwrap(),
            "--batch-persons",
            &batch,
        ],
    );
    file.to_str().unwrap().to_owned()
}

fn import(db: &str, file: &str) -> Output {
    run(&["import", "--quiet", "--db", db, file])
}

/// The same persons read through the store from a `gen`-loaded database and an imported one.
async fn same_people<A: ProviderStore, B: ProviderStore>(loaded: &A, imported: &B, persons: u64) {
    for i in (0..persons).step_by(37) {
        let serial = myna_synth::cert_serial_for(SEED, i);
        let a = loaded
            .access_records(request(&serial, View::Full, 1))
            .await
            .unwrap();
        let b = imported
            .access_records(request(&serial, View::Full, 1))
            .await
            .unwrap();
        assert_eq!(a.person, b.person, "person {i}");
        assert_eq!(a.records, b.records, "person {i}'s records");
    }
}

fn loaded_db(dir: &Path, persons: u64) -> std::path::PathBuf {
    let db = dir.join("loaded.db");
    gen_population(persons, &["--db", db.to_str().unwrap()]);
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_file_reads_back_as_the_generated_population_and_a_rerun_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = claims_file(tmp.path(), 300, 100);
    let db = tmp.path().join("imported.db");
    let db_s = db.to_str().unwrap();
    let first = ok(import(db_s, &file));
    assert!(first.contains("imported 3 batches"), "{first}");
    let again = ok(import(db_s, &file));
    assert!(
        again.contains("imported 0 batches") && again.contains("3 batches were imported before"),
        "{again}"
    );
    let loaded = myna_store_sqlite::SqliteStore::open(&loaded_db(tmp.path(), 300)).unwrap();
    let imported = myna_store_sqlite::SqliteStore::open(&db).unwrap();
    same_people(&loaded, &imported, 300).await;

    // The same file into PostgreSQL, twice.
    let pg = myna_store_postgres::testing::TestDb::create("import_cli")
        .await
        .unwrap();
    assert!(ok(import(&pg.url, &file)).contains("imported 3 batches"));
    assert!(ok(import(&pg.url, &file)).contains("3 batches were imported before"));
    let on_pg = myna_store_postgres::PgProviderStore::connect(&pg.url)
        .await
        .unwrap();
    same_people(&loaded, &on_pg, 300).await;
    drop(on_pg);
    // Synthetic persons are not mixed into imported ones.
    let o = run(&["gen", "--db", &pg.url, "--persons", "10"]);
    // gen does not load over an imported population.
    refused_with(&o, "already holds persons (imported)");
    pg.drop_now().await.unwrap();

    // A mistyped file name makes no database.
    let fresh = tmp.path().join("fresh.db");
    let o = import(fresh.to_str().unwrap(), "no-such-file.ndjson");
    refused_with(&o, "opening no-such-file.ndjson");
    assert!(!fresh.exists(), "a database was made for a missing file");
}

/// Two imports started together on a new database (a SQLite file, a PostgreSQL database): both
/// bring the schema up without failing on each other's tables, and each batch is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_imports_started_together_on_a_new_database_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = claims_file(tmp.path(), 300, 100);
    let pg = myna_store_postgres::testing::TestDb::create("import_together")
        .await
        .unwrap();
    let sqlite = tmp.path().join("together.db");
    for db in [sqlite.to_str().unwrap(), pg.url.as_str()] {
        let started: Vec<_> = (0..2)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_myna-kyukyu"))
                    .args(["import", "--quiet", "--db", db, &file])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut applied = 0;
        for child in started {
            let out = ok(child.wait_with_output().unwrap());
            let n: u64 = out
                .split("imported ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{out}"));
            applied += n;
        }
        assert_eq!(applied, 3, "{db}: every batch applied once between the two");
    }
    pg.drop_now().await.unwrap();
}

/// Killed (SIGKILL) while importing, then run again: every batch ends up applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_part_way_resumes_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let file = claims_file(tmp.path(), 2_000, 50);
    let db = tmp.path().join("imported.db");
    let db_s = db.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_myna-kyukyu"))
        .args(["import", "--quiet", "--db", db_s, &file])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Some batches in: the store has a row per applied batch.
    let applied = |db: &Path| -> i64 {
        let Ok(conn) =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            return 0;
        };
        conn.query_row("SELECT count(*) FROM import_batch", [], |r| r.get(0))
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while applied(&db) < 5 && std::time::Instant::now() < deadline {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = applied(&db);
    assert!(
        (5..40).contains(&before),
        "killed after {before} of 40 batches"
    );

    let rerun = ok(import(db_s, &file));
    assert!(
        rerun.contains(&format!("imported {} batches", 40 - before))
            && rerun.contains(&format!("{before} batches were imported before")),
        "{rerun}"
    );
    assert_eq!(applied(&db), 40);
    let loaded = myna_store_sqlite::SqliteStore::open(&loaded_db(tmp.path(), 2_000)).unwrap();
    let imported = myna_store_sqlite::SqliteStore::open(&db).unwrap();
    same_people(&loaded, &imported, 2_000).await;
}

/// A bad line in the second batch: the import stops naming it, the first batch is applied
/// and the second is not; mended, the file imports from there.
#[test]
fn a_bad_line_is_named_and_its_batch_applies_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = claims_file(tmp.path(), 20, 10);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let second_batch = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"type\":\"batch\""))
        .nth(1)
        .unwrap()
        .0;
    // A dispensing of the second batch with an impossible supply.
    let (bad, original) = lines
        .iter()
        .enumerate()
        .skip(second_batch)
        .find(|(_, l)| l.contains("\"type\":\"dispensing\""))
        .unwrap();
    let broken = original.replace(
        &format!(
            "\"days\":{}",
            original
                .split("\"days\":")
                .nth(1)
                .unwrap()
                .split([',', '}'])
                .next()
                .unwrap()
        ),
        "\"days\":0",
    );
    assert_ne!(&broken, original);
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[bad] = broken;
    let bad_file = tmp.path().join("bad.ndjson");
    std::fs::write(&bad_file, edited.join("\n") + "\n").unwrap();

    let db = tmp.path().join("imported.db");
    let db_s = db.to_str().unwrap();
    let o = import(db_s, bad_file.to_str().unwrap());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("line {}:", bad + 1)), "{err}");

    let conn = rusqlite::Connection::open(&db).unwrap();
    let batches: i64 = conn
        .query_row("SELECT count(*) FROM import_batch", [], |r| r.get(0))
        .unwrap();
    let persons: i64 = conn
        .query_row("SELECT count(*) FROM person", [], |r| r.get(0))
        .unwrap();
    assert_eq!((batches, persons), (1, 10), "the first batch only");
    drop(conn);

    let mended = ok(import(db_s, &file));
    assert!(
        mended.contains("imported 1 batches") && mended.contains("1 batches were imported before"),
        "{mended}"
    );
}
