//! The `ems` service's storage: fire bureaus (tenants), their stations, teams, accounts and
//! terminals, incidents as append-only event logs, and the hash-chained view audit.
//!
//! Tenancy is in the signatures: every read and write of tenant data takes the bureau's id, and
//! the lookups that start from a credential (session, terminal) return it. A backend never
//! answers one bureau's query with another's rows.

use crate::{ChainReport, StoreError};
use myna_domain::access::ChainedEntry;
use myna_domain::hospitals::HospitalStatus;
use myna_domain::incident::{Actor, Event, EventKind, Incident, IncidentError, ViewRecord};
use myna_domain::patient::{PatientKey, PatientSecret};
use myna_domain::review::ReviewRecord;
use myna_domain::stats::IncidentFacts;
use myna_domain::summary::{EmergencySummary, View};
use serde::{Deserialize, Serialize};
use std::future::Future;

pub type BureauId = i64;
pub type TeamId = i64;
pub type AccountId = i64;
pub type TerminalId = i64;
pub type EnrollmentId = i64;
pub type IncidentId = i64;

/// 消防本部 (fire bureau): one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bureau {
    pub id: BureauId,
    /// Short stable code, e.g. `kawasaki-fd`; it is also the bureau's organisation id at the
    /// provider.
    pub code: String,
    pub name: String,
    /// The provider's base URL, and the file (mode 0600) holding this bureau's credential
    /// there. The credential itself is never in the database.
    pub provider_url: String,
    pub provider_credential_file: String,
    /// How long after the call a summary may be requested.
    pub view_window_s: i64,
    /// The key of the bureau's patient pseudonyms (`PatientKey`).
    pub patient_secret: PatientSecret,
    /// Whom citizens contact about マイナ救急, on the bureau's public page; empty names the
    /// bureau itself.
    pub public_contact: String,
}

/// 救急隊 (ambulance team), at a 消防署 (station).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub id: TeamId,
    pub bureau_id: BureauId,
    pub station: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dispatcher,
    Crew,
    Admin,
    /// Staff of one registry hospital: the hospital screen only.
    Hospital,
    /// 個人情報保護責任者 (the bureau's privacy officer): the review queue of views without
    /// consent, and nothing else.
    PrivacyOfficer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Dispatcher,
        Role::Crew,
        Role::Admin,
        Role::Hospital,
        Role::PrivacyOfficer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dispatcher => "dispatcher",
            Role::Crew => "crew",
            Role::Admin => "admin",
            Role::Hospital => "hospital",
            Role::PrivacyOfficer => "privacy_officer",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub bureau_id: BureauId,
    pub login: String,
    pub display_name: String,
    pub role: Role,
    /// The crew member's home team; a crew member signs in on any terminal of the bureau.
    pub team_id: Option<TeamId>,
    /// For hospital staff: the registry id of their hospital (set exactly for that role).
    pub hospital_id: Option<String>,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub disabled: bool,
    /// Failed sign-ins in a row (a success, the lock's end or an admin clears them).
    pub failed_logins: u32,
    /// Signed-in is refused until then (ms since the epoch), after too many failures.
    pub locked_until_ms: Option<i64>,
}

impl Account {
    pub fn is_locked(&self, now_ms: i64) -> bool {
        self.locked_until_ms.is_some_and(|until| until > now_ms)
    }
}

/// When failed sign-ins lock an account, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// The failure in a row that locks the account.
    pub lock_after: u32,
    pub lock_ms: i64,
}

/// A registered tablet. Its credential is stored as a hash; revocation is checked on every
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub id: TerminalId,
    pub bureau_id: BureauId,
    pub team_id: TeamId,
    pub label: String,
    pub revoked: bool,
    /// Bound to a client certificate (mutual TLS) rather than a bearer token.
    pub certificate_bound: bool,
    /// The bound certificate's end of validity.
    pub certificate_not_after_ms: Option<i64>,
}

