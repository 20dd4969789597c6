//! `bench provider`: load a provider process with a concurrent HTTP client on this machine.
//!
//! For each population size it generates (or reuses) a database, issues certificates for a
//! spread of persons, starts `myna-kyukyu provider serve` as a separate process, and measures
//! summary throughput and latency at several concurrencies, `/healthz` throughput at the same
//! concurrencies (what the HTTP stack allows), and database size per person. A benchmark, not a
//! test: it reports numbers and never fails on them.

use crate::cards::{CA_CERT, PkiDir};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chrono::{Duration as ChronoDuration, Utc};
use hdrhistogram::Histogram;
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::summary::View;
use myna_provider::ViewerBody;
use myna_provider::client::ProviderClient;
use myna_store::ProviderStore;
use myna_store_sqlite::SqliteStore;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Summary throughput and latency of the provider at several population sizes.
    Provider(ProviderBenchArgs),
    /// Card placed → auth certificate verified: APDUs, bytes and time, in process and
    /// through pcscd + vpcd, with and without emulated contactless latency.
    Card(crate::bench_card::CardBenchArgs),
    /// Ranking every hospital of the registry for one patient.
    Ranking(crate::bench_ranking::RankingBenchArgs),
    /// The handoff: its FHIR document and its PDF, per synthetic patient.
    Handoff(crate::bench_handoff::HandoffBenchArgs),
    /// Loading the drug master, classifying every code, and what that saves each summary.
    Alerts(crate::bench_alerts::AlertsBenchArgs),
    /// The real ems and provider processes under Kawasaki's busiest hour, or every team of the
    /// country connected with push streams open (docs/benchmarks.md).
    EmsLoad(crate::bench_ems_load::EmsLoadArgs),
    /// A TCP proxy that delays every byte each way (the browser benchmark's 100 ms RTT link;
    /// this kernel has no netem).
    DelayProxy(crate::delay_proxy::DelayProxyArgs),
}

#[derive(clap::Args)]
pub struct ProviderBenchArgs {
    /// Population sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub persons: Vec<u64>,
    /// Client concurrencies, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Distinct card certificates to cycle through.
    #[arg(long, default_value_t = 2000)]
    pub cards: u64,
    /// Where databases are kept between runs (they are reused when present).
    #[arg(long, default_value = "bench-data")]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

pub async fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Provider(a) => provider(a).await,
        BenchCommand::Card(a) => {
            tokio::task::spawn_blocking(move || crate::bench_card::run(a)).await?
        }
        BenchCommand::DelayProxy(a) => crate::delay_proxy::run(a).await,
        BenchCommand::EmsLoad(a) => crate::bench_ems_load::run(a).await,
        BenchCommand::Handoff(a) => {
            tokio::task::spawn_blocking(move || crate::bench_handoff::run(a)).await?
        }
        BenchCommand::Ranking(a) => {
            tokio::task::spawn_blocking(move || crate::bench_ranking::run(a)).await?
        }
        BenchCommand::Alerts(a) => {
            tokio::task::spawn_blocking(move || crate::bench_alerts::run(a)).await?
        }
    }
}

struct Level {
    concurrency: usize,
    summaries_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    healthz_per_s: f64,
}

