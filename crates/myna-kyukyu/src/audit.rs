//! `audit …`: walk an audit chain (the provider's access log, ems's view log) and report the
//! first broken link; make the checkpoint key; sign a checkpoint now; check the chain against
//! the latest signed checkpoint.

use crate::checkpoint::{self, ChainStore};
use crate::store::{DbTarget, EmsDb, ProviderDb};
use anyhow::{Result, anyhow, bail};
use myna_domain::access::Checkpoint;
use myna_store::ChainReport;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Which chain.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ChainArg {
    /// The provider's access log (`--db` is the provider's database).
    Provider,
    /// ems's view log (`--db` is ems's database).
    Ems,
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of an audit log. Exit status 0 if intact, 1 if broken.
    ///
    /// It prints the head as `SEQ:HASH`. With `--checkpoints` and `--public-key` it also checks
    /// the chain against the latest signed checkpoint, so a chain rewritten or cut short by
    /// someone with database access, but without the key, is found. `--expect SEQ:HASH` checks
    /// against a head recorded by hand.
    Verify {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        #[arg(long, value_enum, default_value = "provider")]
        chain: ChainArg,
        /// Heads recorded by earlier runs (`SEQ:HASH`); each must still be in the chain.
        #[arg(long, value_name = "SEQ:HASH")]
        expect: Vec<String>,
        /// A checkpoint log (`--checkpoint-log` of the service, or `audit checkpoint`).
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
        /// The checkpoint key's public half (`KEY.pub`, written by `audit keygen`).
        #[arg(long, requires = "checkpoints")]
        public_key: Option<PathBuf>,
        /// Fail if the newest checkpoint is older than this (the service signs every few
        /// minutes, also when nothing changed: an old newest line means lines were removed or
        /// signing stopped).
        #[arg(long, requires = "checkpoints")]
        max_age_minutes: Option<i64>,
        /// The key id the operator recorded off the host when the key was made (`audit
        /// keygen` prints it): a public key swapped in beside a forged log is refused.
        #[arg(long, requires = "checkpoints")]
        key_id: Option<String>,
    },
    /// Make a checkpoint signing key: KEY (owner-only) and KEY.pub.
    Keygen {
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify a chain and append a signed checkpoint of its head to a log.
    Checkpoint {
        #[arg(long, default_value = "data/provider.db")]
        db: DbTarget,
        #[arg(long, value_enum, default_value = "provider")]
        chain: ChainArg,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        log: PathBuf,
        /// Sign a base checkpoint of every chain's head and move the earlier rows of
        /// `LOG.heads` to `LOG.heads.AT_MS.old` (a log of several chains; the service does
        /// this by itself once `LOG.heads` has grown).
        #[arg(long)]
        base: bool,
    },
}

async fn open(db: &DbTarget, chain: ChainArg) -> Result<ChainStore> {
    Ok(match (chain, db) {
        (ChainArg::Provider, db) => {
            ChainStore::Provider(Arc::new(ProviderDb::open_existing(db, "").await?))
        }
        (ChainArg::Ems, db) => ChainStore::Ems(Arc::new(EmsDb::open_existing(db).await?)),
    })
}

pub async fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Keygen { key } => {
            let id = checkpoint::keygen(&key)?;
            println!(
                "checkpoint key {id}: {} (keep it off the database host's backups), public half {}",
                key.display(),
                checkpoint::public_key_path(&key).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint {
            db,
            chain,
            key,
            log,
            base,
        } => {
            let store = open(&db, chain).await?;
            let key = checkpoint::load_key(&key)?;
            let now = chrono::Utc::now().timestamp_millis();
            if base && store.form() == myna_pki::checkpoint::Form::OneChain {
                bail!("--base: a log of one chain (SQLite) has no LOG.heads to compact");
            }
            let base = if base {
                checkpoint::Base::Now
            } else {
                checkpoint::Base::WhenGrown
            };
            match checkpoint::checkpoint_now(&store, &key, &log, now, base).await? {
                Some(cp) => println!("{}", cp.to_line()),
                None => println!("the chain is empty: nothing to sign"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            db,
            chain,
            expect,
            checkpoints,
            public_key,
            max_age_minutes,
            key_id,
        } => {
            let recorded = expect
                .iter()
                .map(|s| {
                    Checkpoint::parse(s)
                        .ok_or_else(|| anyhow!("--expect {s:?} is not SEQ:HASH (64 hex digits)"))
                })
                .collect::<Result<Vec<_>>>()?;
            let store = open(&db, chain).await?;
            let name = match chain {
                ChainArg::Provider => "access log",
                ChainArg::Ems => "view log",
            };
            let mut broken: Option<String> = None;
            // Every checkpoint in the log, each signature checked, in order.
            let signed = match (&checkpoints, &public_key) {
                (Some(log), Some(key)) => {
                    let key = checkpoint::load_public_key(key)?;
                    let found = myna_pki::checkpoint::key_id(&key);
                    match &key_id {
                        Some(pinned) if !pinned.eq_ignore_ascii_case(&found) => bail!(
                            "the public key is {found}, not the key {pinned} recorded for this \
                             system: it was replaced"
                        ),
                        Some(_) => {}
                        None => eprintln!(
                            "note: without --key-id, a key swapped in with a forged log is not \
                             detected; the key id is {found}"
                        ),
                    }
                    let (all, rows) = checkpoint::read_log_and_heads(log, store.chain(), &key);
                    match all {
                        Ok(all) if all.is_empty() => bail!(
                            "{} holds no checkpoint of the {} chain",
                            log.display(),
                            store.chain().as_str()
                        ),
                        Ok(all) => Some((all, key, rows)),
                        Err(e) => {
                            broken = Some(format!("{name} BROKEN: the checkpoint log: {e:#}"));
                            None
                        }
                    }
                }
                _ => None,
            };
            if let (Some((all, _, _)), Some(minutes)) = (&signed, max_age_minutes)
                && let Some(newest) = all.last()
            {
                let age_ms = chrono::Utc::now().timestamp_millis() - newest.at_ms;
                if age_ms > minutes.saturating_mul(60_000) {
                    broken = Some(format!(
                        "{name} BROKEN: the newest checkpoint is {} min old (more than {minutes}): \
                         lines were removed from the log or signing stopped",
                        age_ms / 60_000
                    ));
                }
            }
            let mut summary = String::new();
            match store.verify().await? {
                ChainReport::Intact {
                    entries,
                    partitions,
                    head_hash,
                } => {
                    for cp in &recorded {
                        if let Err(b) = cp.check(store.hash_at(cp.seq).await?) {
                            broken = Some(format!("{name} BROKEN at entry {}: {b}", b.seq()));
                            break;
                        }
                    }
                    if broken.is_none()
                        && let Some((all, key, rows)) = &signed
                    {
                        match rows {
                            Ok(rows) => {
                                if let Err(why) =
                                    checkpoint::check_all(&store, all, key, rows).await?
                                {
                                    broken = Some(format!("{name} BROKEN {why}"));
                                }
                            }
                            Err(e) => {
                                broken = Some(format!("{name} BROKEN: the recorded heads: {e:#}"));
                            }
                        }
                    }
                    summary = match head_hash {
                        Some(h) => format!("{entries} entries, head {entries}:{h}"),
                        None if partitions > 1 || (entries > 0 && partitions == 1) => {
                            format!("{entries} entries in {partitions} chains")
                        }
                        None => "0 entries".into(),
                    };
                }
                report @ ChainReport::Broken { .. } => {
                    let (kind, named): (_, Box<dyn Fn(i64) -> String>) = match &store {
                        ChainStore::Provider(_) => ("person", Box::new(|c| c.to_string())),
                        ChainStore::Ems(s) => (
                            "bureau",
                            Box::new(crate::ems_cli::bureau_names(s.as_ref()).await),
                        ),
                    };
                    broken = report.describe_break(kind, named).map(|b| {
                        // The checkpoints need the walk's heads: not compared on a broken walk.
                        let unchecked = if signed.is_some() {
                            "\nthe checkpoints are compared once the walk is intact"
                        } else {
                            ""
                        };
                        format!("{name} {b}{unchecked}")
                    });
                }
            }
            // The provider's store folds its WAL back on close (the chain file stays tidy).
            if let ChainStore::Provider(s) = store
                && let Ok(s) = Arc::try_unwrap(s)
            {
                s.close()?;
            }
            match broken {
                None => {
                    println!("{name} intact: {summary}");
                    if !recorded.is_empty() {
                        println!("{} recorded head(s) still present", recorded.len());
                    }
                    if let Some((all, _, _)) = &signed
                        && let Some(newest) = all.last()
                    {
                        println!(
                            "matches all {} signed checkpoints, the newest of entry {} (key {})",
                            all.len(),
                            newest.seq,
                            newest.key_id
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(report) => {
                    println!("{report}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
