//! `import`: claims batches (docs/import-format.md) into the provider's store, one batch per
//! transaction. Idempotent and resumable: a batch applied before is skipped, so after a crash
//! the same command carries on from the first batch that was not committed. A bad line stops
//! the import with its line number; its batch changes nothing.

use crate::store::{DbTarget, ProviderDb};
use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use myna_claims::BatchReader;
use myna_store::import::{ImportBatch, Imported};
use myna_store::{ProviderStore, StoreError};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// Provider database: a file (made if missing), or PostgreSQL (`postgres://…`).
    #[arg(long, default_value = "data/provider.db")]
    pub db: DbTarget,
    /// Import files, read in order; `-` is standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// No progress bar (a line per file instead).
    #[arg(long)]
    pub quiet: bool,
}

/// What an import did, over all its files.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ImportReport {
    pub batches_applied: u64,
    pub batches_skipped: u64,
    /// Persons, card links and records applied now.
    pub items: u64,
    /// Medical records among them.
    pub records: u64,
    pub seconds: f64,
}

impl ImportReport {
    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }
}

pub async fn run(args: ImportArgs) -> Result<ExitCode> {
    // A mistyped file name stops here, before a new database file is made for it. Not opened:
    // a named pipe's writer would take the close for the end of its reader.
    for file in args.files.iter().filter(|f| f.as_path() != Path::new("-")) {
        std::fs::metadata(file).with_context(|| format!("opening {}", file.display()))?;
    }
    let store = ProviderDb::open(&args.db).await?;
    let report = import_files(&store, &args.files, !args.quiet).await?;
    println!(
        "imported {} batches ({} persons, card links and records; {} records) in {:.1} s \
         ({:.0} items/s); {} batches were imported before and skipped",
        report.batches_applied,
        report.items,
        report.records,
        report.seconds,
        report.items_per_second(),
        report.batches_skipped
    );
    Ok(ExitCode::SUCCESS)
}

/// Imports `files` in order into `store`; the first bad line ends the import with an error
/// naming its file and line (the batches before it stay applied).
pub async fn import_files<S: ProviderStore>(
    store: &S,
    files: &[PathBuf],
    progress: bool,
) -> Result<ImportReport> {
    let started = Instant::now();
    let mut report = ImportReport::default();
    for file in files {
        import_file(store, file, progress, &mut report).await?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A batch read ahead, or why reading stopped; with the bytes read so far.
type Read = (Result<ImportBatch, myna_claims::ParseError>, u64);

async fn import_file<S: ProviderStore>(
    store: &S,
    file: &Path,
    progress: bool,
    report: &mut ImportReport,
) -> Result<()> {
    let name = file.display().to_string();
    let (input, size): (Box<dyn BufRead + Send>, Option<u64>) = if file == Path::new("-") {
        (Box::new(std::io::BufReader::new(std::io::stdin())), None)
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("opening {name}"))?;
        let size = f.metadata().ok().map(|m| m.len());
        (
            Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
            size,
        )
    };
    let bar = progress_bar(progress, size, &name);
    // The next batch is parsed while the store applies this one.
    // One batch read ahead: at most three in memory (read, waiting, being applied).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Read>(1);
    let reader = std::thread::spawn(move || {
        let mut reader = BatchReader::new(input);
        loop {
            let next = reader.next_batch();
            let at = reader.bytes_read();
            let item = match next {
                Ok(Some(batch)) => (Ok(batch), at),
                Ok(None) => return,
                Err(e) => (Err(e), at),
            };
            let stop = item.0.is_err();
            if tx.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    let started = Instant::now();
    let (mut items, mut applied, mut skipped) = (0u64, 0u64, 0u64);
    let outcome: Result<()> = async {
        while let Some((batch, at)) = rx.recv().await {
            let batch = batch.map_err(|e| anyhow!("{name}: {e}"))?;
            let id = batch.id.clone();
            let records = batch.records.len() as u64;
            match store.import_batch(batch).await {
                Ok(Imported::Applied { items: n }) => {
                    applied += 1;
                    items += n;
                    report.records += records;
                }
                Ok(Imported::AlreadyImported) => skipped += 1,
                Err(StoreError::ImportRejected { line, problem }) => {
                    return Err(anyhow!(
                        "{name}: line {line}: {problem} (batch {id:?} was not applied; the \
                         batches before it were, and running the import again skips them)"
                    ));
                }
                Err(e) => return Err(anyhow!(e).context(format!("{name}: batch {id:?}"))),
            }
            bar.set_position(at);
            let rate = items as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{applied} batches, {items} items ({rate:.0}/s), {skipped} skipped"
            ));
        }
        Ok(())
    }
    .await;
    drop(rx);
    let joined = reader.join();
    bar.finish_and_clear();
    report.batches_applied += applied;
    report.batches_skipped += skipped;
    report.items += items;
    outcome?;
    if joined.is_err() {
        return Err(anyhow!(
            "{name}: reading stopped unexpectedly; nothing after the last applied batch was imported"
        ));
    }
    if !progress {
        eprintln!("{name}: {applied} batches applied ({items} items), {skipped} skipped");
    }
    Ok(())
}

fn progress_bar(shown: bool, size: Option<u64>, name: &str) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = match size {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let template = if size.is_some() {
        "{prefix} {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}"
    } else {
        "{prefix} {spinner} {bytes} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_prefix(name.to_owned());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
