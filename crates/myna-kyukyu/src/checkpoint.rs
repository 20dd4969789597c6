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
//! A log kept as several chains (PostgreSQL: one per person, one per bureau) is checkpointed by
//! the digest of every chain's head (`Form::Heads`): each checkpoint records the heads that
//! moved since the previous one in `LOG.heads` (one line each, `CHAIN DIGEST PARTITION SEQ
//! HASH`, under the digest the checkpoint signs), written before its signed line, and signs
//! the digest of those chained to the previous digest. The heads signed come from the walk
//! that verifies the chains (`access_log_walk`, one snapshot), which also reads the hash at
//! each recorded head's place. Verifying replays every checkpoint's heads against its
//! signature, then requires, in one walk, the newest recorded head of every chain: unchanged
//! where the chain has not moved, and at its place with its hash where it has. (A v1 log
//! checks each signed head; here each chain's newest recorded head stands for its earlier
//! ones, which the walk reaches through the links.)
//!
//! `LOG.heads` would grow by every chain that moved at every checkpoint. So a base checkpoint
//! (`Form::HeadsBase`, `v3`) records every chain's head, its digest chained to nothing, once
//! the rows recorded since the previous base outnumber both `BASE_AFTER_ROWS` and that base's
//! own (or when `audit checkpoint --base` asks). Replay starts at the newest base, so the rows
//! of the checkpoints before it are moved to `LOG.heads.AT_MS-SEQ.old` and `LOG.heads` (its
//! owner and mode kept) holds the base's rows and the later ones. The lines in the log stay,
//! their signatures and order still checked; a line removed from before the newest base is no
//! longer found. Readers take a shared lock on `LOG.lock` (`read_log_and_heads`).
//!
//! What stays the operator's: a copy of the log (and `LOG.heads`) off the database host
//! (someone who controls the host can delete the newest lines of the copy there), and the key
//! readable only by the service's own user.

