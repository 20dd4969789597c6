//! `audit verify`: walk the provider's access log and report the first broken link.

use anyhow::{Result, bail};
use myna_store::{ChainReport, ProviderStore};
use myna_store_sqlite::SqliteStore;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of the access log. Exit status 0 if intact, 1 if broken.
    Verify {
        #[arg(long, default_value = "data/provider.db")]
        db: PathBuf,
    },
}

pub async fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { db } => {
            if !db.exists() {
                bail!("{} does not exist", db.display());
            }
            let store = SqliteStore::open(&db)?;
            let report = store.verify_access_log().await?;
            store.close()?;
            match report {
                ChainReport::Intact { entries, head_hash } => {
                    println!(
                        "access log intact: {entries} entries, head {}",
                        head_hash.as_deref().unwrap_or("(empty)")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                ChainReport::Broken {
                    verified,
                    first_break,
                } => {
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
