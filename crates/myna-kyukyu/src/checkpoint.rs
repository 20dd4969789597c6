//! Signed checkpoints of the audit chains (`myna_pki::checkpoint`), as the operator runs them:
//! a key made once and kept out of the database, a checkpoint signed on demand or on a
//! schedule by the running service, appended to a log file the operator copies elsewhere, and
//! `audit verify` against every checkpoint in it.
//!
//! The rules that make a checkpoint worth its signature:
//! - a new one is signed only if the chain still holds every earlier signed head in the log
//!   and has not grown shorter (a chain rewritten with recomputed links, or cut short, is
//!   refused, not blessed);
//! - the service signs on every tick, also when nothing moved (a heartbeat), so a log whose
//!   newest line is old shows that lines were removed or signing stopped (`--max-age`);
//! - `audit verify` checks every line's signature, requires each chain's lines in order of
//!   sequence and time, and checks the chain against all of them.
//!
//! What stays the operator's: a copy of the log off the database host (someone who controls
//! the host can delete the newest lines of the copy there), and the key readable only by the
//! service's own user.

use crate::store::{EmsDb, ProviderDb};
use anyhow::{Context, Result, anyhow, bail};
use myna_domain::access::{Checkpoint, Hash32};
use myna_pki::checkpoint::{Chain, CheckpointKey, SignedCheckpoint};
use myna_store::ems::EmsStore;
use myna_store::{ChainPosition, ChainReport, ProviderStore};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A chain to checkpoint, with the store that holds it.
#[derive(Clone)]
pub enum ChainStore {
    Provider(Arc<ProviderDb>),
    Ems(Arc<EmsDb>),
}

impl ChainStore {
    pub fn chain(&self) -> Chain {
        match self {
            ChainStore::Provider(_) => Chain::ProviderAccess,
            ChainStore::Ems(_) => Chain::EmsViews,
        }
    }

    /// Checkpoints sign the head of a log kept as one chain. On PostgreSQL the provider keeps
    /// one chain per person and ems one per bureau; signing those heads (a digest of them,
    /// chained to the previous checkpoint) is not built yet, so it is refused rather than
    /// signed wrongly.
    pub fn checkpointable(&self) -> Result<()> {
        let partitioned = match self {
            ChainStore::Provider(s) => matches!(s.as_ref(), ProviderDb::Postgres(_)),
            ChainStore::Ems(s) => matches!(s.as_ref(), EmsDb::Postgres(_)),
        };
        if partitioned {
            bail!(
                "signed checkpoints of PostgreSQL's partitioned chains ({} log) are not built \
                 yet; `audit verify` checks every chain without them",
                self.chain().as_str()
            );
        }
        Ok(())
    }

    pub async fn verify(&self) -> Result<ChainReport> {
        Ok(match self {
            ChainStore::Provider(s) => s.verify_access_log().await?,
            ChainStore::Ems(s) => s.verify_view_log().await?,
        })
    }

