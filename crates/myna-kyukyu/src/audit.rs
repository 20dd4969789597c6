//! `audit verify`: walk the provider's access log and report the first broken link.

use anyhow::{Result, anyhow, bail};
use myna_domain::access::{ChainBreak, Checkpoint};
use myna_store::{ChainReport, ProviderStore};
use myna_store_sqlite::SqliteStore;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of the access log. Exit status 0 if intact, 1 if broken.
    ///
    /// It prints the head as `SEQ:HASH`. Keep that line somewhere else (a ticket, a print-out, a
    /// second system) and pass it back with `--expect`: removing the newest entries leaves a
    /// shorter chain that verifies on its own, but not against a head recorded earlier.
    Verify {
        #[arg(long, default_value = "data/provider.db")]
        db: PathBuf,
        /// Heads recorded by earlier runs (`SEQ:HASH`); each must still be in the chain.
        #[arg(long, value_name = "SEQ:HASH")]
        expect: Vec<String>,
    },
}

pub async fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { db, expect } => {
            if !db.exists() {
                bail!("{} does not exist", db.display());
            }
            let checkpoints = expect
                .iter()
                .map(|s| {
                    Checkpoint::parse(s)
                        .ok_or_else(|| anyhow!("--expect {s:?} is not SEQ:HASH (64 hex digits)"))
                })
                .collect::<Result<Vec<_>>>()?;
            let store = SqliteStore::open(&db)?;
            let report = store.verify_access_log().await?;
            let mut broken: Option<(u64, ChainBreak)> = None;
            let mut summary = String::new();
            match report {
                ChainReport::Intact { entries, head_hash } => {
                    for cp in &checkpoints {
                        if let Err(b) = cp.check(store.access_log_hash(cp.seq).await?) {
                            broken = Some((entries, b));
                            break;
                        }
                    }
                    summary = match head_hash {
                        Some(h) => format!("{entries} entries, head {entries}:{h}"),
                        None => "0 entries".into(),
                    };
                }
                ChainReport::Broken {
                    verified,
                    first_break,
                } => broken = Some((verified, first_break)),
            }
            store.close()?;
            match broken {
                None => {
                    println!("access log intact: {summary}");
                    if !checkpoints.is_empty() {
                        println!("{} recorded head(s) still present", checkpoints.len());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some((verified, first_break)) => {
                    println!(
                        "access log BROKEN at entry {}: {first_break}",
                        first_break.seq()
                    );
                    println!("{verified} entries before it verified");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