use crate::store::{EmsDb, ProviderDb};
use anyhow::{Context, Result, anyhow, bail};
use myna_domain::access::{
    Checkpoint, Hash32, PartitionHead, RecordedHeads, heads_base_digest, heads_digest,
};
use myna_pki::checkpoint::{Chain, CheckpointKey, Form, SignedCheckpoint};
use myna_store::ems::EmsStore;
use myna_store::{ChainPosition, ChainReport, ProviderStore};
use std::collections::BTreeMap;
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

    /// How the log is kept, so what its checkpoints sign: on PostgreSQL the provider keeps
    /// one chain per person and ems one per bureau.
    pub fn form(&self) -> Form {
        let several = match self {
            ChainStore::Provider(s) => matches!(s.as_ref(), ProviderDb::Postgres(_)),
            ChainStore::Ems(s) => matches!(s.as_ref(), EmsDb::Postgres(_)),
        };
        if several { Form::Heads } else { Form::OneChain }
    }

    pub async fn verify(&self) -> Result<ChainReport> {
        Ok(match self {
            ChainStore::Provider(s) => s.verify_access_log().await?,
            ChainStore::Ems(s) => s.verify_view_log().await?,
        })
    }

    /// The hash at `seq` of a log kept as one chain (`SEQ:HASH` names no chain of several).
    pub async fn hash_at(&self, seq: i64) -> Result<Option<Hash32>> {
        if self.form() == Form::Heads {
            bail!(
                "the {} log is kept as one chain per {}; a recorded SEQ:HASH names no one of \
                 them (use --checkpoints)",
                self.chain().as_str(),
                match self {
                    ChainStore::Provider(_) => "person",
                    ChainStore::Ems(_) => "bureau",
                }
            );
        }
        self.hash_in(ChainPosition { partition: 0, seq }).await
    }

    async fn hash_in(&self, at: ChainPosition) -> Result<Option<Hash32>> {
        Ok(match self {
            ChainStore::Provider(s) => s.access_log_hash(at).await?,
            ChainStore::Ems(s) => s.view_log_hash(at).await?,
        })
    }

    /// The walk a checkpoint of the heads signs and checks: every chain verified, its head,
    /// and the hash at each recorded place, from one snapshot.
    async fn walk(&self, places: BTreeMap<i64, i64>) -> Result<myna_store::ChainWalk> {
        Ok(match self {
            ChainStore::Provider(s) => s.access_log_walk(places).await?,
            ChainStore::Ems(s) => s.view_log_walk(places).await?,
        })
    }

    /// Checks the walk against the heads recorded by the checkpoints so far: every chain
    /// recorded is still there, no shorter, with the recorded hash at the recorded place.
    /// The walk's heads, and what moved since, when they hold.
    async fn against(
        &self,
        recorded: &RecordedHeads,
    ) -> Result<std::result::Result<(Vec<PartitionHead>, Vec<PartitionHead>), String>> {
        let walk = self.walk(recorded.places()).await?;
        if let ChainReport::Broken {
            first_break, chain, ..
        } = walk.report
        {
            return Ok(Err(match chain {
                Some(c) => format!("the log is broken (chain {c}: {first_break})"),
                None => format!("the log is broken ({first_break})"),
            }));
        }
        let delta = match recorded.delta(&walk.heads) {
            Ok(d) => d,
            Err((partition, b)) => {
                return Ok(Err(format!(
                    "chain {partition}, against the newest checkpoint: {b}"
                )));
            }
        };
        for h in &delta.to_check {
            let signed = Checkpoint {
                seq: h.seq,
                hash: h.hash,
            };
            if let Err(b) = signed.check(walk.found.get(&h.partition).copied()) {
                return Ok(Err(format!(
                    "chain {}, against the newest checkpoint: {b}",
                    h.partition
                )));
            }
        }
        Ok(Ok((walk.heads, delta.moved)))
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
    beside(key, ".pub")
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
/// signed, nor one that lost or changed a head signed before (`earlier`, from the log). For a
/// log of several chains, `recorded` holds the earlier checkpoints' moved heads (`LOG.heads`),
/// and the heads that moved since are returned with the checkpoint, to be recorded before it;
/// with `base`, every chain's head is, in a base checkpoint.
pub async fn sign_head(
    store: &ChainStore,
    key: &CheckpointKey,
    earlier: &[SignedCheckpoint],
    recorded: &HeadRows,
    base: bool,
    now_ms: i64,
) -> Result<Option<(SignedCheckpoint, Vec<PartitionHead>)>> {
    let public = key.public_key();
    let mine: Vec<SignedCheckpoint> = earlier
        .iter()
        .filter(|c| c.chain == store.chain())
        .cloned()
        .collect();
    match store.form() {
        Form::OneChain => {
            if let Err(why) = check_all(store, &mine, &public, recorded).await? {
                bail!(
                    "the {} chain no longer holds a head signed earlier ({why}); not signing it",
                    store.chain().as_str()
                );
            }
            match store.verify().await? {
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
                    Ok(Some((
                        key.sign(store.chain(), Form::OneChain, seq, head, now_ms),
                        Vec::new(),
                    )))
                }
                ChainReport::Intact { .. } => Ok(None),
                ChainReport::Broken { first_break, .. } => bail!(
                    "the {} chain is broken ({first_break}); not signing it",
                    store.chain().as_str()
                ),
            }
        }
        Form::Heads | Form::HeadsBase => {
            for cp in &mine {
                cp.verify(&public)
                    .map_err(|e| anyhow!("a checkpoint in the log does not verify: {e}"))?;
            }
            let before = replay(&mine, recorded).map_err(|e| anyhow!(e))?;
            // The heads signed are the walk's own, checked against the recorded ones in the
            // same snapshot: nothing is signed that the walk did not verify.
            let (heads, moved) = match store.against(&before).await? {
                Ok(v) => v,
                Err(why) => bail!(
                    "the {} log no longer holds a head signed earlier ({why}); not signing it",
                    store.chain().as_str()
                ),
            };
            let entries = heads
                .iter()
                .try_fold(0i64, |sum, h| sum.checked_add(h.seq))
                .ok_or_else(|| anyhow!("the log's entries overflow a count"))?;
            if entries == 0 {
                return Ok(None);
            }
            if base {
                let mut all = heads;
                all.sort_by_key(|h| h.partition);
                let digest = heads_base_digest(&all);
                return Ok(Some((
                    key.sign(store.chain(), Form::HeadsBase, entries, digest, now_ms),
                    all,
                )));
            }
            let digest = heads_digest(&before.digest(), &moved);
            Ok(Some((
                key.sign(store.chain(), Form::Heads, entries, digest, now_ms),
                moved,
            )))
        }
    }
}

