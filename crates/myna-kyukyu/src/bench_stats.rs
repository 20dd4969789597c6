//! `bench stats`: the statistics dashboard of a simulated year (Kawasaki 2025, 91,157
//! dispatches) on SQLite and PostgreSQL. Times the year's write (`simulate`'s path), the
//! statistics rows' read, and the whole page: read, fold, six charts, the template
//! (`myna_ems::stats::dashboard_html`, all of a request but the HTTP exchange). A benchmark,
//! not a test.

use crate::simulate::{progress_bar, sim_bureau, write_days};
use anyhow::{Context, Result};
use myna_ems::Ems;
use myna_ems::stats::{Viewer, dashboard_html};
use myna_store::ems::EmsStore;
use myna_synth::year::{YearSim, published_year};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct StatsBenchArgs {
    /// Page renders to time (after one untimed).
    #[arg(long, default_value_t = 20)]
    pub runs: u32,
    /// Also on PostgreSQL: a fresh database on the project's server (`scripts/postgres`, or
    /// the one `MYNA_PG_URL` names), dropped afterwards.
    #[arg(long)]
    pub postgres: bool,
    /// The simulated year (Kawasaki's).
    #[arg(long, default_value_t = 2025)]
    pub year: i32,
}

pub async fn run(args: StatsBenchArgs) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("myna-bench-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sqlite = myna_store_sqlite::EmsSqlite::open(&dir.join("ems.db"))?;
    let measured = measure("SQLite", sqlite, &args).await;
    std::fs::remove_dir_all(&dir)?;
    measured?;
    if args.postgres {
        use myna_store_postgres::testing::TestDb;
        let db = TestDb::create("bench_stats")
            .await
            .map_err(anyhow::Error::msg)?;
        let store = myna_store_postgres::PgEmsStore::connect(&db.url).await?;
        measure("PostgreSQL", store, &args).await?;
        db.drop_now().await.map_err(anyhow::Error::msg)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure<S: EmsStore>(engine: &str, store: S, args: &StatsBenchArgs) -> Result<()> {
    let seed = myna_ems::seed::kawasaki("https://127.0.0.1:9", "/nonexistent", |_, _| {
        "not-a-password-hash".to_owned()
    });
    let bureau_id = store.seed_bureau(seed).await?;
    let bureau = store
        .bureau_by_id(bureau_id)
        .await?
        .context("the seeded bureau")?;
    let sim = YearSim::new(
        2026,
        published_year("kawasaki", args.year)?,
        sim_bureau(&store, &bureau).await?,
    )?;
    let t = Instant::now();
    let (written, _) = write_days(
        &store,
        bureau_id,
        &sim,
        sim.days(),
        &progress_bar(false, 0, ""),
    )
    .await?;
    let write_s = t.elapsed().as_secs_f64();
    let ems = Ems::new(Arc::new(store), Arc::new(chrono::Utc::now));
    let viewer = || Viewer {
        name: "bench".into(),
        is_admin: true,
        csrf: String::new(),
    };
    let (from, to) = crate::simulate::year_range_ms(args.year)?;
    let mut reads = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let rows = ems.store.incident_facts(bureau_id, from, to).await?;
        reads.push(t.elapsed());
        anyhow::ensure!(
            rows.len() as u64 == written,
            "read {} of {written} rows",
            rows.len()
        );
    }
    let render = || dashboard_html(&ems, &bureau, viewer(), Some(args.year));
    let first = render()
        .await
        .map_err(|_| anyhow::anyhow!("the dashboard failed"))?;
    let mut pages = Vec::new();
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let html = render()
            .await
            .map_err(|_| anyhow::anyhow!("the dashboard failed"))?;
        pages.push(t.elapsed());
        anyhow::ensure!(
            html.len() == first.len(),
            "the page changed between renders"
        );
    }
    reads.sort();
    pages.sort();
    let ms = |v: &[Duration], q: f64| crate::quantile::nearest_rank(v, q).as_secs_f64() * 1e3;
    println!(
        "{engine}: {written} incidents written in {write_s:.1} s ({:.0}/s); statistics rows read: \
         p50 {:.1} ms; dashboard ({} KiB HTML) over {} runs: p50 {:.1} ms, max {:.1} ms",
        written as f64 / write_s.max(1e-9),
        ms(&reads, 0.5),
        first.len() / 1024,
        pages.len(),
        ms(&pages, 0.5),
        ms(&pages, 1.0),
    );
    Ok(())
}
