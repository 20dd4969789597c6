//! The database a command works on, named by `--db`: a SQLite file (the embedded default) or a
//! PostgreSQL server (`postgres://…`), and the provider store over either.

use anyhow::{Result, bail};
use myna_domain::access::Hash32;
use myna_domain::person::PersonId;
use myna_store::{
    AccessGranted, AccessRequest, ChainPosition, ChainReport, DatasetInfo, Organisation,
    PersonRecordSet, ProviderStore, StoreError,
};
use myna_store_postgres::{PgEmsStore, PgProviderStore};
use myna_store_sqlite::{EmsSqlite, SqliteStore};
use std::path::PathBuf;

/// `--db`: a file path, or a `postgres://` / `postgresql://` URL. Printed (`Display` and
/// `Debug` alike) without its password.
#[derive(Clone, PartialEq, Eq)]
pub enum DbTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::str::FromStr for DbTarget {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(
            if ["postgres://", "postgresql://"].iter().any(|scheme| {
                s.get(..scheme.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
            }) {
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

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbTarget({self})")
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

/// The same call on whichever backend the enum holds.
macro_rules! either {
    ($db:ident, $self:ident, $s:ident => $call:expr) => {
        match $self {
            $db::Sqlite($s) => $call.await,
            $db::Postgres($s) => $call.await,
        }
    };
}

impl ProviderStore for ProviderDb {
    async fn access_records(&self, request: AccessRequest) -> Result<AccessGranted, StoreError> {
        either!(ProviderDb, self, s => s.access_records(request))
    }
    async fn authenticate(
        &self,
        org_id: &str,
        secret: &str,
    ) -> Result<Option<Organisation>, StoreError> {
        either!(ProviderDb, self, s => s.authenticate(org_id, secret))
    }
    async fn organisation(&self, org_id: &str) -> Result<Option<Organisation>, StoreError> {
        either!(ProviderDb, self, s => s.organisation(org_id))
    }
    async fn organisation_for_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
    ) -> Result<Option<Organisation>, StoreError> {
        either!(ProviderDb, self, s => s.organisation_for_certificate(org_id, public_key_sha256))
    }
    async fn revoke_organisation_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        either!(ProviderDb, self, s => s.revoke_organisation_certificate(org_id, public_key_sha256, reason))
    }
    async fn set_organisation_disabled(
        &self,
        org_id: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        either!(ProviderDb, self, s => s.set_organisation_disabled(org_id, disabled))
    }
    async fn add_organisation(
        &self,
        org: Organisation,
        secret_hash: String,
    ) -> Result<(), StoreError> {
        either!(ProviderDb, self, s => s.add_organisation(org, secret_hash))
    }
    async fn revoke_serial(&self, serial_hex: &str, reason: &str) -> Result<(), StoreError> {
        either!(ProviderDb, self, s => s.revoke_serial(serial_hex, reason))
    }
    async fn load_persons(&self, persons: Vec<PersonRecordSet>) -> Result<(), StoreError> {
        either!(ProviderDb, self, s => s.load_persons(persons))
    }
    async fn dataset_info(&self) -> Result<DatasetInfo, StoreError> {
        either!(ProviderDb, self, s => s.dataset_info())
    }
    async fn set_claims_through(&self, date: chrono::NaiveDate) -> Result<(), StoreError> {
        either!(ProviderDb, self, s => s.set_claims_through(date))
    }

    async fn set_dataset_info(&self, info: DatasetInfo) -> Result<(), StoreError> {
        either!(ProviderDb, self, s => s.set_dataset_info(info))
    }
    async fn verify_access_log(&self) -> Result<ChainReport, StoreError> {
        either!(ProviderDb, self, s => s.verify_access_log())
    }
    async fn access_log_hash(&self, at: ChainPosition) -> Result<Option<Hash32>, StoreError> {
        either!(ProviderDb, self, s => s.access_log_hash(at))
    }
    async fn access_log_walk(
        &self,
        places: std::collections::BTreeMap<i64, i64>,
    ) -> Result<myna_store::ChainWalk, StoreError> {
        either!(ProviderDb, self, s => s.access_log_walk(places))
    }
    async fn access_log_for(
        &self,
        person: PersonId,
        limit: u32,
    ) -> Result<Vec<(ChainPosition, myna_domain::access::ChainedEntry)>, StoreError> {
        either!(ProviderDb, self, s => s.access_log_for(person, limit))
    }
    async fn card_holder(&self, serial_hex: &str) -> Result<PersonId, StoreError> {
        either!(ProviderDb, self, s => s.card_holder(serial_hex))
    }
    async fn record_hospital_read(
        &self,
        report: myna_store::HospitalReadReport,
    ) -> Result<myna_store::HospitalReadLogged, StoreError> {
        either!(ProviderDb, self, s => s.record_hospital_read(report))
    }
    async fn organisation_names(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        either!(ProviderDb, self, s => s.organisation_names())
    }
    async fn import_batch(
        &self,
        batch: myna_store::import::ImportBatch,
    ) -> Result<myna_store::import::Imported, StoreError> {
        either!(ProviderDb, self, s => s.import_batch(batch))
    }
}

/// ems's store on either backend.
pub enum EmsDb {
    Sqlite(EmsSqlite),
    Postgres(PgEmsStore),
}

impl EmsDb {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn open(target: &DbTarget) -> Result<Self> {
        Ok(match target {
            DbTarget::Sqlite(path) => EmsDb::Sqlite(EmsSqlite::open(path)?),
            DbTarget::Postgres(url) => EmsDb::Postgres(PgEmsStore::connect(url).await?),
        })
    }

    /// Opens a database that must already hold ems's data (a SQLite file that exists).
    pub async fn open_existing(target: &DbTarget) -> Result<Self> {
        if let DbTarget::Sqlite(path) = target
            && !path.exists()
        {
            bail!("{} does not exist", path.display());
        }
        Self::open(target).await
    }
}

mod ems_delegation {
    use super::EmsDb;
    use myna_domain::access::ChainedEntry;
    use myna_domain::hospitals::HospitalStatus;
    use myna_domain::incident::ViewRecord;
    use myna_store::ems::*;
    use myna_store::{ChainPosition, ChainReport, StoreError};

    impl EmsStore for EmsDb {
        async fn publish_change(&self, note: ChangeNote) {
            either!(EmsDb, self, s => s.publish_change(note))
        }
        async fn follow_changes(&self, deliver: ChangeSink) -> Result<(), StoreError> {
            either!(EmsDb, self, s => s.follow_changes(deliver))
        }
        async fn seed_bureau(&self, seed: BureauSeed) -> Result<BureauId, StoreError> {
            either!(EmsDb, self, s => s.seed_bureau(seed))
        }
        async fn set_provider(
            &self,
            bureau: BureauId,
            url: &str,
            credential_file: &str,
        ) -> Result<(), StoreError> {
            either!(EmsDb, self, s => s.set_provider(bureau, url, credential_file))
        }
        async fn set_public_contact(
            &self,
            bureau: BureauId,
            contact: &str,
        ) -> Result<(), StoreError> {
            either!(EmsDb, self, s => s.set_public_contact(bureau, contact))
        }
        async fn bureau(&self, code: &str) -> Result<Option<Bureau>, StoreError> {
            either!(EmsDb, self, s => s.bureau(code))
        }
        async fn bureaus(&self) -> Result<Vec<Bureau>, StoreError> {
            either!(EmsDb, self, s => s.bureaus())
        }
        async fn bureau_by_id(&self, id: BureauId) -> Result<Option<Bureau>, StoreError> {
            either!(EmsDb, self, s => s.bureau_by_id(id))
        }
        async fn teams(&self, bureau: BureauId) -> Result<Vec<Team>, StoreError> {
            either!(EmsDb, self, s => s.teams(bureau))
        }
        async fn account(
            &self,
            bureau: BureauId,
            login: &str,
        ) -> Result<Option<Account>, StoreError> {
            either!(EmsDb, self, s => s.account(bureau, login))
        }
        async fn add_account(
            &self,
            bureau: BureauId,
            account: AccountSeed,
        ) -> Result<AccountId, StoreError> {
            either!(EmsDb, self, s => s.add_account(bureau, account))
        }
        async fn set_password(
            &self,
            bureau: BureauId,
            login: &str,
            password_hash: String,
        ) -> Result<bool, StoreError> {
            either!(EmsDb, self, s => s.set_password(bureau, login, password_hash))
        }
        async fn sign_in_failed(
            &self,
            bureau: BureauId,
            account: AccountId,
            now_ms: i64,
            policy: LockoutPolicy,
        ) -> Result<Option<Account>, StoreError> {
            either!(EmsDb, self, s => s.sign_in_failed(bureau, account, now_ms, policy))
        }
        async fn sign_in_succeeded(
            &self,
            bureau: BureauId,
            account: AccountId,
            now_ms: i64,
        ) -> Result<bool, StoreError> {
            either!(EmsDb, self, s => s.sign_in_succeeded(bureau, account, now_ms))
        }
        async fn clear_sign_in_failures(
            &self,
            bureau: BureauId,
            login: &str,
        ) -> Result<bool, StoreError> {
            either!(EmsDb, self, s => s.clear_sign_in_failures(bureau, login))
        }
        async fn accounts_with_failures(
            &self,
            bureau: BureauId,
        ) -> Result<Vec<Account>, StoreError> {
            either!(EmsDb, self, s => s.accounts_with_failures(bureau))
        }
        async fn create_session(
            &self,
            token_hash: String,
            account: AccountId,
            terminal: Option<TerminalId>,
            expires_ms: i64,
        ) -> Result<(), StoreError> {
            either!(EmsDb, self, s => s.create_session(token_hash, account, terminal, expires_ms))
        }
        async fn session(
            &self,
            token_hash: &str,
            now_ms: i64,
        ) -> Result<Option<Session>, StoreError> {
            either!(EmsDb, self, s => s.session(token_hash, now_ms))
        }
        async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
            either!(EmsDb, self, s => s.end_session(token_hash))
        }
        async fn add_terminal(
            &self,
            bureau: BureauId,
            team: TeamId,
            label: &str,
            token_hash: String,
        ) -> Result<TerminalId, StoreError> {
            either!(EmsDb, self, s => s.add_terminal(bureau, team, label, token_hash))
        }
        async fn revoke_terminal(
            &self,
            bureau: BureauId,
            terminal: TerminalId,
        ) -> Result<bool, StoreError> {
            either!(EmsDb, self, s => s.revoke_terminal(bureau, terminal))
        }
        async fn terminal_by_token(
            &self,
            token_hash: &str,
        ) -> Result<Option<Terminal>, StoreError> {
            either!(EmsDb, self, s => s.terminal_by_token(token_hash))
        }
        async fn terminals(&self, bureau: BureauId) -> Result<Vec<Terminal>, StoreError> {
            either!(EmsDb, self, s => s.terminals(bureau))
        }
        async fn terminal_by_certificate(
            &self,
            cert_sha256: &str,
        ) -> Result<Option<Terminal>, StoreError> {
            either!(EmsDb, self, s => s.terminal_by_certificate(cert_sha256))
        }
        async fn create_invite(
            &self,
            bureau: BureauId,
            invite: NewInvite,
            now_ms: i64,
        ) -> Result<Option<i64>, StoreError> {
            either!(EmsDb, self, s => s.create_invite(bureau, invite, now_ms))
        }
        async fn open_invites(
            &self,
            bureau: BureauId,
            now_ms: i64,
        ) -> Result<Vec<OpenInvite>, StoreError> {
            either!(EmsDb, self, s => s.open_invites(bureau, now_ms))
        }
        async fn cancel_invite(
            &self,
            bureau: BureauId,
            invite: i64,
            now_ms: i64,
        ) -> Result<bool, StoreError> {
            either!(EmsDb, self, s => s.cancel_invite(bureau, invite, now_ms))
        }
        async fn request_enrollment(
            &self,
            bureau: BureauId,
            request: NewEnrollment,
            limits: EnrollmentLimits,
            now_ms: i64,
        ) -> Result<Filing, StoreError> {
            either!(EmsDb, self, s => s.request_enrollment(bureau, request, limits, now_ms))
        }
        async fn enrollment_by_poll(
            &self,
            poll_hash: &str,
        ) -> Result<Option<Enrollment>, StoreError> {
            either!(EmsDb, self, s => s.enrollment_by_poll(poll_hash))
        }
        async fn enrollments(
            &self,
            bureau: BureauId,
            pending_only: bool,
        ) -> Result<Vec<Enrollment>, StoreError> {
            either!(EmsDb, self, s => s.enrollments(bureau, pending_only))
        }
        async fn approve_enrollment(
            &self,
            bureau: BureauId,
            enrollment: EnrollmentId,
            certificate: IssuedCertificate,
            limits: EnrollmentLimits,
            now_ms: i64,
        ) -> Result<Option<TerminalId>, StoreError> {
            either!(EmsDb, self, s => s.approve_enrollment(bureau, enrollment, certificate, limits, now_ms))
        }
        async fn reject_enrollment(
            &self,
            bureau: BureauId,
            enrollment: EnrollmentId,
            now_ms: i64,
        ) -> Result<bool, StoreError> {
            either!(EmsDb, self, s => s.reject_enrollment(bureau, enrollment, now_ms))
        }
        async fn create_incident(
            &self,
            bureau: BureauId,
            created: NewEvent,
            now_ms: i64,
        ) -> Result<IncidentRecord, AppendError> {
            either!(EmsDb, self, s => s.create_incident(bureau, created, now_ms))
        }
        async fn append(
            &self,
            bureau: BureauId,
            incident: IncidentId,
            event: NewEvent,
            now_ms: i64,
        ) -> Result<Appended, AppendError> {
            either!(EmsDb, self, s => s.append(bureau, incident, event, now_ms))
        }
        async fn incident(
            &self,
            bureau: BureauId,
            incident: IncidentId,
        ) -> Result<Option<IncidentRecord>, StoreError> {
            either!(EmsDb, self, s => s.incident(bureau, incident))
        }
        async fn incidents(
            &self,
            bureau: BureauId,
            filter: IncidentFilter,
        ) -> Result<Vec<IncidentRecord>, StoreError> {
            either!(EmsDb, self, s => s.incidents(bureau, filter))
        }
        async fn record_view(&self, record: ViewRecord) -> Result<ChainPosition, StoreError> {
            either!(EmsDb, self, s => s.record_view(record))
        }
        async fn due_hospital_reads(
            &self,
            now_ms: i64,
            limit: u32,
        ) -> Result<Vec<myna_store::ems::PendingHospitalRead>, StoreError> {
            either!(EmsDb, self, s => s.due_hospital_reads(now_ms, limit))
        }
        async fn hospital_read_outbox(
            &self,
            bureau: &str,
        ) -> Result<myna_store::ems::HospitalReadOutbox, StoreError> {
            either!(EmsDb, self, s => s.hospital_read_outbox(bureau))
        }
        async fn requeue_refused_hospital_reads(
            &self,
            bureau: &str,
            now_ms: i64,
        ) -> Result<u64, StoreError> {
            either!(EmsDb, self, s => s.requeue_refused_hospital_reads(bureau, now_ms))
        }
        async fn settle_hospital_read(
            &self,
            at: ChainPosition,
            now_ms: i64,
            outcome: myna_store::ems::HospitalReadOutcome,
        ) -> Result<bool, StoreError> {
            either!(EmsDb, self, s => s.settle_hospital_read(at, now_ms, outcome))
        }
        async fn incident_by_number(
            &self,
            bureau: BureauId,
            number: &str,
        ) -> Result<Option<IncidentRecord>, StoreError> {
            either!(EmsDb, self, s => s.incident_by_number(bureau, number))
        }
        async fn viewed_incident_times(
            &self,
            bureau: BureauId,
        ) -> Result<Vec<(String, myna_domain::review::IncidentTimes)>, StoreError> {
            either!(EmsDb, self, s => s.viewed_incident_times(bureau))
        }
        async fn exception_views(
            &self,
            bureau: &str,
        ) -> Result<Vec<(ChainPosition, ChainedEntry<ViewRecord>)>, StoreError> {
            either!(EmsDb, self, s => s.exception_views(bureau))
        }
        async fn record_review(
            &self,
            record: myna_domain::review::ReviewRecord,
        ) -> Result<Option<ChainPosition>, StoreError> {
            either!(EmsDb, self, s => s.record_review(record))
        }
        async fn reviews(
            &self,
            bureau: &str,
        ) -> Result<Vec<ChainedEntry<myna_domain::review::ReviewRecord>>, StoreError> {
            either!(EmsDb, self, s => s.reviews(bureau))
        }
        async fn verify_review_log(&self) -> Result<ChainReport, StoreError> {
            either!(EmsDb, self, s => s.verify_review_log())
        }
        async fn load_incidents(
            &self,
            bureau: BureauId,
            incidents: Vec<PastIncident>,
        ) -> Result<Vec<IncidentId>, AppendError> {
            either!(EmsDb, self, s => s.load_incidents(bureau, incidents))
        }
        async fn incident_facts(
            &self,
            bureau: BureauId,
            from_ms: i64,
            to_ms: i64,
        ) -> Result<Vec<(IncidentId, myna_domain::stats::IncidentFacts)>, StoreError> {
            either!(EmsDb, self, s => s.incident_facts(bureau, from_ms, to_ms))
        }
        async fn view_records(
            &self,
            bureau: &str,
            limit: u32,
        ) -> Result<Vec<ChainedEntry<ViewRecord>>, StoreError> {
            either!(EmsDb, self, s => s.view_records(bureau, limit))
        }
        async fn verify_view_log(&self) -> Result<ChainReport, StoreError> {
            either!(EmsDb, self, s => s.verify_view_log())
        }
        async fn view_log_hash(
            &self,
            at: ChainPosition,
        ) -> Result<Option<myna_domain::access::Hash32>, StoreError> {
            either!(EmsDb, self, s => s.view_log_hash(at))
        }
        async fn view_log_walk(
            &self,
            places: std::collections::BTreeMap<i64, i64>,
        ) -> Result<myna_store::ChainWalk, StoreError> {
            either!(EmsDb, self, s => s.view_log_walk(places))
        }
        async fn set_hospital_status(
            &self,
            bureau: BureauId,
            change: StatusChange,
        ) -> Result<(), StoreError> {
            either!(EmsDb, self, s => s.set_hospital_status(bureau, change))
        }
        async fn hospital_statuses(
            &self,
            bureau: BureauId,
        ) -> Result<Vec<HospitalStatus>, StoreError> {
            either!(EmsDb, self, s => s.hospital_statuses(bureau))
        }
        async fn hospital_status_history(
            &self,
            bureau: BureauId,
            hospital: &str,
            limit: u32,
        ) -> Result<Vec<StatusChange>, StoreError> {
            either!(EmsDb, self, s => s.hospital_status_history(bureau, hospital, limit))
        }
        async fn save_handoff(
            &self,
            bureau: BureauId,
            incident: IncidentId,
            snapshot: HandoffSnapshot,
        ) -> Result<(), StoreError> {
            either!(EmsDb, self, s => s.save_handoff(bureau, incident, snapshot))
        }
        async fn purge_handoffs(&self, now_ms: i64) -> Result<u64, StoreError> {
            either!(EmsDb, self, s => s.purge_handoffs(now_ms))
        }
        async fn handoffs(
            &self,
            bureau: BureauId,
            incident: IncidentId,
        ) -> Result<Vec<HandoffSnapshot>, StoreError> {
            either!(EmsDb, self, s => s.handoffs(bureau, incident))
        }
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
        let upper = "POSTGRES://u:s3cret@h/db".parse::<DbTarget>();
        assert!(matches!(upper, Ok(DbTarget::Postgres(_))), "{upper:?}");
        assert!(!format!("{upper:?}").contains("s3cret"));
    }
}