/// 端末登録の招待 (an enrollment invitation): an admin of the bureau opens it for one team;
/// its one-time secret is what lets a tablet file a request at all, so nobody else can fill the
/// admin's list or slip a look-alike request in beside the real one.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub team: TeamId,
    /// Hash of the one-time secret (`hash_secret`); the admin hands the secret to the crew.
    pub secret_hash: String,
    pub expires_ms: i64,
    /// The admin's login, for the record.
    pub created_by: String,
}

/// An invitation not yet used nor expired, as the admin sees it (the secret is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInvite {
    pub id: i64,
    pub team_id: TeamId,
    pub created_ms: i64,
    pub created_by: String,
    pub expires_ms: i64,
}

/// 端末登録申請 (a tablet's enrollment request): the signing request of a key the tablet made,
/// filed with an invitation, waiting for an admin, who compares `code` with the one the tablet
/// shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: EnrollmentId,
    pub bureau_id: BureauId,
    /// The team of the invitation it was filed with.
    pub team_id: TeamId,
    pub label: String,
    /// The comparison code of the request's public key (`NNNN-NNNN`).
    pub code: String,
    pub csr_pem: String,
    pub requested_ms: i64,
    /// The client address the request came from, for the admin to judge.
    pub requested_from: String,
    pub state: EnrollmentState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollmentState {
    Pending,
    /// The terminal registered for it and its certificate (PEM), which the tablet collects.
    Approved {
        terminal: TerminalId,
        certificate_pem: String,
    },
    Rejected,
}

/// What a tablet sends to enroll.
#[derive(Debug, Clone)]
pub struct NewEnrollment {
    /// Hash of the invitation's secret the tablet presents.
    pub invite_hash: String,
    pub label: String,
    pub code: String,
    pub csr_pem: String,
    /// Hash of the secret the tablet polls with (`hash_secret`).
    pub poll_hash: String,
    pub requested_from: String,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filing {
    Filed(EnrollmentId),
    /// No open invitation of this bureau has that secret (unknown, used, expired).
    NoInvite,
    /// `EnrollmentLimits::max_pending` requests are still waiting.
    TooManyPending,
}

/// A certificate issued for an approved request, as the terminal row keeps it.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub pem: String,
    /// SHA-256 of its DER, hex: the binding.
    pub sha256: String,
    /// Its end of validity: requests after it are refused even on a connection opened before.
    pub not_after_ms: i64,
}

/// How many requests may wait per bureau, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollmentLimits {
    pub max_pending: u32,
    pub pending_for_ms: i64,
}

impl Default for EnrollmentLimits {
    fn default() -> Self {
        EnrollmentLimits {
            max_pending: 20,
            pending_for_ms: 24 * 3600 * 1000,
        }
    }
}

/// A signed-in account. Crew sessions are bound to the terminal they signed in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: Account,
    pub terminal_id: Option<TerminalId>,
    pub expires_ms: i64,
}

/// What a new bureau starts with.
#[derive(Debug, Clone)]
pub struct BureauSeed {
    pub code: String,
    pub name: String,
    pub provider_url: String,
    pub provider_credential_file: String,
    pub view_window_s: i64,
    /// Made at random when the bureau is created; never changes (it names its patients).
    pub patient_secret: PatientSecret,
    /// Station name and its teams' names.
    pub stations: Vec<(String, Vec<String>)>,
    pub accounts: Vec<AccountSeed>,
}

#[derive(Debug, Clone)]
pub struct AccountSeed {
    pub login: String,
    pub display_name: String,
    pub role: Role,
    /// Team name, for crew.
    pub team: Option<String>,
    /// Registry hospital id, for hospital staff.
    pub hospital: Option<String>,
    pub password_hash: String,
}

/// What the crew saw, kept for the hospital's handoff: the summary exactly as the provider
/// answered it for this patient in this incident. The hospital reads this copy; the card is
/// not read again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffSnapshot {
    pub patient: PatientKey,
    pub patient_number: u32,
    pub view: View,
    /// The provider's access-log entry that answered the crew.
    pub provider_access_id: i64,
    /// The team and the crew member who viewed it.
    #[serde(default)]
    pub team: String,
    #[serde(default)]
    pub crew_member: String,
    pub saved_ms: i64,
    pub summary: EmergencySummary,
}

