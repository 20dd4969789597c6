//! Storage of the `provider` role (and, in `ems`, of the `ems` role) behind one trait each, so SQLite (embedded default) and PostgreSQL
//! (scale-out) backends are interchangeable and pass the same conformance suite.

pub mod columns;
pub mod ems;
#[cfg(feature = "testsuite")]
pub mod ems_testsuite;
pub mod import;
#[cfg(feature = "testsuite")]
pub mod testsuite;

use chrono::NaiveDate;
use myna_domain::access::{AccessEntry, ChainBreak, ChainedEntry};
use myna_domain::person::{Person, PersonId};
use myna_domain::records::MedicalRecords;
use myna_domain::summary::View;
use sha2::{Digest, Sha256};
use std::future::Future;
use subtle::ConstantTimeEq;

/// One person as loaded into the provider: demographics, the link from their current
/// auth-certificate serial (the 機関別符号 stand-in), and their records.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRecordSet {
    pub person: Person,
    pub cert_serial: String,
    pub records: MedicalRecords,
}

/// Facts about the loaded dataset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatasetInfo {
    pub persons: u64,
    pub seed: Option<u64>,
    pub generated_as_of: Option<NaiveDate>,
    /// Claims data covers care up to this date.
    pub claims_through: Option<NaiveDate>,
}

/// A request to read a person's records, to be logged in the same transaction.
#[derive(Debug, Clone)]
pub struct AccessRequest {
    pub serial_hex: String,
    pub view: View,
    pub today: NaiveDate,
    /// The log entry; its `person_id` is filled in by the store once the serial is resolved.
    pub entry: AccessEntry,
}

/// What the store returns for an access: everything needed to build the summary.
#[derive(Debug, Clone)]
pub struct AccessGranted {
    pub person: Person,
    pub records: MedicalRecords,
    pub claims_through: Option<NaiveDate>,
    /// The access-log entry written for this access: its id, unique in the log and sent to
    /// the caller, and its place in its chain.
    pub access_id: i64,
    pub position: ChainPosition,
}

/// An entry's place in a log that is a set of hash chains, one per partition (the log's
/// distribution key). An append reads and extends only its own partition's chain, so appends
/// to different partitions never wait for one another, and each chain verifies on its own.
/// SQLite, with its single writer, keeps one chain (partition 0); PostgreSQL keeps one per
/// person for the provider's access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainPosition {
    pub partition: i64,
    pub seq: i64,
}

/// A hospital's read of a crew's copy, as the bureau (`organisation_id`) reports it: to be
/// logged in the chain of the person whose access `read.source_access_id` is. The store names
/// the hospital from its own institution master when it holds the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HospitalReadReport {
    /// The authenticated reporting organisation: only its own accesses are found.
    pub organisation_id: String,
    /// The crew's access named `incident_ref` too; both must match.
    pub incident_ref: String,
    /// The hospital staff member's login.
    pub staff: String,
    /// Server time at the provider.
    pub at_ms: i64,
    pub read: myna_domain::access::HospitalRead,
}

/// The entry that records a hospital's read of a crew's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HospitalReadLogged {
    pub access_id: i64,
    pub position: ChainPosition,
    /// False when that hospital's read of that access was logged before (this report, sent
    /// again, or a later read) and nothing was written now.
    pub new: bool,
}

/// How far the bureau's clock may be behind the provider's: a read may be dated this much
/// before the crew's access it follows.
pub const HOSPITAL_READ_SKEW_MS: i64 = 5 * 60 * 1000;
/// The latest a read may follow the crew's access: a bureau keeps a copy for at most twice its
/// view window, and no window is configured beyond a few days.
pub const HOSPITAL_READ_WITHIN_MS: i64 = 7 * 24 * 3600 * 1000;
/// Hospitals' reads logged per crew access: each hospital once (its first read), and no more
/// than this many hospitals (a patient is re-routed a few times at most), so that a bureau
/// cannot bury a patient's history under reports.
pub const MAX_HOSPITALS_PER_ACCESS: usize = 5;

/// Names the hospital from the institution master's `name` for its code, when the master has
/// one that reads as a name (1–64 characters, no control characters); otherwise the bureau's
/// name stands.
pub fn name_from_master(report: &mut HospitalReadReport, name: Option<String>) {
    if let Some(name) =
        name.filter(|n| myna_domain::access::check_identifier("institution name", n).is_ok())
    {
        report.read.hospital_name = name;
    }
}