/// The heads each checkpoint of a log of several chains recorded, by chain and by the digest
/// the checkpoint signed, as read from `LOG.heads`. Rows no signed line names (a checkpoint
/// that crashed before it was signed, or rows added by hand) are never read.
#[derive(Debug, Default)]
pub struct HeadRows(BTreeMap<(String, Hash32), Vec<PartitionHead>>);

impl HeadRows {
    fn moved(&self, chain: Chain, digest: &Hash32) -> &[PartitionHead] {
        self.0
            .get(&(chain.as_str().to_owned(), *digest))
            .map_or(&[], Vec::as_slice)
    }
}

/// Where the moved heads of a log's checkpoints are recorded: `LOG.heads`.
pub fn heads_path(log: &Path) -> PathBuf {
    beside(log, ".heads")
}

/// The file named as `path` with `suffix` added (`LOG.heads`, `LOG.lock`, `KEY.pub`, …).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where the newest base checkpoint is among one chain's checkpoints, if any: replay starts
/// there.
fn newest_base(checkpoints: &[SignedCheckpoint]) -> Option<usize> {
    checkpoints.iter().rposition(|c| c.form == Form::HeadsBase)
}

/// Reads `LOG.heads`; a missing file records nothing. A line that does not parse is an error,
/// as in the log itself, except a last line cut short by a crash while it was written.
pub fn read_heads(log: &Path) -> Result<HeadRows> {
    let path = heads_path(log);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HeadRows::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = HeadRows::default();
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((chain, digest, head)) = parse_head_row(line) else {
            if !complete && n + 1 == lines.len() {
                break;
            }
            bail!(
                "{} line {}: not CHAIN DIGEST PARTITION SEQ HASH",
                path.display(),
                n + 1
            );
        };
        let group = rows
            .0
            .entry((chain.as_str().to_owned(), digest))
            .or_default();
        // The same rows twice (a checkpoint retried after a crash, unchanged) are one record.
        if !group.contains(&head) {
            group.push(head);
        }
    }
    Ok(rows)
}

fn parse_head_row(line: &str) -> Option<(Chain, Hash32, PartitionHead)> {
    let hash32 = |s: &str| -> Option<Hash32> { hex::decode(s).ok()?.try_into().ok() };
    let f: Vec<&str> = line.split_ascii_whitespace().collect();
    let [chain, digest, partition, seq, hash] = f.as_slice() else {
        return None;
    };
    Some((
        Chain::parse(chain)?,
        hash32(digest)?,
        PartitionHead {
            partition: partition.parse().ok()?,
            seq: seq.parse().ok()?,
            hash: hash32(hash)?,
        },
    ))
}