    pub async fn hash_at(&self, seq: i64) -> Result<Option<Hash32>> {
        self.checkpointable()?;
        // A checkpointable log is one chain, partition 0 (`ChainPosition`).
        let at = ChainPosition { partition: 0, seq };
        Ok(match self {
            ChainStore::Provider(s) => s.access_log_hash(at).await?,
            ChainStore::Ems(s) => s.view_log_hash(at).await?,
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
    // Neither file may replace one that appeared meanwhile: created new, the key 0600.
    crate::secret_file::create_new(path, &pkcs8, 0o600)?;
    let public = hex::encode(key.public_key());
    crate::secret_file::create_new(
        &public_key_path(path),
        format!("{public}\n").as_bytes(),
        0o644,
    )?;
    Ok(myna_pki::checkpoint::key_id(&key.public_key()))
}

pub fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

pub fn load_key(path: &Path) -> Result<CheckpointKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {:o}); run chmod 600",
                path.display(),
                mode & 0o777
            );
        }
    }
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
/// signed, nor one that lost or changed a head signed before (`earlier`, from the log).
pub async fn sign_head(
    store: &ChainStore,
    key: &CheckpointKey,
    earlier: &[SignedCheckpoint],
    now_ms: i64,
) -> Result<Option<SignedCheckpoint>> {
    store.checkpointable()?;
    let public = key.public_key();
    for cp in earlier.iter().filter(|c| c.chain == store.chain()) {
        if let Err(why) = check_against(store, cp, &public).await? {
            bail!(
                "the {} chain no longer holds a head signed earlier ({why}); not signing it",
                store.chain().as_str()
            );
        }
    }
    match store.verify().await? {
        ChainReport::Intact { partitions, .. } if partitions > 1 => {
            // A line signs one head; a log of many chains needs a digest of their heads,
            // which is not built yet. Refuse rather than sign one chain as the whole log.
            bail!(
                "the {} log has {partitions} chains; checkpoints of a partitioned log are not built yet",
                store.chain().as_str()
            )
        }
        ChainReport::Intact {
            entries,
            head_hash: Some(head),
            ..
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

/// Appends a checkpoint line (in one write, so two services sharing a log do not interleave)
/// and flushes it to disk.
pub fn append(log: &Path, cp: &SignedCheckpoint) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    f.write_all(format!("{}\n", cp.to_line()).as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", log.display()))
}

/// Every checkpoint of `chain` in a log file, each signature checked with `public_key`, in
/// file order, which must also be the order of sequence numbers and times. A line that is
/// not a valid checkpoint is an error: the file is evidence, and an edited one must not be
/// read past. A missing file is an empty log.
pub fn read_log(log: &Path, chain: Chain, public_key: &[u8]) -> Result<Vec<SignedCheckpoint>> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
    };
    let mut out: Vec<SignedCheckpoint> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", log.display(), n + 1);
        let cp = SignedCheckpoint::parse_line(line).map_err(|e| anyhow!("{}: {e}", at()))?;
        // Another chain's lines may be signed by another service's key.
        if cp.chain != chain {
            continue;
        }
        cp.verify(public_key)
            .map_err(|e| anyhow!("{}: the checkpoint does not verify: {e}", at()))?;
        if let Some(prev) = out.last()
            && (cp.seq < prev.seq || cp.at_ms < prev.at_ms)
        {
            bail!(
                "{}: out of order (entry {} at {} ms after entry {} at {} ms): lines were moved \
                 or an old line appended",
                at(),
                cp.seq,
                cp.at_ms,
                prev.seq,
                prev.at_ms
            );
        }
        out.push(cp);
    }
    Ok(out)
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

/// Checks the chain against the log's checkpoints, signs its head and appends it: what
/// `audit checkpoint` and the schedule both do. `None` for an empty chain.
pub async fn checkpoint_now(
    store: &ChainStore,
    key: &CheckpointKey,
    log: &Path,
    now_ms: i64,
) -> Result<Option<SignedCheckpoint>> {
    // One signer at a time per log (the service's schedule and `audit checkpoint`): an
    // exclusive lock on a file beside it, held from reading the log to appending.
    let lock_path = {
        let mut name = log.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let earlier = read_log(log, store.chain(), &key.public_key())?;
    // Time never goes back in the log, even if the clock does.
    let at_ms = earlier.last().map_or(now_ms, |last| now_ms.max(last.at_ms));
    let Some(cp) = sign_head(store, key, &earlier, at_ms).await? else {
        return Ok(None);
    };
    append(log, &cp)?;
    drop(lock);
    Ok(Some(cp))
}

/// Signs a checkpoint every `every` while the service runs, also when nothing moved (a
/// heartbeat). A chain that no longer holds an earlier head is reported on every tick and
/// never signed.
pub async fn sign_forever(store: ChainStore, key: CheckpointKey, log: PathBuf, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp_millis();
        match checkpoint_now(&store, &key, &log, now).await {
            Ok(Some(cp)) => {
                tracing::info!(chain = cp.chain.as_str(), seq = cp.seq, "checkpoint signed")
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "AUDIT: no checkpoint signed"),
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
    store.checkpointable()?;
    let key = load_key(key)?;
    let every = Duration::from_secs(args.checkpoint_every_minutes * 60);
    Ok(Some(tokio::spawn(sign_forever(
        store,
        key,
        log.clone(),
        every,
    ))))
}