/// The entry a hospital read appends after the crew's access `source` whose copy was read:
/// the crew's fields (person, serial, purpose, consent, view, team), the hospital's staff
/// member as the viewer, and the read. A read dated outside the copy's life is refused.
pub fn hospital_read_entry(
    source: &AccessEntry,
    report: &HospitalReadReport,
) -> Result<AccessEntry, StoreError> {
    let after = report.read.read_at_ms.saturating_sub(source.at_ms);
    if !(-HOSPITAL_READ_SKEW_MS..=HOSPITAL_READ_WITHIN_MS).contains(&after) {
        return Err(StoreError::ReadOutOfTime);
    }
    Ok(AccessEntry {
        at_ms: report.at_ms,
        viewer: myna_domain::access::Viewer {
            crew_member: report.staff.clone(),
            ..source.viewer.clone()
        },
        hospital_read: Some(myna_domain::access::HospitalRead {
            // A read within the clocks' allowance before the access is dated with it: the
            // hospital cannot have read the copy before the crew's access obtained it.
            read_at_ms: report.read.read_at_ms.max(source.at_ms),
            ..report.read.clone()
        }),
        // The store gives the read an id of its own.
        access_id: None,
        ..source.clone()
    })
}

/// What the log holds on a crew's access before a hospital's read of it is appended: the
/// hospitals' reads of it, in log order, each as its institution code and its place `P`.
/// Answers the place of `code`'s first read, to return instead of appending, or why nothing
/// may be appended.
pub fn hospital_read_logged_before<P>(
    logged: Vec<(String, P)>,
    code: &str,
) -> Result<Option<P>, StoreError> {
    let hospitals = logged.len();
    match logged.into_iter().find(|(c, _)| c == code) {
        Some((_, first)) => Ok(Some(first)),
        None if hospitals >= MAX_HOSPITALS_PER_ACCESS => Err(StoreError::HospitalReadLimit),
        None => Ok(None),
    }
}

/// A calling organisation (a fire bureau's `ems` server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no insured person is linked to certificate serial {0}")]
    UnknownSerial(String),
    #[error("certificate serial {serial} was revoked on {revoked_at}")]
    Revoked { serial: String, revoked_at: String },
    /// A reported hospital read names no crew access of the reporting organisation.
    #[error("no access of this organisation has this access id and incident")]
    UnknownAccess,
    /// A hospital read dated before the crew's access that obtained the copy (beyond the
    /// clocks' allowance) or later than a copy is kept.
    #[error("the hospital's read is dated outside the time its copy exists")]
    ReadOutOfTime,
    /// The crew's access already has `MAX_HOSPITALS_PER_ACCESS` hospitals' reads logged.
    #[error("this access already has the most hospitals' reads the log takes")]
    HospitalReadLimit,
    #[error("organisation {0:?} already exists")]
    OrganisationExists(String),
    #[error("no organisation {0:?} is held here")]
    UnknownOrganisation(String),
    /// An import line that cannot be applied; its batch changed nothing.
    #[error("line {line}: {problem}")]
    ImportRejected { line: u64, problem: String },
    #[error("person {person}: {problem}")]
    InvalidRecord { person: i64, problem: String },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A load of past incidents (`EmsStore::load_incidents`) that cannot be written as given.
    #[error("past incidents refused: {0}")]
    InvalidPast(String),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
}

/// A walk of a whole log for a checkpoint of its heads: the report, every chain's head, and
/// the hash found at each place asked for (by partition), all from the one walk, so what is
/// signed is what was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainWalk {
    pub report: ChainReport,
    pub heads: Vec<myna_domain::access::PartitionHead>,
    pub found: std::collections::BTreeMap<i64, myna_domain::access::Hash32>,
}

impl ChainWalk {
    /// The walk of a log kept as one chain (partition 0): its report, its head, and the hash
    /// found at the place asked for, if any.
    pub fn of_one_chain(
        report: ChainReport,
        head: Option<(i64, myna_domain::access::Hash32)>,
        found: Option<myna_domain::access::Hash32>,
    ) -> Self {
        ChainWalk {
            report,
            heads: head
                .map(|(seq, hash)| myna_domain::access::PartitionHead {
                    partition: 0,
                    seq,
                    hash,
                })
                .into_iter()
                .collect(),
            found: found.map(|h| (0, h)).into_iter().collect(),
        }
    }
}

/// Outcome of walking a whole log, every partition's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    Intact {
        entries: u64,
        /// How many chains the log holds (`ChainPosition`).
        partitions: u64,
        /// The head of the log's only chain; None when it is empty or has several chains.
        head_hash: Option<String>,
    },
    Broken {
        /// Entries verified before the first break.
        verified: u64,
        first_break: ChainBreak,
        /// The chain the first break is in, where the log keeps several (on PostgreSQL the
        /// person's id in the access log, the bureau's in ems's logs); None for a log of one
        /// chain.
        chain: Option<i64>,
        /// Every chain found broken, in the walk's order, where the walk goes on past a break
        /// (the provider's access log on PostgreSQL); empty where it stops at the first.
        broken_chains: Vec<i64>,
    },
}