/// Appends one checkpoint's moved heads to `LOG.heads` (in one write), under the digest it
/// signs, and flushes it, before the checkpoint is signed into the log.
fn append_heads(log: &Path, chain: Chain, digest: &Hash32, moved: &[PartitionHead]) -> Result<()> {
    if moved.is_empty() {
        return Ok(());
    }
    let path = heads_path(log);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A line cut short by an earlier crash is ended first, so it stays one bad line.
    let mut text = String::new();
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))
            .and_then(|_| f.read_exact(&mut last))
            .with_context(|| format!("reading {}", path.display()))?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    let digest = hex::encode(digest);
    for h in moved {
        text.push_str(&format!(
            "{} {digest} {} {} {}\n",
            chain.as_str(),
            h.partition,
            h.seq,
            hex::encode(h.hash)
        ));
    }
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// The heads a log of several chains had at its newest checkpoint, rebuilt from the newest
/// base checkpoint (or the first) on, in order (each line's signature already checked).
fn replay(
    checkpoints: &[SignedCheckpoint],
    rows: &HeadRows,
) -> std::result::Result<RecordedHeads, String> {
    let from = newest_base(checkpoints).unwrap_or(0);
    let mut heads = RecordedHeads::default();
    for cp in checkpoints.get(from..).unwrap_or_default() {
        let at = |e: String| format!("the checkpoint signed at {} ms: {e}", cp.at_ms);
        let moved = rows.moved(cp.chain, &cp.head);
        match cp.form {
            Form::HeadsBase => heads = RecordedHeads::base(moved, &cp.head, cp.seq).map_err(at)?,
            Form::Heads => heads.apply(moved, &cp.head, cp.seq).map_err(at)?,
            Form::OneChain => {
                return Err(format!(
                    "the checkpoint signed at {} ms signs one chain's head, but this log is kept \
                     as several chains",
                    cp.at_ms
                ));
            }
        }
    }
    Ok(heads)
}

/// Rows recorded in `LOG.heads` for `mine` (one chain's checkpoints, in order) by the newest
/// base and by the checkpoints after it.
fn rows_since_base(mine: &[SignedCheckpoint], rows: &HeadRows) -> (usize, usize) {
    let from = newest_base(mine);
    let count = |c: &SignedCheckpoint| rows.moved(c.chain, &c.head).len();
    let base = from.and_then(|i| mine.get(i)).map_or(0, count);
    let after = mine
        .get(from.map_or(0, |i| i + 1)..)
        .unwrap_or_default()
        .iter()
        .map(count)
        .sum();
    (base, after)
}

/// Rows recorded since the newest base beyond which the service signs a new base, if they
/// also outnumber that base's own (so a base at least halves `LOG.heads`).
pub const BASE_AFTER_ROWS: usize = 100_000;

/// Moves `chain`'s rows that no checkpoint from `base` on names out of `LOG.heads`, into
/// `LOG.heads.AT_MS-SEQ.old`; other chains' rows stay. The archive is written first, then a new
/// `LOG.heads` renamed over the old one, so a crash leaves one whole file or the other. The
/// rows moved.
fn compact_heads(log: &Path, chain: Chain, base: &SignedCheckpoint) -> Result<usize> {
    let path = heads_path(log);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let digest = hex::encode(base.head);
    let (mut kept, mut moved) = (String::new(), String::new());
    // A base signed twice with nothing moved between records the same rows twice: once kept.
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_ascii_whitespace();
        let old = f.next() == Some(chain.as_str()) && f.next() != Some(digest.as_str());
        if old {
            moved.push_str(line);
            moved.push('\n');
        } else if seen.insert(line) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let count = moved.lines().count();
    let archive = beside(&path, &format!(".{}-{}.old", base.at_ms, base.seq));
    write_like(&path, &archive, moved.as_bytes(), false)?;
    write_like(&path, &path, kept.as_bytes(), true)?;
    Ok(count)
}

/// Writes `bytes` to `target` with the owner and mode of `like` (the service that appends to
/// `LOG.heads` must still own it after an operator compacts it): through a new file beside
/// it, renamed over `target` when `replace`, else created only if `target` does not exist.
fn write_like(like: &Path, target: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(like).with_context(|| format!("reading {}", like.display()))?;
    let tmp = beside(target, &format!(".{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        // Only a change of owner needs the right to make it (root); the owner itself has it
        // already.
        let made = f.metadata()?;
        if (made.uid(), made.gid()) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))?;
        }
        f.set_permissions(meta.permissions())?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if replace {
            std::fs::rename(&tmp, target)?;
        } else {
            std::fs::hard_link(&tmp, target).and_then(|()| std::fs::remove_file(&tmp))?;
        }
        // The new name is durable before anything is appended under it.
        match target.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => std::fs::File::open(dir)?.sync_all(),
            None => std::fs::File::open(".")?.sync_all(),
        }
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", target.display()))
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