/// A hospital's read of a crew's copy (a view-log entry with `hospital` set) not yet reported
/// to the bureau's provider.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingHospitalRead {
    /// The view-log entry that records the read.
    pub at: crate::ChainPosition,
    /// The entry, or why it cannot be read (then the relay settles it as refused, and the
    /// other reads go on).
    pub record: Result<ViewRecord, String>,
    /// Reports tried so far.
    pub attempts: u32,
}

/// A bureau's outbox of hospitals' reads, for its operator: how many were delivered and how
/// many wait, and the ones the provider refused for good, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HospitalReadOutbox {
    pub delivered: u64,
    pub waiting: u64,
    pub refused: Vec<RefusedHospitalRead>,
}

/// A read the provider refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedHospitalRead {
    /// Its view-log entry.
    pub at: crate::ChainPosition,
    pub refused_ms: i64,
    pub error: String,
}

/// A queued read's view-log entry as stored (JSON text), or why the relay cannot read it: gone
/// from the log, or not a view record. Such a read is settled as refused, and the others go
/// on.
pub fn queued_read(entry: Option<&str>) -> Result<ViewRecord, String> {
    let entry = entry.ok_or("its view-log entry is missing")?;
    serde_json::from_str(entry).map_err(|e| format!("its view-log entry cannot be read: {e}"))
}

/// How a report of a hospital read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HospitalReadOutcome {
    /// The provider logged it as its access `provider_access_id`.
    Delivered { provider_access_id: i64 },
    /// Not reached, or not answered: tried again at `next_try_ms`.
    Retry { next_try_ms: i64, error: String },
    /// Refused for good (the provider does not hold the crew's access): kept with the reason,
    /// not tried again.
    Refused { error: String },
}

/// One change of a hospital's acceptance status, with who made it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub status: HospitalStatus,
    pub account: AccountId,
}

/// An incident with its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRecord {
    pub id: IncidentId,
    pub bureau_id: BureauId,
    /// 事案番号, unique within the bureau, e.g. `20261124-0007`.
    pub number: String,
    pub log: Incident,
}

/// An event before the server commits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub actor: Actor,
    pub idempotency_key: String,
    /// The device's clock when the crew tapped; checked by `Incident::check_device_time`
    /// against the server's time of commit.
    pub device_at_ms: Option<i64>,
    /// For a crew's event: refused with `WrongTeam` unless the incident is assigned to this
    /// team when the event commits (a reassignment between the caller's check and the append
    /// must not let the old team write).
    pub team_guard: Option<TeamId>,
}

/// An incident of the past written whole (`EmsStore::load_incidents`), e.g. a simulated year:
/// each event with its server time, in order, and the view records of its summary views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastIncident {
    /// The first is the `Created` event. Each is checked by the same rules as an append.
    pub events: Vec<(NewEvent, i64)>,
    /// Appended to the view log after the incident; the store sets `incident_number`.
    pub views: Vec<ViewRecord>,
}

/// Checks `new` against `log` as every backend's append does, at the server time `now_ms`: the
/// team guard, `Incident::check`, and the device time when the event has one. Answers the
/// event as it would be committed, the log's next.
pub fn checked_event(log: &Incident, new: &NewEvent, now_ms: i64) -> Result<Event, AppendError> {
    if let Some(team) = new.team_guard
        && log.assigned_team() != Some(team)
    {
        return Err(AppendError::Rule(IncidentError::WrongTeam));
    }
    log.check(&new.kind, &new.actor)?;
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms}")))
    };
    if let Some(device) = new.device_at_ms {
        // A time no clock can show is a wrong clock, not corrupt storage.
        let device_at =
            chrono::DateTime::from_timestamp_millis(device).ok_or(if device > now_ms {
                IncidentError::DeviceTimeAhead
            } else {
                IncidentError::DeviceTimeBeforeCreation
            })?;
        log.check_device_time(&new.kind, device_at, at(now_ms)?, &new.actor)?;
    }
    let seq = u32::try_from(log.events.len() + 1)
        .map_err(|_| StoreError::Corrupt("incident log too long".into()))?;
    Ok(Event {
        seq,
        kind: new.kind.clone(),
        at: at(now_ms)?,
        device_at: new.device_at_ms.map(at).transpose()?,
        idempotency_key: new.idempotency_key.clone(),
        actor: new.actor.clone(),
    })
}