impl ChainReport {
    /// What an operator reads of a broken log: the first break with its chain (`chain_kind`
    /// names what a chain belongs to, e.g. "person"; `name` writes a chain's key as the
    /// operator knows it, e.g. a bureau's code), and every chain found broken; None when the
    /// log is intact.
    pub fn describe_break(&self, chain_kind: &str, name: impl Fn(i64) -> String) -> Option<String> {
        const LISTED: usize = 20;
        let ChainReport::Broken {
            verified,
            first_break,
            chain,
            broken_chains,
        } = self
        else {
            return None;
        };
        // `first_break` names its entry; a log of one chain says it first, as it always has.
        let place = match chain {
            Some(c) => format!("in {chain_kind} {}'s chain", name(*c)),
            None => format!("at entry {}", first_break.seq()),
        };
        let mut text =
            format!("BROKEN {place}: {first_break}\n{verified} entries before it verified");
        if !broken_chains.is_empty() {
            let listed: Vec<String> = broken_chains
                .iter()
                .take(LISTED)
                .map(|c| name(*c))
                .collect();
            let more = if broken_chains.len() > LISTED {
                ", …"
            } else {
                ""
            };
            text.push_str(&format!(
                "\n{} {chain_kind} chain(s) found broken by the walk: {}{more}",
                broken_chains.len(),
                listed.join(", ")
            ));
        }
        Some(text)
    }

    /// The report of a log kept as one chain (partition 0), once `v` walked all of it.
    pub fn one_chain(v: &myna_domain::access::ChainVerifier) -> Self {
        ChainReport::Intact {
            entries: v.count(),
            partitions: u64::from(v.count() > 0),
            head_hash: v.head().map(|(_, h)| hex::encode(h)),
        }
    }
}

/// Credentials are random 256-bit tokens, so a fast hash suffices (as for API tokens); a slow
/// password hash would cap summary throughput for no gain in security.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time comparison of a presented secret with a stored hash.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// Checks every person's records before a load; backends call this first.
pub fn check_persons(persons: &[PersonRecordSet]) -> Result<(), StoreError> {
    for p in persons {
        p.records.check().map_err(|e| StoreError::InvalidRecord {
            person: p.person.id.0,
            problem: e.to_string(),
        })?;
    }
    Ok(())
}

