//! The database a command works on, named by `--db`: a SQLite file (the embedded default) or a
//! PostgreSQL server (`postgres://…`), and the provider store over either.

use anyhow::{Result, bail};
use myna_domain::access::{AccessEntry, Hash32};
use myna_domain::person::PersonId;
use myna_store::{
    AccessGranted, AccessRequest, ChainPosition, ChainReport, DatasetInfo, Organisation,
    PersonRecordSet, ProviderStore, StoreError,
};
use myna_store_postgres::PgProviderStore;
use myna_store_sqlite::SqliteStore;
use std::path::PathBuf;

/// `--db`: a file path, or a `postgres://` / `postgresql://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::str::FromStr for DbTarget {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(
            if s.starts_with("postgres://") || s.starts_with("postgresql://") {
                DbTarget::Postgres(s.to_owned())
            } else {
                DbTarget::Sqlite(PathBuf::from(s))
            },
        )
    }
}

/// The path, or the URL without its password.
impl std::fmt::Display for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbTarget::Sqlite(p) => write!(f, "{}", p.display()),
            DbTarget::Postgres(url) => f.write_str(&myna_store_postgres::redacted(url)),
        }
    }
}

/// The provider's store on either backend.
pub enum ProviderDb {
    Sqlite(SqliteStore),
    Postgres(PgProviderStore),
}

impl ProviderDb {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn open(target: &DbTarget) -> Result<Self> {
        Ok(match target {
            DbTarget::Sqlite(path) => ProviderDb::Sqlite(SqliteStore::open(path)?),
            DbTarget::Postgres(url) => ProviderDb::Postgres(PgProviderStore::connect(url).await?),
        })
    }

    /// Opens a database that must already hold a provider (a SQLite file that exists).
    pub async fn open_existing(target: &DbTarget, hint: &str) -> Result<Self> {
        if let DbTarget::Sqlite(path) = target
            && !path.exists()
        {
            bail!("{} does not exist{hint}", path.display());
        }
        Self::open(target).await
    }

    /// Finishes queued writes and closes the connections.
    pub fn close(self) -> Result<()> {
        match self {
            ProviderDb::Sqlite(s) => s.close()?,
            ProviderDb::Postgres(_) => {}
        }
        Ok(())
    }
}

macro_rules! either {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            ProviderDb::Sqlite($s) => $call.await,
            ProviderDb::Postgres($s) => $call.await,
        }
    };
}

impl ProviderStore for ProviderDb {
    async fn access_records(&self, request: AccessRequest) -> Result<AccessGranted, StoreError> {
        either!(self, s => s.access_records(request))
    }
    async fn authenticate(
        &self,
        org_id: &str,
        secret: &str,
    ) -> Result<Option<Organisation>, StoreError> {
        either!(self, s => s.authenticate(org_id, secret))
    }
    async fn organisation(&self, org_id: &str) -> Result<Option<Organisation>, StoreError> {
        either!(self, s => s.organisation(org_id))
    }
    async fn organisation_for_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
    ) -> Result<Option<Organisation>, StoreError> {
        either!(self, s => s.organisation_for_certificate(org_id, public_key_sha256))
    }
    async fn revoke_organisation_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        either!(self, s => s.revoke_organisation_certificate(org_id, public_key_sha256, reason))
    }
    async fn set_organisation_disabled(
        &self,
        org_id: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        either!(self, s => s.set_organisation_disabled(org_id, disabled))
    }
    async fn add_organisation(
        &self,
        org: Organisation,
        secret_hash: String,
    ) -> Result<(), StoreError> {
        either!(self, s => s.add_organisation(org, secret_hash))
    }
    async fn revoke_serial(&self, serial_hex: &str, reason: &str) -> Result<(), StoreError> {
        either!(self, s => s.revoke_serial(serial_hex, reason))
    }
    async fn load_persons(&self, persons: Vec<PersonRecordSet>) -> Result<(), StoreError> {
        either!(self, s => s.load_persons(persons))
    }
    async fn dataset_info(&self) -> Result<DatasetInfo, StoreError> {
        either!(self, s => s.dataset_info())
    }
    async fn set_dataset_info(&self, info: DatasetInfo) -> Result<(), StoreError> {
        either!(self, s => s.set_dataset_info(info))
    }
    async fn verify_access_log(&self) -> Result<ChainReport, StoreError> {
        either!(self, s => s.verify_access_log())
    }
    async fn access_log_hash(&self, at: ChainPosition) -> Result<Option<Hash32>, StoreError> {
        either!(self, s => s.access_log_hash(at))
    }
    async fn access_log_for(
        &self,
        person: PersonId,
        limit: u32,
    ) -> Result<Vec<AccessEntry>, StoreError> {
        either!(self, s => s.access_log_for(person, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_postgres_and_anything_else_a_file() {
        assert_eq!(
            "postgres://u:p@h/db".parse::<DbTarget>(),
            Ok(DbTarget::Postgres("postgres://u:p@h/db".into()))
        );
        assert!(matches!(
            "postgresql://h/db".parse::<DbTarget>(),
            Ok(DbTarget::Postgres(_))
        ));
        assert_eq!(
            "data/provider.db".parse::<DbTarget>(),
            Ok(DbTarget::Sqlite("data/provider.db".into()))
        );
        assert_eq!(
            "postgres://u:p@h/db"
                .parse::<DbTarget>()
                .map(|t| t.to_string()),
            Ok("postgres://u:***@h/db".into())
        );
    }
}
