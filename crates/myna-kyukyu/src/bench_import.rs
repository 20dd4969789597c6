//! `bench import`: the claims import's rate on SQLite and PostgreSQL, each against the engine's
//! own bulk insert of the same rows: prepared inserts in one transaction (SQLite) and binary
//! `COPY` (PostgreSQL), into tables with no key or index. The file is what `gen --claims-out`
//! writes; reading it alone is timed too, since the import parses while it writes. A
//! benchmark: it prints numbers and never fails on one (docs/benchmarks.md).

use anyhow::{Context, Result};
use myna_claims::BatchReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ImportBenchArgs {
    /// Synthetic persons in the file (about 92 lines each).
    #[arg(long, default_value_t = 10_000)]
    pub persons: u64,
    /// Persons per batch.
    #[arg(long, default_value_t = 1_000)]
    pub batch_persons: u64,
    /// Also PostgreSQL: fresh databases on the project's server (`scripts/postgres`, or the
    /// one `MYNA_PG_URL` names), dropped afterwards.
    #[arg(long)]
    pub postgres: bool,
    /// Work directory; emptied at the start of each run.
    #[arg(long, default_value = "bench-data/import")]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

struct Row {
    engine: &'static str,
    import: (u64, Duration),
    baseline: (u64, Duration),
}

fn rate((n, d): (u64, Duration)) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Every batch of `file`, parsed: for the baselines, which time only their writes.
fn batches(
    file: &Path,
) -> Result<impl FnMut() -> Option<Result<myna_store::import::ImportBatch, String>>> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut reader = BatchReader::new(std::io::BufReader::with_capacity(1 << 20, f));
    Ok(move || reader.next_batch().map_err(|e| e.to_string()).transpose())
}

pub async fn run(args: ImportBenchArgs) -> Result<ExitCode> {
    let dir = &args.data_dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let as_of = myna_provider::japan_date(chrono::Utc::now());
    let file = dir.join("claims.ndjson");
    let t = Instant::now();
    let lines =
        crate::generate::emit_claims(&file, args.persons, args.seed, as_of, args.batch_persons)?;
    let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "bench import: {cpus} CPUs; {} persons, {lines} lines, {:.1} MiB written in {:.1} s",
        args.persons,
        bytes as f64 / 1_048_576.0,
        t.elapsed().as_secs_f64()
    );

    // Reading alone.
    let t = Instant::now();
    let mut next = batches(&file)?;
    let mut items = 0u64;
    while let Some(b) = next() {
        items += b.map_err(anyhow::Error::msg)?.len();
    }
    let parse = (items, t.elapsed());
    println!(
        "reading and checking the file alone: {items} items in {:.1} s ({:.0} items/s)",
        parse.1.as_secs_f64(),
        rate(parse)
    );

    let mut rows = Vec::new();
    // SQLite: the import into a new file, then the baseline into another.
    let db = dir.join("imported.db");
    let store = myna_store_sqlite::SqliteStore::open(&db)?;
    let report = crate::import::import_files(&store, std::slice::from_ref(&file), false).await?;
    store.close()?;
    let mut baseline =
        myna_store_sqlite::baseline::SqliteBaseline::create(&dir.join("baseline.db"))?;
    let (mut written, mut spent) = (0u64, Duration::ZERO);
    let mut next = batches(&file)?;
    while let Some(b) = next() {
        let b = b.map_err(anyhow::Error::msg)?;
        let t0 = Instant::now();
        written += baseline.insert(&b)?;
        spent += t0.elapsed();
    }
    let t0 = Instant::now();
    baseline.finish()?;
    spent += t0.elapsed();
    rows.push(Row {
        engine: "SQLite",
        import: (report.items, Duration::from_secs_f64(report.seconds)),
        baseline: (written, spent),
    });
    println!(
        "SQLite: database {:.1} MiB after the import",
        std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1_048_576.0
    );

    if args.postgres {
        use myna_store_postgres::testing::TestDb;
        let imported = TestDb::create("bench_import")
            .await
            .map_err(anyhow::Error::msg)?;
        let store = myna_store_postgres::PgProviderStore::connect(&imported.url).await?;
        let report =
            crate::import::import_files(&store, std::slice::from_ref(&file), false).await?;
        drop(store);
        imported.drop_now().await.map_err(anyhow::Error::msg)?;
        let base = TestDb::create("bench_baseline")
            .await
            .map_err(anyhow::Error::msg)?;
        let baseline = myna_store_postgres::baseline_copy(&base.url, batches(&file)?).await?;
        base.drop_now().await.map_err(anyhow::Error::msg)?;
        rows.push(Row {
            engine: "PostgreSQL",
            import: (report.items, Duration::from_secs_f64(report.seconds)),
            baseline,
        });
    }

    println!();
    println!("| engine | import items/s | baseline rows/s | import / baseline | import s |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.1} |",
            r.engine,
            rate(r.import),
            rate(r.baseline),
            rate(r.import) / rate(r.baseline).max(1e-9),
            r.import.1.as_secs_f64()
        );
    }
    println!(
        "(items: persons, card links and records; the baseline writes the same rows, timed \
         without parsing; the import's time includes parsing, overlapped with writing)"
    );
    std::fs::remove_dir_all(dir).ok();
    Ok(ExitCode::SUCCESS)
}
