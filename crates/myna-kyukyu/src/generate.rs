//! `gen`: build a provider database from the synthetic population.

use crate::store::DbTarget;
use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use myna_store::{DatasetInfo, PersonRecordSet, ProviderStore};
use myna_store_sqlite::{Durability, SqliteStore};
use myna_synth::Generator;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;

const BATCH: u64 = 2_000;

#[derive(clap::Args)]
pub struct GenArgs {
    /// Provider database to create: a file, or an empty PostgreSQL database (`postgres://…`).
    #[arg(long, default_value = "data/provider.db")]
    pub db: DbTarget,
    /// Number of insured persons.
    #[arg(long, default_value_t = 10_000)]
    pub persons: u64,
    /// Seed; the same seed and date give the same population.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Reference date of the population (default: today in Japan).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Replace an existing database.
    #[arg(long)]
    pub force: bool,
    /// Write the population as a claims-import file (docs/import-format.md) instead of a
    /// database, for `import`; `-` writes it to stdout (`gen --claims-out - | import --db … -`,
    /// for a population larger than the disk holds twice).
    #[arg(long, conflicts_with = "force")]
    pub claims_out: Option<PathBuf>,
    /// Persons per batch of the claims-import file (about 95 lines each; 1 to 2,000 persons,
    /// which keeps a batch under the format's 200,000 lines). The batch ids name this size, so
    /// files cut differently are not taken for one another.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    pub batch_persons: u64,
}

pub struct GenReport {
    pub persons: u64,
    pub seconds: f64,
    pub bytes: u64,
}

impl GenReport {
    pub fn rate(&self) -> f64 {
        self.persons as f64 / self.seconds.max(1e-9)
    }
}