/// What `audit verify` concludes from a signed checkpoint of a log kept as one chain.
pub async fn check_against(
    store: &ChainStore,
    cp: &SignedCheckpoint,
    public_key: &[u8],
) -> Result<std::result::Result<(), String>> {
    if let Err(e) = cp.verify(public_key) {
        return Ok(Err(format!("the checkpoint itself does not verify: {e}")));
    }
    if cp.form != Form::OneChain {
        return Ok(Err(format!(
            "the checkpoint signed at {} ms signs the heads of several chains, but this log is \
             kept as one chain",
            cp.at_ms
        )));
    }
    let recorded = Checkpoint {
        seq: cp.seq,
        hash: cp.head,
    };
    Ok(recorded
        .check(
            store
                .hash_in(ChainPosition {
                    partition: 0,
                    seq: cp.seq,
                })
                .await?,
        )
        .map_err(|b| format!("against the checkpoint signed at {} ms: {b}", cp.at_ms)))
}

/// What `audit verify` concludes from every checkpoint of the store's chain in a log (each
/// line's signature checked): one chain against each signed head; several chains by replaying
/// every checkpoint's recorded heads, then finding each recorded head still in the store.
pub async fn check_all(
    store: &ChainStore,
    checkpoints: &[SignedCheckpoint],
    public_key: &[u8],
    rows: &HeadRows,
) -> Result<std::result::Result<(), String>> {
    match store.form() {
        Form::OneChain => {
            for cp in checkpoints {
                if let Err(why) = check_against(store, cp, public_key).await? {
                    return Ok(Err(why));
                }
            }
            Ok(Ok(()))
        }
        Form::Heads | Form::HeadsBase => {
            for cp in checkpoints {
                if let Err(e) = cp.verify(public_key) {
                    return Ok(Err(format!("the checkpoint itself does not verify: {e}")));
                }
            }
            let recorded = match replay(checkpoints, rows) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            Ok(store.against(&recorded).await?.map(|_| ()))
        }
    }
}

/// When a checkpoint of a log of several chains is a base, after which `LOG.heads` is
/// compacted (a log of one chain has no `LOG.heads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// Once the rows recorded since the newest base outnumber `BASE_AFTER_ROWS` and that base's.
    WhenGrown,
    /// This checkpoint (`audit checkpoint --base`).
    Now,
}

fn lock_path(log: &Path) -> PathBuf {
    beside(log, ".lock")
}

/// The signer's exclusive lock on the file beside a log.
fn lock_log(log: &Path) -> Result<std::fs::File> {
    let path = lock_path(log);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(lock)
}

/// A log's checkpoints of `chain` and its recorded heads, read together under a shared lock,
/// so that a compaction cannot fall between the two reads. A log copied where its lock file
/// cannot be opened is read without it (nothing signs there).
pub fn read_log_and_heads(
    log: &Path,
    chain: Chain,
    public_key: &[u8],
) -> (Result<Vec<SignedCheckpoint>>, Result<HeadRows>) {
    let lock = match std::fs::File::open(lock_path(log)) {
        Ok(f) => f.lock_shared().is_ok().then_some(f),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, "reading the checkpoint log without its lock");
            }
            None
        }
    };
    let signed = read_log(log, chain, public_key);
    let mut heads = read_heads(log);
    // A missing file reads as no rows, which a log of several chains cannot have once signed.
    if let (Ok(all), Ok(rows)) = (&signed, &heads)
        && rows.0.is_empty()
        && all.iter().any(|c| c.form != Form::OneChain)
        && !heads_path(log).exists()
    {
        heads = Err(anyhow::anyhow!(
            "{} is missing: the checkpoints of a log of several chains record its heads there \
             (restore it from the off-host copy)",
            heads_path(log).display()
        ));
    }
    drop(lock);
    (signed, heads)
}