/// Checks a batch of past incidents against its bureau before any is written: each has events,
/// every view record names the bureau (`code`), and every assignment one of its teams. The
/// events themselves are checked one by one with `checked_event` as they are written.
pub fn check_past_incidents(
    incidents: &[PastIncident],
    code: &str,
    teams: &[TeamId],
) -> Result<(), AppendError> {
    let refuse = |what: String| AppendError::Store(StoreError::InvalidPast(what));
    for (i, past) in incidents.iter().enumerate() {
        if past.events.is_empty() {
            return Err(refuse(format!("past incident {i} has no events")));
        }
        if let Some(v) = past.views.iter().find(|v| v.bureau != code) {
            return Err(refuse(format!(
                "past incident {i}: a view record of bureau {:?} in a load into {code:?}",
                v.bureau
            )));
        }
        for (e, _) in &past.events {
            if let EventKind::Assigned { team } = e.kind
                && !teams.contains(&team)
            {
                return Err(refuse(format!(
                    "past incident {i}: team {team} is not one of {code}'s"
                )));
            }
        }
    }
    Ok(())
}

/// How a 傷病者接触 phase event is stored (the event's kind as JSON), for a search of the
/// log by kind.
pub fn contact_kind_json() -> Result<String, StoreError> {
    serde_json::to_string(&EventKind::Phase {
        phase: myna_domain::incident::Phase::Contact,
    })
    .map_err(|e| StoreError::Corrupt(format!("encoding a phase: {e}")))
}

/// The answer to an append: a resend with a known key gets the committed event back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    New(Event),
    Duplicate(Event),
}