/// The provider's storage. Every method that writes does so atomically: it either commits
/// everything it describes or nothing.
pub trait ProviderStore: Send + Sync + 'static {
    /// Resolves the serial, checks revocation, reads the person's records for the view's windows
    /// and appends the access-log entry, all in one transaction. Unknown or revoked serials
    /// write nothing.
    fn access_records(
        &self,
        request: AccessRequest,
    ) -> impl Future<Output = Result<AccessGranted, StoreError>> + Send;

    /// The organisation whose id and secret match, if any and not disabled.
    fn authenticate(
        &self,
        org_id: &str,
        secret: &str,
    ) -> impl Future<Output = Result<Option<Organisation>, StoreError>> + Send;

    /// The organisation with this id, if it exists and is not disabled (a caller that proved
    /// the id by a client certificate of the provider's organisation CA).
    fn organisation(
        &self,
        org_id: &str,
    ) -> impl Future<Output = Result<Option<Organisation>, StoreError>> + Send;

    /// The organisation for a caller that proved `org_id` by a client certificate whose public
    /// key (SubjectPublicKeyInfo) has the SHA-256 `public_key_sha256` (hex): registered, not
    /// disabled, and that key not revoked.
    fn organisation_for_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
    ) -> impl Future<Output = Result<Option<Organisation>, StoreError>> + Send;

    /// Revokes one key of an organisation (the SHA-256 of its certificate's public key, hex)
    /// before its certificate ends: every certificate for that key is refused, the
    /// organisation's other keys keep working. False if there is no such organisation.
    /// Revoking twice keeps the first record.
    fn revoke_organisation_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
        reason: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Disables (or enables again) an organisation: a disabled one is refused by either
    /// credential. False if there is no such organisation.
    fn set_organisation_disabled(
        &self,
        org_id: &str,
        disabled: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Registers an organisation with the hash of its secret.
    fn add_organisation(
        &self,
        org: Organisation,
        secret_hash: String,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds a serial to the revocation list. Revoking twice is not an error.
    fn revoke_serial(
        &self,
        serial_hex: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Loads persons (demographics, serial link and records). Used by the generator and imports.
    /// Refuses the whole batch if any person's records fail `MedicalRecords::check`.
    fn load_persons(
        &self,
        persons: Vec<PersonRecordSet>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies one claims-import batch in one transaction, or nothing. A batch applied before
    /// (same id and digest) changes nothing. Refused, naming the line (`ImportRejected`): the
    /// same id with another digest; a record whose key (person, kind, service date, seq) is
    /// already held; a record or card of a person neither held nor in the batch; a serial
    /// linked to another person; a record failing `MedicalRecords::check`.
    fn import_batch(
        &self,
        batch: import::ImportBatch,
    ) -> impl Future<Output = Result<import::Imported, StoreError>> + Send;

    fn dataset_info(&self) -> impl Future<Output = Result<DatasetInfo, StoreError>> + Send;

    fn set_dataset_info(
        &self,
        info: DatasetInfo,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets the claims date alone (`provider claims-through`), leaving the other facts as
    /// they are, even one that cannot be read; the next access reports it.
    fn set_claims_through(
        &self,
        date: NaiveDate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Walks every chain of the access log and reports the first broken link.
    fn verify_access_log(&self) -> impl Future<Output = Result<ChainReport, StoreError>> + Send;

    /// The stored hash of the access-log entry at `at`, if there is one (to check a
    /// `Checkpoint`).
    fn access_log_hash(
        &self,
        at: ChainPosition,
    ) -> impl Future<Output = Result<Option<myna_domain::access::Hash32>, StoreError>> + Send;

    /// Walks the access log as `verify_access_log` does, keeping every chain's head and the
    /// hash at `places[partition]` of each chain named: what a checkpoint of a log of several
    /// chains signs and checks.
    fn access_log_walk(
        &self,
        places: std::collections::BTreeMap<i64, i64>,
    ) -> impl Future<Output = Result<ChainWalk, StoreError>> + Send;

    /// Access-log entries for one person, newest first, each with its place in the log (the
    /// patient portal's history).
    fn access_log_for(
        &self,
        person: PersonId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<(ChainPosition, ChainedEntry)>, StoreError>> + Send;

    /// Logs a hospital's read of a crew's copy in the chain of the person the crew's access
    /// read, in one transaction: the access is found by its id, the reporting organisation and
    /// the incident (`UnknownAccess` otherwise, also when it is itself a hospital read); the
    /// hospital is named from the institution master when it holds the code; the entry is
    /// `hospital_read_entry`. Each hospital is logged once per access, at its first read: a
    /// later report of that hospital writes nothing and answers that entry; a new hospital
    /// beyond `MAX_HOSPITALS_PER_ACCESS` is `HospitalReadLimit`.
    fn record_hospital_read(
        &self,
        report: HospitalReadReport,
    ) -> impl Future<Output = Result<HospitalReadLogged, StoreError>> + Send;

    /// The person a card's serial links to, refused as an access is (`UnknownSerial`,
    /// `Revoked`). Reads only; nothing is logged.
    fn card_holder(
        &self,
        serial_hex: &str,
    ) -> impl Future<Output = Result<PersonId, StoreError>> + Send;

    /// Every registered organisation's name by id, disabled ones too (a history names the
    /// organisation that looked, even one disabled since).
    fn organisation_names(
        &self,
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, String>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(chain: Option<i64>, broken_chains: Vec<i64>) -> ChainReport {
        ChainReport::Broken {
            verified: 4,
            first_break: ChainBreak::Content { seq: 3 },
            chain,
            broken_chains,
        }
    }

    #[test]
    fn a_broken_log_is_described_by_its_first_break_and_every_chain_found() {
        let intact = ChainReport::Intact {
            entries: 1,
            partitions: 1,
            head_hash: None,
        };
        assert_eq!(intact.describe_break("person", |c| c.to_string()), None);
        // One chain: as the log of one chain always said it.
        assert_eq!(
            broken(None, Vec::new())
                .describe_break("person", |c| c.to_string())
                .unwrap(),
            "BROKEN at entry 3: entry 3: content does not match its hash (the entry was \
             altered)\n4 entries before it verified"
        );
        // Several: the chain of the first break, then every chain found broken.
        assert_eq!(
            broken(Some(56), vec![56, 143])
                .describe_break("person", |c| c.to_string())
                .unwrap(),
            "BROKEN in person 56's chain: entry 3: content does not match its hash (the entry \
             was altered)\n4 entries before it verified\n2 person chain(s) found broken by the \
             walk: 56, 143"
        );
        // A long list is cut after 20, and says so.
        let many = broken(Some(1), (1..=25).collect())
            .describe_break("bureau", |c| format!("b{c}"))
            .unwrap();
        assert!(
            many.ends_with("25 bureau chain(s) found broken by the walk: b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19, b20, …"),
            "{many}"
        );
    }
}
