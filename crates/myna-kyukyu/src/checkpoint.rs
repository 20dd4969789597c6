//! Signed checkpoints of the audit chains (`myna_pki::checkpoint`), as the operator runs them:
//! a key made once and kept out of the database, a checkpoint signed on demand or on a
//! schedule by the running service, appended to a log file the operator copies elsewhere, and
//! `audit verify` against the latest one.

use anyhow::{Context, Result, anyhow, bail};
use myna_domain::access::{Checkpoint, Hash32};
use myna_pki::checkpoint::{Chain, CheckpointKey, SignedCheckpoint};
use myna_store::ems::EmsStore;
use myna_store::{ChainReport, ProviderStore};
use myna_store_sqlite::{EmsSqlite, SqliteStore};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A chain to checkpoint, with the store that holds it.
#[derive(Clone)]
pub enum ChainStore {
    Provider(Arc<SqliteStore>),
    Ems(Arc<EmsSqlite>),
}

impl ChainStore {
    pub fn chain(&self) -> Chain {
        match self {
            ChainStore::Provider(_) => Chain::ProviderAccess,
            ChainStore::Ems(_) => Chain::EmsViews,
        }
    }

    pub async fn verify(&self) -> Result<ChainReport> {
        Ok(match self {
            ChainStore::Provider(s) => s.verify_access_log().await?,
            ChainStore::Ems(s) => s.verify_view_log().await?,
        })
    }

    pub async fn hash_at(&self, seq: i64) -> Result<Option<Hash32>> {
        Ok(match self {
            ChainStore::Provider(s) => s.access_log_hash(seq).await?,
            ChainStore::Ems(s) => s.view_log_hash(seq).await?,
        })
    }
}

/// Where the service signs its checkpoints.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckpointArgs {
    /// The signing key (`audit keygen` writes one). Without it no checkpoint is signed.
    #[arg(long)]
    pub checkpoint_key: Option<PathBuf>,
    /// The file checkpoints are appended to (copy it off this machine).
    #[arg(long, requires = "checkpoint_key")]
    pub checkpoint_log: Option<PathBuf>,
    /// Minutes between checkpoints while serving.
    #[arg(long, default_value_t = 5)]
    pub checkpoint_every_minutes: u64,
}

/// Makes a key: the PKCS#8 document owner-only at `path`, the raw public key in hex at
/// `path.pub`. Refuses to replace an existing key.
pub fn keygen(path: &Path) -> Result<String> {
    if path.exists() {
        bail!(
            "{} exists; a checkpoint key is never replaced in place",
            path.display()
        );
    }
    let (key, pkcs8) = CheckpointKey::generate()?;
    crate::secret_file::write(path, &pkcs8)?;
    let public = hex::encode(key.public_key());
    std::fs::write(public_key_path(path), format!("{public}\n"))
        .with_context(|| format!("writing {}", public_key_path(path).display()))?;
    Ok(myna_pki::checkpoint::key_id(&key.public_key()))
}

pub fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

pub fn load_key(path: &Path) -> Result<CheckpointKey> {
    let der = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(CheckpointKey::from_pkcs8(&der)?)
}

pub fn load_public_key(path: &Path) -> Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key = hex::decode(text.trim())
        .map_err(|_| anyhow!("{} is not a hex public key", path.display()))?;
    if key.len() != 32 {
        bail!("{} is not an Ed25519 public key (32 bytes)", path.display());
    }
    Ok(key)
}

/// Verifies the chain and signs its head; `None` for an empty chain. A broken chain is never
/// signed.
pub async fn sign_head(
    store: &ChainStore,
    key: &CheckpointKey,
    now_ms: i64,
) -> Result<Option<SignedCheckpoint>> {
    match store.verify().await? {
        ChainReport::Intact {
            entries,
            head_hash: Some(head),
        } => {
            let head: [u8; 32] = hex::decode(&head)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| anyhow!("the store reported a malformed head hash"))?;
            let seq = i64::try_from(entries).context("chain length")?;
            Ok(Some(key.sign(store.chain(), seq, head, now_ms)))
        }
        ChainReport::Intact { .. } => Ok(None),
        ChainReport::Broken { first_break, .. } => {
            bail!(
                "the {} chain is broken ({first_break}); not signing it",
                store.chain().as_str()
            )
        }
    }
}

/// Appends a checkpoint line and flushes it to disk.
pub fn append(log: &Path, cp: &SignedCheckpoint) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    writeln!(f, "{}", cp.to_line())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", log.display()))
}

/// The newest checkpoint of `chain` in a log file. A line that is not a checkpoint is an
/// error: the file is evidence, and an edited one must not be read past.
pub fn latest(log: &Path, chain: Chain) -> Result<Option<SignedCheckpoint>> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut newest = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cp = SignedCheckpoint::parse_line(line)
            .map_err(|e| anyhow!("{} line {}: {e}", log.display(), n + 1))?;
        if cp.chain == chain {
            newest = Some(cp);
        }
    }
    Ok(newest)
}

/// What `audit verify` concludes from a signed checkpoint.
pub async fn check_against(
    store: &ChainStore,
    cp: &SignedCheckpoint,
    public_key: &[u8],
) -> Result<std::result::Result<(), String>> {
    if let Err(e) = cp.verify(public_key) {
        return Ok(Err(format!("the checkpoint itself does not verify: {e}")));
    }
    let recorded = Checkpoint {
        seq: cp.seq,
        hash: cp.head,
    };
    Ok(recorded
        .check(store.hash_at(cp.seq).await?)
        .map_err(|b| format!("against the checkpoint signed at {} ms: {b}", cp.at_ms)))
}

/// Signs a checkpoint every `every` while the service runs, when the head moved.
pub async fn sign_forever(store: ChainStore, key: CheckpointKey, log: PathBuf, every: Duration) {
    let mut tick = tokio::time::interval(every);
    let mut last: Option<i64> = None;
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp_millis();
        match sign_head(&store, &key, now).await {
            Ok(Some(cp)) if last != Some(cp.seq) => match append(&log, &cp) {
                Ok(()) => {
                    last = Some(cp.seq);
                    tracing::info!(chain = cp.chain.as_str(), seq = cp.seq, "checkpoint signed");
                }
                Err(e) => tracing::error!(error = %e, "writing the checkpoint failed"),
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "no checkpoint signed"),
        }
    }
}

/// Starts the schedule when the service was given a key and a log.
pub fn spawn(
    args: &CheckpointArgs,
    store: ChainStore,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let (Some(key), Some(log)) = (&args.checkpoint_key, &args.checkpoint_log) else {
        if args.checkpoint_key.is_some() {
            bail!("--checkpoint-key needs --checkpoint-log");
        }
        return Ok(None);
    };
    if args.checkpoint_every_minutes == 0 {
        bail!("--checkpoint-every-minutes must be positive");
    }
    let key = load_key(key)?;
    let every = Duration::from_secs(args.checkpoint_every_minutes * 60);
    Ok(Some(tokio::spawn(sign_forever(
        store,
        key,
        log.clone(),
        every,
    ))))
}
