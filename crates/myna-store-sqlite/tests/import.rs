#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `import` runs as a process of its own beside a serving provider on the same file.

use myna_domain::summary::View;
use myna_store::ProviderStore;
use myna_store::testsuite::{import_batch_of, request, sample_person};
use myna_store_sqlite::SqliteStore;

/// The serving store caches institution and drug names; what another process imported since
/// is read by its names, not shown as placeholders.
#[tokio::test]
async fn a_serving_store_names_what_an_import_in_another_process_added() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("provider.db");
    let serving = SqliteStore::open(&path).unwrap();
    // Another connection to the file, as `import` in another process holds.
    let importing = SqliteStore::open(&path).unwrap();
    let p = sample_person(41, "01AD00000041");
    importing
        .import_batch(import_batch_of("other", 1, 1, std::slice::from_ref(&p)))
        .await
        .unwrap();
    let granted = serving
        .access_records(request("01AD00000041", View::Full, 1))
        .await
        .unwrap();
    assert_eq!(
        granted.records, p.records,
        "institutions and drugs by their names"
    );
}