struct ChildGuard(Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

async fn provider(args: ProviderBenchArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.data_dir)?;
    let pki_dir = args.data_dir.join("pki");
    let pki = PkiDir::open_or_create(&pki_dir)?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench provider: {cpus} CPUs, {} s per level, {} cards",
        args.seconds, args.cards
    );
    for &n in &args.persons {
        let db = args.data_dir.join(format!("provider-{n}.db"));
        let today = myna_provider::japan_date(Utc::now());
        let gen_line = if db.exists() {
            format!("reused {}", db.display())
        } else {
            let r = crate::generate::generate(&db, n, args.seed, today, true).await?;
            format!(
                "generated in {:.1} s ({:.0} persons/s)",
                r.seconds,
                r.rate()
            )
        };
        let size_before = file_size(&db);

        // Certificates for persons spread over the whole population, and a bench organisation.
        let store = SqliteStore::open(&db)?;
        let info = store.dataset_info().await?;
        let seed = info.seed.unwrap_or(args.seed);
        let org = format!("bench-{}", Utc::now().timestamp_millis());
        let token = crate::provider::add_organisation(&store, &org, "bench").await?;
        store.close()?;
        let now = Utc::now();
        let cards = args.cards.min(n).max(1);
        let stride = (n / cards).max(1);
        let mut bodies = Vec::new();
        for c in 0..cards {
            let index = (c * stride + c % stride.max(1)) % n;
            let serial = myna_synth::cert_serial_for(seed, index);
            let der = pki.ca.issue_auth_cert(
                &serial,
                &pki.keys.key(c as usize).to_public_key(),
                now - ChronoDuration::days(30),
                now + ChronoDuration::days(365),
            )?;
            let consent = if c % 10 == 0 {
                Consent::Exception {
                    reason: ExceptionReason::Unconscious,
                }
            } else {
                Consent::Obtained
            };
            let body = ProviderClient::summary_body(
                &der,
                consent,
                &format!("BENCH-{c}"),
                ViewerBody {
                    organisation: org.clone(),
                    team: "中原救急1".into(),
                    crew_member: "K-0001".into(),
                },
            );
            bodies.push(Bytes::from(serde_json::to_vec(&body)?));
        }
        let bodies = Arc::new(bodies);

        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["provider", "serve", "--listen", "127.0.0.1:0"])
            .arg("--db")
            .arg(&db)
            .arg("--ca-cert")
            .arg(pki_dir.join(CA_CERT))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the provider")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("provider stdout")?).read_line(&mut line)?;
        let _guard = ChildGuard(child);
        let Some(url) = line.trim().strip_prefix("provider listening on ") else {
            bail!("provider did not start: {line:?}");
        };
        let client = ProviderClient::new(url, &token)?;
        let (status, body) = client
            .post_json(
                ProviderClient::summary_path(View::Summary),
                bodies[0].clone(),
            )
            .await?;
        if !status.is_success() {
            bail!(
                "warm-up summary refused: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        load(
            &client,
            &bodies,
            16,
            Duration::from_secs(2),
            Target::Summary,
        )
        .await?;

        let mut levels = Vec::new();
        for &c in &args.concurrency {
            let s = load(
                &client,
                &bodies,
                c,
                Duration::from_secs(args.seconds),
                Target::Summary,
            )
            .await?;
            let h = load(
                &client,
                &bodies,
                c,
                Duration::from_secs(args.seconds),
                Target::Healthz,
            )
            .await?;
            levels.push(Level {
                concurrency: c,
                summaries_per_s: s.per_second,
                p50_ms: s.hist.value_at_quantile(0.50) as f64 / 1000.0,
                p99_ms: s.hist.value_at_quantile(0.99) as f64 / 1000.0,
                errors: s.errors,
                healthz_per_s: h.per_second,
            });
        }
        drop(_guard);
        let wal = file_size(&db.with_extension("db-wal"));
        println!("\n### {n} persons — {gen_line}");
        let size_note = if gen_line.starts_with("reused") {
            "before this run, including access-log entries of earlier runs"
        } else {
            "after generation"
        };
        println!(
            "database {:.1} MiB {size_note} = {:.0} bytes/person; {:.1} MiB after this run",
            size_before as f64 / 1_048_576.0,
            size_before as f64 / n as f64,
            (file_size(&db) + wal) as f64 / 1_048_576.0
        );
        println!(
            "| concurrency | summaries/s | p50 ms | p99 ms | errors | /healthz per s | ratio |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for l in &levels {
            println!(
                "| {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.2} |",
                l.concurrency,
                l.summaries_per_s,
                l.p50_ms,
                l.p99_ms,
                l.errors,
                l.healthz_per_s,
                l.summaries_per_s / l.healthz_per_s.max(1.0)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy)]
enum Target {
    Summary,
    Healthz,
}

struct LoadResult {
    per_second: f64,
    hist: Histogram<u64>,
    errors: u64,
}

/// `concurrency` loops, each with one request in flight, for `duration`.
async fn load(
    client: &ProviderClient,
    bodies: &Arc<Vec<Bytes>>,
    concurrency: usize,
    duration: Duration,
    target: Target,
) -> Result<LoadResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, bodies, stop, next) =
            (client.clone(), bodies.clone(), stop.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut ok = 0u64;
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % bodies.len();
                let t0 = Instant::now();
                let status = match target {
                    Target::Summary => client
                        .post_json(
                            ProviderClient::summary_path(View::Summary),
                            bodies[i].clone(),
                        )
                        .await
                        .map(|r| r.0),
                    Target::Healthz => client.get("/healthz").await.map(|r| r.0),
                };
                match status {
                    Ok(s) if s.is_success() => {
                        ok += 1;
                        hist.record((t0.elapsed().as_micros() as u64).max(1))?;
                    }
                    _ => errors += 1,
                }
            }
            anyhow::Ok((hist, ok, errors))
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        let (h, o, e) = t.await??;
        hist.add(h)?;
        ok += o;
        errors += e;
    }
    Ok(LoadResult {
        per_second: ok as f64 / started.elapsed().as_secs_f64(),
        hist,
        errors,
    })
}