/// Checks the chain against the log's checkpoints, signs its head and appends it: what
/// `audit checkpoint` and the schedule both do. `None` for an empty chain.
pub async fn checkpoint_now(
    store: &ChainStore,
    key: &CheckpointKey,
    log: &Path,
    now_ms: i64,
    base: Base,
) -> Result<Option<SignedCheckpoint>> {
    // One signer at a time per log (the service's schedule and `audit checkpoint`), held from
    // reading the log to appending and compacting.
    let lock = lock_log(log)?;
    let earlier = read_log(log, store.chain(), &key.public_key())?;
    let rows = read_heads(log)?;
    // Time never goes back in the log, even if the clock does.
    let at_ms = earlier.last().map_or(now_ms, |last| now_ms.max(last.at_ms));
    let (in_base, since) = rows_since_base(&earlier, &rows);
    let base = match base {
        Base::Now => true,
        Base::WhenGrown => since > BASE_AFTER_ROWS.max(in_base),
    };
    let Some((cp, moved)) = sign_head(store, key, &earlier, &rows, base, at_ms).await? else {
        return Ok(None);
    };
    append_heads(log, store.chain(), &cp.head, &moved)?;
    append(log, &cp)?;
    if cp.form == Form::HeadsBase {
        // The base is signed and recorded either way; left uncompacted, LOG.heads still
        // replays, and the next base compacts it.
        match compact_heads(log, store.chain(), &cp) {
            Ok(archived) => tracing::info!(
                chain = cp.chain.as_str(),
                chains = moved.len(),
                archived,
                "base checkpoint signed; earlier rows of LOG.heads archived"
            ),
            Err(e) => tracing::warn!(error = %e, "base checkpoint signed; LOG.heads not compacted"),
        }
    }
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
        match checkpoint_now(&store, &key, &log, now, Base::WhenGrown).await {
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
    let key = load_key(key)?;
    let every = Duration::from_secs(args.checkpoint_every_minutes * 60);
    Ok(Some(tokio::spawn(sign_forever(
        store,
        key,
        log.clone(),
        every,
    ))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use myna_domain::access::chain;
    use myna_domain::person::PersonId;
    use myna_domain::summary::View;
    use myna_store::testsuite::{request, sample_person};
    use myna_store_postgres::testing::TestDb;

    /// ems's view log on PostgreSQL (one chain per bureau, each with a head row): a bureau's
    /// newest view removed and its head row set back with it passes the walk, and fails
    /// against the signed heads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bureau_chain_cut_with_its_head_row_is_found_against_the_checkpoint() {
        use myna_store::ems::EmsStore;
        use myna_store::ems_testsuite::{small, view_record};
        let db = TestDb::create("checkpoint_ems").await.unwrap();
        let store = myna_store_postgres::PgEmsStore::connect(&db.url)
            .await
            .unwrap();
        store.seed_bureau(small("a-fd")).await.unwrap();
        for i in 1..=4 {
            store.record_view(view_record(i, 1)).await.unwrap();
        }
        let chains = ChainStore::Ems(Arc::new(EmsDb::Postgres(store)));
        let (key, _) = CheckpointKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("checkpoints.log");
        let cp = checkpoint_now(&chains, &key, &log, 1_800_000_000_000, Base::WhenGrown)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (cp.chain, cp.form, cp.seq),
            (Chain::EmsViews, Form::Heads, 4)
        );

        let bureau = "(SELECT id FROM bureau WHERE code = 'a-fd')";
        db.execute(&format!(
            "DELETE FROM view_log WHERE bureau_id = {bureau} AND seq = 4"
        ))
        .await
        .unwrap();
        db.execute(&format!(
            "UPDATE view_log_head SET seq = 3, hash = (SELECT hash FROM view_log \
             WHERE bureau_id = {bureau} AND seq = 3) WHERE bureau_id = {bureau}"
        ))
        .await
        .unwrap();
        assert!(matches!(
            chains.verify().await.unwrap(),
            ChainReport::Intact { entries: 3, .. }
        ));
        let signed = read_log(&log, Chain::EmsViews, &key.public_key()).unwrap();
        let found = check_all(
            &chains,
            &signed,
            &key.public_key(),
            &read_heads(&log).unwrap(),
        )
        .await
        .unwrap();
        assert!(
            found.as_ref().is_err_and(|e| e.contains("entry 4")),
            "{found:?}"
        );
        assert!(
            checkpoint_now(&chains, &key, &log, 1_800_000_060_000, Base::WhenGrown)
                .await
                .is_err(),
            "a cut chain was signed"
        );
        drop(chains);
        db.drop_now().await.unwrap();
    }

    /// A person's chain rewritten with recomputed links and then grown: the walk verifies it,
    /// so only the recorded head's hash at its place can tell, and it must, both when
    /// signing and when verifying.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chain_rewritten_and_grown_since_its_checkpoint_is_found() {
        let db = TestDb::create("checkpoint_rewrite").await.unwrap();
        let store = myna_store_postgres::PgProviderStore::connect(&db.url)
            .await
            .unwrap();
        store
            .load_persons(vec![
                sample_person(71, "01EE00000071"),
                sample_person(72, "01EE00000072"),
            ])
            .await
            .unwrap();
        for n in 0..3 {
            store
                .access_records(request("01EE00000071", View::Summary, n))
                .await
                .unwrap();
        }
        store
            .access_records(request("01EE00000072", View::Summary, 9))
            .await
            .unwrap();
        let chains = ChainStore::Provider(Arc::new(ProviderDb::Postgres(store)));
        let (key, _) = CheckpointKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("checkpoints.log");
        checkpoint_now(&chains, &key, &log, 1_800_000_000_000, Base::WhenGrown)
            .await
            .unwrap()
            .unwrap();

        // Entry 2 of person 71 edited, and 2 and 3 relinked, as someone with the database
        // but not the key would.
        let ChainStore::Provider(s) = &chains else {
            unreachable!()
        };
        let mut entries: Vec<_> = s
            .access_log_for(PersonId(71), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.entry)
            .collect();
        entries.reverse();
        let first = chain(None, entries[0].clone());
        let mut edited = entries[1].clone();
        edited.viewer.team = "someone else".into();
        let second = chain(Some((1, first.hash)), edited);
        let third = chain(Some((2, second.hash)), entries[2].clone());
        for (seq, e, team) in [
            (2, &second, "someone else"),
            (3, &third, entries[2].viewer.team.as_str()),
        ] {
            db.execute(&format!(
                "UPDATE access_log SET viewer_team = '{team}', \
                 prev_hash = decode('{}', 'hex'), hash = decode('{}', 'hex') \
                 WHERE person_id = 71 AND seq = {seq}",
                hex::encode(e.prev_hash),
                hex::encode(e.hash)
            ))
            .await
            .unwrap();
        }
        // The chain grows past the rewrite; the walk alone finds nothing.
        s.access_records(request("01EE00000071", View::Summary, 4))
            .await
            .unwrap();
        assert!(matches!(
            chains.verify().await.unwrap(),
            ChainReport::Intact { entries: 5, .. }
        ));

        let signed = read_log(&log, Chain::ProviderAccess, &key.public_key()).unwrap();
        let rows = read_heads(&log).unwrap();
        let found = check_all(&chains, &signed, &key.public_key(), &rows)
            .await
            .unwrap();
        assert!(
            found.as_ref().is_err_and(|e| e.starts_with("chain 71")),
            "{found:?}"
        );
        assert!(
            checkpoint_now(&chains, &key, &log, 1_800_000_060_000, Base::WhenGrown)
                .await
                .is_err(),
            "a rewritten chain was signed"
        );
        drop(chains);
        db.drop_now().await.unwrap();
    }

    /// A base checkpoint records every person's head, so the rows before it leave `LOG.heads`
    /// for an archive: the log still verifies, later checkpoints chain from the base, and a
    /// chain the base recorded that is later cut, or a base row edited, is still found.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_base_checkpoint_compacts_the_recorded_heads_and_still_holds_every_chain() {
        let db = TestDb::create("checkpoint_base").await.unwrap();
        let store = myna_store_postgres::PgProviderStore::connect(&db.url)
            .await
            .unwrap();
        let serial = |i: i64| format!("01EF000000{i:02}");
        store
            .load_persons((81..=84).map(|i| sample_person(i, &serial(i))).collect())
            .await
            .unwrap();
        let chains = ChainStore::Provider(Arc::new(ProviderDb::Postgres(store)));
        let ChainStore::Provider(s) = &chains else {
            unreachable!()
        };
        let (key, _) = CheckpointKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("checkpoints.log");
        let mut at = 1_800_000_000_000;
        let mut sign = async |persons: &[i64], base: Base| {
            for (n, p) in persons.iter().enumerate() {
                s.access_records(request(&serial(*p), View::Summary, n as i64))
                    .await
                    .unwrap();
            }
            at += 60_000;
            checkpoint_now(&chains, &key, &log, at, base)
                .await
                .unwrap()
                .unwrap()
        };
        let verified = async || {
            let signed = read_log(&log, Chain::ProviderAccess, &key.public_key()).unwrap();
            check_all(
                &chains,
                &signed,
                &key.public_key(),
                &read_heads(&log).unwrap(),
            )
            .await
            .unwrap()
        };
        let counts = || {
            let signed = read_log(&log, Chain::ProviderAccess, &key.public_key()).unwrap();
            rows_since_base(&signed, &read_heads(&log).unwrap())
        };
        let heads_lines = || {
            std::fs::read_to_string(heads_path(&log))
                .unwrap()
                .lines()
                .count()
        };

        assert_eq!(sign(&[81, 82], Base::WhenGrown).await.form, Form::Heads);
        assert_eq!(sign(&[83, 81], Base::WhenGrown).await.form, Form::Heads);
        assert_eq!(counts(), (0, 4), "two rows, then two more (81 moved again)");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o640);
        std::fs::set_permissions(heads_path(&log), mode).unwrap();
        let base = sign(&[82], Base::Now).await;
        assert_eq!(
            std::fs::metadata(heads_path(&log))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640,
            "the compacted LOG.heads keeps its mode"
        );
        assert_eq!((base.form, base.seq), (Form::HeadsBase, 5));
        assert_eq!(counts(), (3, 0), "the base records the three chains");
        assert_eq!(heads_lines(), 3, "LOG.heads keeps the base's rows only");
        let archive = dir.path().join(format!(
            "checkpoints.log.heads.{}-{}.old",
            base.at_ms, base.seq
        ));
        assert_eq!(
            std::fs::read_to_string(&archive).unwrap().lines().count(),
            4,
            "the earlier rows are archived"
        );
        assert_eq!(verified().await, Ok(()));

        assert_eq!(sign(&[84], Base::WhenGrown).await.form, Form::Heads);
        assert_eq!(counts(), (3, 1));
        assert_eq!(
            verified().await,
            Ok(()),
            "a checkpoint after the base chains from it"
        );

        // Person 82's chain, recorded only in the base now, cut at its head.
        db.execute("DELETE FROM access_log WHERE person_id = 82 AND seq = 2")
            .await
            .unwrap();
        let found = verified().await;
        assert!(
            found.as_ref().is_err_and(|e| e.starts_with("chain 82")),
            "{found:?}"
        );
        // A base row edited (person 81's head moved on by one) breaks the base's digest.
        let path = heads_path(&log);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited: String = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                if f[2] == "81" {
                    format!("{} {} 81 3 {}\n", f[0], f[1], f[4])
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert_ne!(edited, text);
        std::fs::write(&path, edited).unwrap();
        let found = verified().await;
        assert!(
            found.as_ref().is_err_and(|e| e.contains("base digest")),
            "{found:?}"
        );
        // The base line removed from the log (the rows restored): the lines after it no
        // longer replay.
        std::fs::write(&path, text).unwrap();
        let lines = std::fs::read_to_string(&log).unwrap();
        let without: String = lines
            .lines()
            .filter(|l| !l.starts_with("v3 "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(without.lines().count() + 1, lines.lines().count());
        std::fs::write(&log, without).unwrap();
        let found = verified().await;
        assert!(
            found.as_ref().is_err_and(|e| e.contains("signed digest")),
            "{found:?}"
        );
        drop(chains);
        db.drop_now().await.unwrap();
    }
}