impl Appended {
    pub fn event(&self) -> &Event {
        match self {
            Appended::New(e) | Appended::Duplicate(e) => e,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rule(#[from] IncidentError),
    #[error("no such incident")]
    NotFound,
    #[error("idempotency key {0:?} was used for a different event")]
    KeyReused(String),
}

/// Which incidents to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentFilter {
    pub open_only: bool,
    pub team: Option<TeamId>,
    pub limit: u32,
}

/// The `ems` service's storage. Writes are atomic and durable before they return.
pub trait EmsStore: Send + Sync + 'static {
    /// Creates a bureau with its stations, teams and accounts in one transaction.
    fn seed_bureau(
        &self,
        seed: BureauSeed,
    ) -> impl Future<Output = Result<BureauId, StoreError>> + Send;

    /// Points the bureau at a provider: its URL and the file holding the credential, e.g.
    /// after the provider moved or the credential was rotated.
    fn set_provider(
        &self,
        bureau: BureauId,
        url: &str,
        credential_file: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets the contact the bureau's public page gives (at most 500 characters).
    fn set_public_contact(
        &self,
        bureau: BureauId,
        contact: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn bureau(&self, code: &str)
    -> impl Future<Output = Result<Option<Bureau>, StoreError>> + Send;

    /// Every bureau (for the operator's checks at start).
    fn bureaus(&self) -> impl Future<Output = Result<Vec<Bureau>, StoreError>> + Send;

    fn bureau_by_id(
        &self,
        id: BureauId,
    ) -> impl Future<Output = Result<Option<Bureau>, StoreError>> + Send;

    fn teams(&self, bureau: BureauId)
    -> impl Future<Output = Result<Vec<Team>, StoreError>> + Send;

    fn account(
        &self,
        bureau: BureauId,
        login: &str,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Adds one account to a bureau (e.g. a hospital's staff joining a running system).
    fn add_account(
        &self,
        bureau: BureauId,
        account: AccountSeed,
    ) -> impl Future<Output = Result<AccountId, StoreError>> + Send;

    /// Replaces the password hash, ends the account's sessions and clears its failed
    /// sign-ins and lock (a new password is a new start).
    fn set_password(
        &self,
        bureau: BureauId,
        login: &str,
        password_hash: String,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Counts one failed sign-in of the bureau's account at `now_ms`. The `lock_after`th
    /// failure in a row locks it for `lock_ms`; a failure after a lock ended starts the count
    /// again. Returns the account as it is after (None if it is not the bureau's).
    fn sign_in_failed(
        &self,
        bureau: BureauId,
        account: AccountId,
        now_ms: i64,
        policy: LockoutPolicy,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// A successful sign-in at `now_ms` clears the account's failures, unless a lock holds
    /// (one set by a guess that raced this sign-in): false then, and the sign-in is refused.
    fn sign_in_succeeded(
        &self,
        bureau: BureauId,
        account: AccountId,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The admin clears the account's failures and lock. False if there is no such account
    /// in the bureau.
    fn clear_sign_in_failures(
        &self,
        bureau: BureauId,
        login: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The bureau's accounts with failed sign-ins or a lock, for the admin.
    fn accounts_with_failures(
        &self,
        bureau: BureauId,
    ) -> impl Future<Output = Result<Vec<Account>, StoreError>> + Send;

    fn create_session(
        &self,
        token_hash: String,
        account: AccountId,
        terminal: Option<TerminalId>,
        expires_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live session with this token hash, if not expired and the account is enabled.
    fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    fn end_session(&self, token_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn add_terminal(
        &self,
        bureau: BureauId,
        team: TeamId,
        label: &str,
        token_hash: String,
    ) -> impl Future<Output = Result<TerminalId, StoreError>> + Send;

    /// Revokes a terminal and ends the sessions bound to it. False if there is no such
    /// terminal in the bureau.
    fn revoke_terminal(
        &self,
        bureau: BureauId,
        terminal: TerminalId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn terminal_by_token(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<Terminal>, StoreError>> + Send;

    fn terminals(
        &self,
        bureau: BureauId,
    ) -> impl Future<Output = Result<Vec<Terminal>, StoreError>> + Send;

    /// The terminal bound to the certificate with this SHA-256 (hex), revoked or not.
    fn terminal_by_certificate(
        &self,
        cert_sha256: &str,
    ) -> impl Future<Output = Result<Option<Terminal>, StoreError>> + Send;

    /// Opens an invitation for one of the bureau's teams; None if the team is not the
    /// bureau's.
    fn create_invite(
        &self,
        bureau: BureauId,
        invite: NewInvite,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// The bureau's invitations that are neither used nor expired at `now_ms`, newest first.
    fn open_invites(
        &self,
        bureau: BureauId,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<OpenInvite>, StoreError>> + Send;

    /// Cancels an open invitation of the bureau for good (even if the clock later steps
    /// back); false when the bureau has no such open invitation.
    fn cancel_invite(
        &self,
        bureau: BureauId,
        invite: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Files an enrollment request with an open invitation of the bureau, which it uses up,
    /// in one transaction. Requests pending longer than `limits.pending_for_ms` are rejected
    /// first.
    fn request_enrollment(
        &self,
        bureau: BureauId,
        request: NewEnrollment,
        limits: EnrollmentLimits,
        now_ms: i64,
    ) -> impl Future<Output = Result<Filing, StoreError>> + Send;

    /// The enrollment a tablet polls for, by its poll secret's hash.
    fn enrollment_by_poll(
        &self,
        poll_hash: &str,
    ) -> impl Future<Output = Result<Option<Enrollment>, StoreError>> + Send;

    /// The bureau's enrollments, newest first; only those pending when `pending_only`.
    fn enrollments(
        &self,
        bureau: BureauId,
        pending_only: bool,
    ) -> impl Future<Output = Result<Vec<Enrollment>, StoreError>> + Send;

    /// Approves a pending enrollment of the bureau, filed within `limits.pending_for_ms`:
    /// registers its terminal for the invitation's team, bound to the certificate issued for
    /// it, in one transaction. None if it is not pending there (decided, lapsed, another
    /// bureau's, unknown).
    fn approve_enrollment(
        &self,
        bureau: BureauId,
        enrollment: EnrollmentId,
        certificate: IssuedCertificate,
        limits: EnrollmentLimits,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<TerminalId>, StoreError>> + Send;

    /// Rejects a pending enrollment of the bureau; false if it was not pending there.
    fn reject_enrollment(
        &self,
        bureau: BureauId,
        enrollment: EnrollmentId,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates an incident whose first event is `created` (an `EventKind::Created`).
    fn create_incident(
        &self,
        bureau: BureauId,
        created: NewEvent,
        now_ms: i64,
    ) -> impl Future<Output = Result<IncidentRecord, AppendError>> + Send;

    /// Appends one event after `Incident::check` (and `check_device_time` when the event has a
    /// device time), in one transaction with the read of the log.
    fn append(
        &self,
        bureau: BureauId,
        incident: IncidentId,
        event: NewEvent,
        now_ms: i64,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send;

    fn incident(
        &self,
        bureau: BureauId,
        incident: IncidentId,
    ) -> impl Future<Output = Result<Option<IncidentRecord>, StoreError>> + Send;

    /// Newest first.
    fn incidents(
        &self,
        bureau: BureauId,
        filter: IncidentFilter,
    ) -> impl Future<Output = Result<Vec<IncidentRecord>, StoreError>> + Send;

    /// Writes past incidents whole, each under the next number of its own Japan day, every event
    /// checked by the rules of `append` at its own time, in one transaction: all or none.
    /// Each incident's facts are kept as an append keeps them.
    fn load_incidents(
        &self,
        bureau: BureauId,
        incidents: Vec<PastIncident>,
    ) -> impl Future<Output = Result<Vec<IncidentId>, AppendError>> + Send;

    /// The statistics row of each of the bureau's incidents created in `[from_ms, to_ms)`,
    /// as the last append left it (`IncidentFacts::of` its log).
    fn incident_facts(
        &self,
        bureau: BureauId,
        from_ms: i64,
        to_ms: i64,
    ) -> impl Future<Output = Result<Vec<(IncidentId, IncidentFacts)>, StoreError>> + Send;

    /// The incident with this 事案番号 in the bureau.
    fn incident_by_number(
        &self,
        bureau: BureauId,
        number: &str,
    ) -> impl Future<Output = Result<Option<IncidentRecord>, StoreError>> + Send;

    /// The call and the first 傷病者接触 as the server recorded it (`IncidentTimes`; a device
    /// time the crew could set is not used) of every incident of the bureau that a view-log
    /// entry names, by 事案番号 (for the privacy officer's report per crew member).
    fn viewed_incident_times(
        &self,
        bureau: BureauId,
    ) -> impl Future<Output = Result<Vec<(String, myna_domain::review::IncidentTimes)>, StoreError>> + Send;

    /// The bureau's crews' view-log entries made without consent (the exception), oldest first,
    /// each with its place in the log (a hospital's read of the crew's copy is not one).
    fn exception_views(
        &self,
        bureau: &str,
    ) -> impl Future<
        Output = Result<Vec<(crate::ChainPosition, ChainedEntry<ViewRecord>)>, StoreError>,
    > + Send;

    /// Appends a privacy officer's decision to its bureau's review chain; `Ok(None)`, with
    /// nothing written, when that view has a decision already.
    fn record_review(
        &self,
        record: ReviewRecord,
    ) -> impl Future<Output = Result<Option<crate::ChainPosition>, StoreError>> + Send;

    /// The bureau's decisions, oldest first.
    fn reviews(
        &self,
        bureau: &str,
    ) -> impl Future<Output = Result<Vec<ChainedEntry<ReviewRecord>>, StoreError>> + Send;

    /// Walks every bureau's review chain as `verify_view_log` walks the views.
    fn verify_review_log(&self) -> impl Future<Output = Result<ChainReport, StoreError>> + Send;

    /// Appends a view record to its bureau's chain (SQLite: the one chain, partition 0;
    /// PostgreSQL: one per bureau, the bureau's id); returns its place. A hospital's read
    /// (`hospital` set) is also queued, in the same transaction, for its report to the
    /// provider (`due_hospital_reads`).
    fn record_view(
        &self,
        record: ViewRecord,
    ) -> impl Future<Output = Result<crate::ChainPosition, StoreError>> + Send;

    /// Queued hospital reads due by `now_ms` (never settled, next try at or before it), oldest
    /// first, at most `limit`.
    fn due_hospital_reads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PendingHospitalRead>, StoreError>> + Send;

    /// Records how the report of the read at `at` ended; a read already settled is left as
    /// it is (two processes may report it at once). False if none is queued at `at`.
    fn settle_hospital_read(
        &self,
        at: crate::ChainPosition,
        now_ms: i64,
        outcome: HospitalReadOutcome,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The bureau's outbox of hospitals' reads (`HospitalReadOutbox`).
    fn hospital_read_outbox(
        &self,
        bureau: &str,
    ) -> impl Future<Output = Result<HospitalReadOutbox, StoreError>> + Send;

    /// Queues the bureau's refused reads again, due at `now_ms` (after the operator fixed the
    /// cause: the provider's data restored, a clock set right); answers how many.
    fn requeue_refused_hospital_reads(
        &self,
        bureau: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn view_records(
        &self,
        bureau: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ChainedEntry<ViewRecord>>, StoreError>> + Send;

    fn verify_view_log(&self) -> impl Future<Output = Result<ChainReport, StoreError>> + Send;

    /// The stored hash of the view-log entry at `at`, if there is one (to check a checkpoint).
    fn view_log_hash(
        &self,
        at: crate::ChainPosition,
    ) -> impl Future<Output = Result<Option<myna_domain::access::Hash32>, StoreError>> + Send;

    /// Walks the view log as `verify_view_log` does, keeping every chain's head and the hash
    /// at `places[partition]` of each chain named (for a checkpoint of the heads).
    fn view_log_walk(
        &self,
        places: std::collections::BTreeMap<i64, i64>,
    ) -> impl Future<Output = Result<crate::ChainWalk, StoreError>> + Send;

    /// Sets a hospital's acceptance status (its `updated_at` is the change's time) and keeps
    /// the change in the hospital's history, in one transaction.
    fn set_hospital_status(
        &self,
        bureau: BureauId,
        change: StatusChange,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The current status of every hospital of the bureau that set one.
    fn hospital_statuses(
        &self,
        bureau: BureauId,
    ) -> impl Future<Output = Result<Vec<HospitalStatus>, StoreError>> + Send;

    /// A hospital's changes, newest first.
    fn hospital_status_history(
        &self,
        bureau: BureauId,
        hospital: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StatusChange>, StoreError>> + Send;

    /// Keeps what the crew saw for the handoff; a later view of the same patient and view
    /// replaces it.
    fn save_handoff(
        &self,
        bureau: BureauId,
        incident: IncidentId,
        snapshot: HandoffSnapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the handoff copies no hospital may read any more: those of incidents called
    /// more than twice their bureau's view window before `now_ms` (the window runs from the
    /// call, or from a handoff signed within it). Answers how many went.
    fn purge_handoffs(&self, now_ms: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The incident's handoff copies, by patient number, then view.
    fn handoffs(
        &self,
        bureau: BureauId,
        incident: IncidentId,
    ) -> impl Future<Output = Result<Vec<HandoffSnapshot>, StoreError>> + Send;

    /// Tells the other ems processes on this database that an incident changed, so their
    /// push streams see it. A store that one process holds alone (SQLite) has nobody to tell.
    fn publish_change(&self, note: ChangeNote) -> impl Future<Output = ()> + Send {
        let _ = note;
        async {}
    }

    /// Hands `deliver` `Feed::Listening` once the feed listens, then every note the processes
    /// on this database publish (its own among them: the note's origin tells), until the feed
    /// fails. A store that one process holds alone returns at once.
    fn follow_changes(
        &self,
        deliver: ChangeSink,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = deliver;
        async { Ok(()) }
    }
}

/// What one ems process tells the others on its database: which process it is, which bureau,
/// and what changed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNote {
    pub origin: u64,
    pub bureau: BureauId,
    pub what: Changed,
}

/// What changed in a bureau.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// An incident, for the teams it is (or was, before a reassignment) assigned to.
    Incident {
        incident: IncidentId,
        teams: Vec<TeamId>,
    },
    /// A terminal was revoked: its push streams end at once, in every process.
    TerminalRevoked(TerminalId),
}

/// What a change feed hands its follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// The feed is listening (again): notes published while it was not are lost, so whoever
    /// follows must refresh everything once.
    Listening,
    Note(ChangeNote),
}

/// Where a followed feed goes.
pub type ChangeSink = std::sync::Arc<dyn Fn(Feed) + Send + Sync>;

impl ChangeNote {
    /// `origin:bureau:i:incident:team,team` or `origin:bureau:t:terminal` (numbers and one
    /// letter only, so it fits a NOTIFY payload).
    pub fn encode(&self) -> String {
        match &self.what {
            Changed::Incident { incident, teams } => {
                let teams: Vec<String> = teams.iter().map(i64::to_string).collect();
                format!(
                    "{}:{}:i:{}:{}",
                    self.origin,
                    self.bureau,
                    incident,
                    teams.join(",")
                )
            }
            Changed::TerminalRevoked(terminal) => {
                format!("{}:{}:t:{}", self.origin, self.bureau, terminal)
            }
        }
    }

    pub fn decode(s: &str) -> Option<ChangeNote> {
        let mut parts = s.splitn(5, ':');
        let origin = parts.next()?.parse().ok()?;
        let bureau = parts.next()?.parse().ok()?;
        let what = match parts.next()? {
            "i" => {
                let incident = parts.next()?.parse().ok()?;
                let teams = match parts.next()? {
                    "" => Vec::new(),
                    list => list
                        .split(',')
                        .map(|t| t.parse().ok())
                        .collect::<Option<Vec<_>>>()?,
                };
                Changed::Incident { incident, teams }
            }
            "t" => {
                let terminal = parts.next()?.parse().ok()?;
                if parts.next().is_some() {
                    return None;
                }
                Changed::TerminalRevoked(terminal)
            }
            _ => return None,
        };
        Some(ChangeNote {
            origin,
            bureau,
            what,
        })
    }
}

#[cfg(test)]
mod change_note_tests {
    use super::{ChangeNote, Changed};

    #[test]
    fn a_note_round_trips_and_garbage_is_refused() {
        let mut notes: Vec<Changed> = [vec![], vec![7], vec![7, -3]]
            .into_iter()
            .map(|teams| Changed::Incident {
                incident: 42,
                teams,
            })
            .collect();
        notes.push(Changed::TerminalRevoked(i64::MIN));
        for what in notes {
            let note = ChangeNote {
                origin: u64::MAX,
                bureau: 1_800_000_000_000 << 20,
                what,
            };
            assert_eq!(ChangeNote::decode(&note.encode()), Some(note));
        }
        for bad in [
            "",
            "1:2",
            "1:2:i",
            "1:2:i:3",
            "x:2:i:3:",
            "1:2:i:3:4,,5",
            "1:2:i:3:a",
            "1:2:3:4",
            "1:2:t:",
            "1:2:t:5:6",
            "1:2:x:5",
            "1:2:3:",
        ] {
            assert_eq!(ChangeNote::decode(bad), None, "{bad:?}");
        }
    }
}