pub async fn run(args: GenArgs) -> Result<ExitCode> {
    let as_of = args
        .as_of
        .unwrap_or_else(|| myna_provider::japan_date(chrono::Utc::now()));
    if let Some(out) = &args.claims_out {
        let started = Instant::now();
        if out.as_os_str() == "-" {
            let stdout = std::io::stdout().lock();
            let (lines, _) = write_claims(
                std::io::BufWriter::with_capacity(1 << 20, stdout),
                args.persons,
                args.seed,
                as_of,
                args.batch_persons,
            )?;
            eprintln!(
                "wrote {} persons as {lines} import lines to stdout in {:.1} s",
                args.persons,
                started.elapsed().as_secs_f64()
            );
            return Ok(ExitCode::SUCCESS);
        }
        let lines = emit_claims(out, args.persons, args.seed, as_of, args.batch_persons)?;
        let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        println!(
            "wrote {} persons as {lines} import lines to {} in {:.1} s ({:.1} MiB)",
            args.persons,
            out.display(),
            started.elapsed().as_secs_f64(),
            bytes as f64 / 1_048_576.0
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = match &args.db {
        DbTarget::Sqlite(path) => {
            if path.exists() && !args.force {
                bail!("{} exists; pass --force to replace it", path.display());
            }
            generate(path, args.persons, args.seed, as_of, true).await?
        }
        DbTarget::Postgres(url) => {
            if args.force {
                bail!("--force cannot empty a PostgreSQL database; name a new one");
            }
            let store = myna_store_postgres::PgProviderStore::connect(url).await?;
            let held = store.dataset_info().await?.persons;
            if held > 0 {
                bail!(
                    "{} already holds {held} persons; name a new database",
                    args.db
                );
            }
            if store.holds_persons().await? {
                bail!(
                    "{} already holds persons (imported); name a new database",
                    args.db
                );
            }
            let started = Instant::now();
            fill(&store, args.persons, args.seed, as_of, true).await?;
            GenReport {
                persons: args.persons,
                seconds: started.elapsed().as_secs_f64(),
                bytes: 0,
            }
        }
    };
    // A SQLite file's size is known here; a PostgreSQL database's (on several nodes, too) is
    // for `pg_database_size` on each server.
    let size = match &args.db {
        DbTarget::Sqlite(_) => format!(
            ", {:.1} MiB, {:.0} bytes/person",
            report.bytes as f64 / 1_048_576.0,
            report.bytes as f64 / report.persons.max(1) as f64
        ),
        DbTarget::Postgres(_) => String::new(),
    };
    println!(
        "generated {} persons into {} in {:.1} s ({:.0} persons/s{size})",
        report.persons,
        args.db,
        report.seconds,
        report.rate(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Generates `persons` into a new database at `db`. The file appears only when complete.
pub async fn generate(
    db: &Path,
    persons: u64,
    seed: u64,
    as_of: NaiveDate,
    progress: bool,
) -> Result<GenReport> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = db.with_extension("db.partial");
    let _ = std::fs::remove_file(&partial);
    let started = Instant::now();
    let store = SqliteStore::open_with(&partial, Durability::BulkLoad)
        .context("opening the new database")?;
    fill(&store, persons, seed, as_of, progress).await?;
    store.close()?;
    // Reopen with full durability to switch the file to WAL before it goes live.
    SqliteStore::open(&partial)?.close()?;
    std::fs::rename(&partial, db)
        .with_context(|| format!("moving the database to {}", db.display()))?;
    let bytes = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    Ok(GenReport {
        persons,
        seconds: started.elapsed().as_secs_f64(),
        bytes,
    })
}

/// Generates `persons` on worker threads and loads them into `store` in person order, then
/// records the dataset's facts.
pub async fn fill<S: ProviderStore>(
    store: &S,
    persons: u64,
    seed: u64,
    as_of: NaiveDate,
    progress: bool,
) -> Result<()> {
    let started = Instant::now();
    let mut population = InOrder::start(persons, seed, as_of, BATCH)?;
    let mut last_report = Instant::now();
    let mut done = 0u64;
    while let Some(batch) = population.next()? {
        done += batch.len() as u64;
        store.load_persons(batch).await.context("writing persons")?;
        if progress && last_report.elapsed().as_secs() >= 5 {
            eprintln!(
                "  {done}/{persons} persons ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    store
        .set_dataset_info(DatasetInfo {
            persons,
            seed: Some(seed),
            generated_as_of: Some(as_of),
            claims_through: Some(myna_synth::claims_through(as_of)),
        })
        .await?;
    Ok(())
}

/// Writes the population as a claims-import file, `batch_persons` persons per batch, batch
/// ids naming the seed, the date, the batch size and the batch
/// (`gen-2026-2026-11-26-p1000-000000`); the lines written. The file appears only when
/// complete.
pub fn emit_claims(
    out: &Path,
    persons: u64,
    seed: u64,
    as_of: NaiveDate,
    batch_persons: u64,
) -> Result<u64> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let (lines, file) = write_claims(
        std::io::BufWriter::with_capacity(1 << 20, file),
        persons,
        seed,
        as_of,
        batch_persons,
    )?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, out)
        .with_context(|| format!("moving the file to {}", out.display()))?;
    Ok(lines)
}

/// The population in the import format on `out`, flushed; the lines written, and `out`.
fn write_claims<W: std::io::Write>(
    out: W,
    persons: u64,
    seed: u64,
    as_of: NaiveDate,
    batch_persons: u64,
) -> Result<(u64, W)> {
    let mut writer = myna_claims::BatchWriter::new(out);
    let mut population = InOrder::start(persons, seed, as_of, batch_persons)?;
    let (mut batches, mut lines) = (0u64, 0u64);
    let mut begin = |writer: &mut myna_claims::BatchWriter<_>| -> Result<()> {
        lines += writer.batch_lines().unwrap_or(0);
        writer.begin_batch(&format!("gen-{seed}-{as_of}-p{batch_persons}-{batches:06}"))?;
        batches += 1;
        Ok(())
    };
    while let Some(batch) = population.next()? {
        begin(&mut writer)?;
        for set in &batch {
            // A person with a long history could take a batch past the format's limit.
            if writer.batch_lines().unwrap_or(0) > myna_claims::MAX_BATCH_LINES / 2 {
                begin(&mut writer)?;
            }
            writer.person_set(set)?;
        }
    }
    lines += writer.batch_lines().unwrap_or(0);
    let mut out = writer.finish()?;
    std::io::Write::flush(&mut out)?;
    Ok((lines, out))
}

/// The synthetic population in batches of `batch` persons, generated on worker threads and
/// handed out in person order (so clustered tables are appended, not split).
struct InOrder {
    rx: mpsc::Receiver<(u64, Vec<PersonRecordSet>)>,
    waiting: BTreeMap<u64, Vec<PersonRecordSet>>,
    next: u64,
    batches: u64,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl InOrder {
    fn start(persons: u64, seed: u64, as_of: NaiveDate, batch: u64) -> Result<Self> {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .max(1) as u64;
        let batch = batch.max(1);
        let batches = persons.div_ceil(batch);
        let (tx, rx) = mpsc::sync_channel::<(u64, Vec<PersonRecordSet>)>(workers as usize * 2);
        let mut handles = Vec::new();
        for w in 0..workers {
            let tx = tx.clone();
            let generator = Generator::new(seed, as_of)?;
            handles.push(std::thread::spawn(move || {
                let mut b = w;
                while b < batches {
                    let start = b * batch;
                    let end = ((b + 1) * batch).min(persons);
                    let sets = (start..end)
                        .map(|i| {
                            let p = generator.person(i);
                            PersonRecordSet {
                                person: p.person,
                                cert_serial: p.cert_serial,
                                records: p.records,
                            }
                        })
                        .collect();
                    if tx.send((b, sets)).is_err() {
                        return;
                    }
                    b += workers;
                }
            }));
        }
        Ok(Self {
            rx,
            waiting: BTreeMap::new(),
            next: 0,
            batches,
            handles,
        })
    }

    /// The next batch in order; None after the last.
    fn next(&mut self) -> Result<Option<Vec<PersonRecordSet>>> {
        if self.next >= self.batches {
            for h in self.handles.drain(..) {
                let _ = h.join();
            }
            return Ok(None);
        }
        loop {
            if let Some(sets) = self.waiting.remove(&self.next) {
                self.next += 1;
                return Ok(Some(sets));
            }
            match self.rx.recv() {
                Ok((b, sets)) => {
                    self.waiting.insert(b, sets);
                }
                Err(_) => bail!("a generator thread stopped early"),
            }
        }
    }
}
