//! `EmsStore` on PostgreSQL. The bureau is the distribution key: every large table is keyed by
//! `bureau_id` first (see migrations/ems/V1__ems.sql), every id is made here (`next_id`), and a
//! transaction that reads and then writes is correct under concurrency, by a row lock or by a
//! unique key it would race for (the loser runs again, `retrying`). Where each applies is said
//! at the method.

use crate::{Attempt, col, connection, db_err, new_id, retrying, to_u32};
use chrono::DateTime;
use futures_util::{StreamExt, pin_mut};
use myna_domain::access::{
    ChainBreak, ChainHead, ChainedEntry, Hash32, PartitionedVerifier, chain,
};
use myna_domain::hospitals::HospitalStatus;
use myna_domain::incident::{Actor, Event, EventKind, Incident, IncidentError, ViewRecord};
use myna_domain::patient::PatientSecret;
use myna_domain::review::ReviewRecord;
use myna_domain::stats::IncidentFacts;
use myna_store::columns::corrupt;
use myna_store::ems::{
    Account, AccountId, AccountSeed, AppendError, Appended, Bureau, BureauId, BureauSeed,
    ChangeNote, ChangeSink, EmsStore, Enrollment, EnrollmentId, EnrollmentLimits, EnrollmentState,
    Feed, Filing, HandoffSnapshot, HospitalReadOutbox, HospitalReadOutcome, IncidentFilter,
    IncidentId, IncidentRecord, IssuedCertificate, LockoutPolicy, NewEnrollment, NewEvent,
    NewInvite, OpenInvite, PastIncident, PendingHospitalRead, RefusedHospitalRead, Role, Session,
    StatusChange, Team, TeamId, Terminal, TerminalId, queued_read,
};
use myna_store::{ChainPosition, ChainReport, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Row, Transaction};

mod embedded {
    refinery::embed_migrations!("migrations/ems");
}

/// Recorded apart from the provider's history, so both stores can share one database.
const HISTORY_TABLE: &str = "ems_schema_history";

/// The unique keys two transactions can race for; a violation of any other key is the caller's
/// (a login or token hash used twice) and is reported, not run again.
/// - the primary keys with a client-made id: two ids made in one millisecond with the same 20
///   random bits (a rerun makes new ones);
/// - the backstops of the read-then-write transactions: the next seq of an incident's log and
///   its idempotency keys, incident numbers, the one request per invitation, the next seq of a
///   hospital's history and of the view log.
const RACING_KEYS: &[&str] = &[
    "bureau_pkey",
    "station_pkey",
    "team_pkey",
    "account_pkey",
    "terminal_pkey",
    "enrollment_invite_pkey",
    "enrollment_pkey",
    "enrollment_invite_key",
    "incident_pkey",
    "incident_number_key",
    "incident_event_pkey",
    "incident_event_key_key",
    "hospital_status_log_pkey",
    "view_log_pkey",
];

pub struct PgEmsStore {
    pool: deadpool_postgres::Pool,
    /// How to open the change feed's own connection.
    follow: Box<tokio_postgres::Config>,
}

/// The channel ems processes on one database tell each other of changes on.
const CHANGES_CHANNEL: &str = "ems_changes";

impl PgEmsStore {
    /// Connects to the database at `url` (`postgres://…`) and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let runner = embedded::migrations::runner();
        let store = Self {
            pool: crate::migrated_pool(url, runner, HISTORY_TABLE).await?,
            follow: Box::new({
                // A feed connection is idle for long; a half-open one (a NAT or firewall
                // dropped it) must fail within about half a minute, so the feed reconnects
                // and every stream resyncs, rather than hearing nothing for hours.
                let mut c = crate::config(url)?;
                c.keepalives(true)
                    .keepalives_idle(std::time::Duration::from_secs(15))
                    .keepalives_interval(std::time::Duration::from_secs(5))
                    .keepalives_retries(3);
                c
            }),
        };
        store.backfill_facts().await?;
        Ok(store)
    }

    /// Fills in the statistics rows of incidents written before schema 3 (each under its
    /// incident's row lock, as an append writes them).
    async fn backfill_facts(&self) -> Result<(), StoreError> {
        let client = connection(&self.pool).await?;
        let missing = client
            .query(
                "SELECT i.bureau_id, i.id FROM incident i LEFT JOIN incident_facts f \
                 ON f.bureau_id = i.bureau_id AND f.incident_id = i.id \
                 WHERE f.incident_id IS NULL",
                &[],
            )
            .await
            .map_err(db_err)?;
        drop(client);
        for row in &missing {
            let (bureau, id): (BureauId, IncidentId) = (col(row, 0)?, col(row, 1)?);
            retrying(|| self.refresh_facts_once(bureau, id)).await?;
        }
        if !missing.is_empty() {
            tracing::info!(incidents = missing.len(), "statistics rows filled in");
        }
        Ok(())
    }

    async fn refresh_facts_once(
        &self,
        bureau: BureauId,
        incident: IncidentId,
    ) -> Result<(), Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let log = locked_log(&tx, bureau, incident).await?;
        if let Some(log) = log {
            save_facts(&tx, bureau, incident, &log).await?;
        }
        tx.commit().await.map_err(attempt)?;
        Ok(())
    }
}

/// The incident's log, read after its row is locked (`FOR NO KEY UPDATE`), so the caller's
/// check and write see the same log; `None` if the bureau has no such incident.
async fn locked_log(
    tx: &Transaction<'_>,
    bureau: BureauId,
    incident: IncidentId,
) -> Result<Option<Incident>, Attempt> {
    let ours = tx
        .query_opt(
            "SELECT id FROM incident WHERE bureau_id = $1 AND id = $2 FOR NO KEY UPDATE",
            &[&bureau, &incident],
        )
        .await
        .map_err(attempt)?;
    if ours.is_none() {
        return Ok(None);
    }
    let rows = tx
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM incident_event e \
                 WHERE e.bureau_id = $1 AND e.incident_id = $2 ORDER BY e.seq"
            ),
            &[&bureau, &incident],
        )
        .await
        .map_err(attempt)?;
    Ok(Some(Incident {
        events: rows
            .iter()
            .map(|r| event_from(r, 0, incident))
            .collect::<Result<_, _>>()?,
    }))
}

/// Writes the incident's statistics row from its log as it now stands.
async fn save_facts(
    tx: &Transaction<'_>,
    bureau: BureauId,
    incident: IncidentId,
    log: &Incident,
) -> Result<(), Attempt> {
    let Some(f) = IncidentFacts::of(log) else {
        return Ok(());
    };
    let [a, b, c, d] = f.intervals_s;
    let count = |n: u32, what: &str| to_i32(n, what);
    tx.execute(
        "INSERT INTO incident_facts (bureau_id, incident_id, created_ms, team_id, ward, outcome, \
         consent_or_exception, views, exception_views, arrival_contact_s, contact_vehicle_s, \
         vehicle_departure_s, arrival_departure_s, inquiries, difficult, transported) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (bureau_id, incident_id) DO UPDATE SET created_ms = EXCLUDED.created_ms, \
         team_id = EXCLUDED.team_id, ward = EXCLUDED.ward, outcome = EXCLUDED.outcome, \
         consent_or_exception = EXCLUDED.consent_or_exception, views = EXCLUDED.views, \
         exception_views = EXCLUDED.exception_views, \
         arrival_contact_s = EXCLUDED.arrival_contact_s, \
         contact_vehicle_s = EXCLUDED.contact_vehicle_s, \
         vehicle_departure_s = EXCLUDED.vehicle_departure_s, \
         arrival_departure_s = EXCLUDED.arrival_departure_s, inquiries = EXCLUDED.inquiries, \
         difficult = EXCLUDED.difficult, transported = EXCLUDED.transported",
        &[
            &bureau,
            &incident,
            &f.created_ms,
            &f.team,
            &f.ward,
            &f.outcome.map(|o| o.as_str()),
            &f.consent_or_exception,
            &count(f.views, "views")?,
            &count(f.exception_views, "exception views")?,
            &a,
            &b,
            &c,
            &d,
            &count(f.inquiries, "inquiries")?,
            &f.difficult,
            &f.transported,
        ],
    )
    .await
    .map_err(attempt)?;
    Ok(())
}

/// A batch of past incidents as columns, for one `UNNEST` insert per table.
#[derive(Default)]
struct PastRows {
    incident: Vec<i64>,
    number: Vec<String>,
    created_ms: Vec<i64>,
    team: Vec<Option<i64>>,
    closed: Vec<bool>,
    event_incident: Vec<i64>,
    seq: Vec<i32>,
    at_ms: Vec<i64>,
    device_ms: Vec<Option<i64>>,
    key: Vec<String>,
    actor: Vec<String>,
    kind: Vec<String>,
    facts: Vec<(i64, IncidentFacts)>,
}

impl PastRows {
    fn event(&mut self, incident: IncidentId, e: &Event) -> Result<(), StoreError> {
        self.event_incident.push(incident);
        self.seq.push(to_i32(e.seq, "event seq")?);
        self.at_ms.push(e.at.timestamp_millis());
        self.device_ms
            .push(e.device_at.map(|t| t.timestamp_millis()));
        self.key.push(e.idempotency_key.clone());
        self.actor
            .push(serde_json::to_string(&e.actor).map_err(encoding("actor"))?);
        self.kind
            .push(serde_json::to_string(&e.kind).map_err(encoding("event"))?);
        Ok(())
    }

    fn incident(
        &mut self,
        id: IncidentId,
        number: &str,
        created_ms: i64,
        log: &Incident,
    ) -> Result<(), StoreError> {
        self.incident.push(id);
        self.number.push(number.to_owned());
        self.created_ms.push(created_ms);
        self.team.push(log.assigned_team());
        self.closed.push(log.is_closed());
        if let Some(f) = IncidentFacts::of(log) {
            self.facts.push((id, f));
        }
        Ok(())
    }

    async fn write(&self, tx: &Transaction<'_>, bureau: BureauId) -> Result<(), Attempt> {
        tx.execute(
            "INSERT INTO incident (bureau_id, id, number, created_ms, team_id, closed) \
             SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::bigint[], \
             $6::boolean[])",
            &[
                &bureau,
                &self.incident,
                &self.number,
                &self.created_ms,
                &self.team,
                &self.closed,
            ],
        )
        .await
        .map_err(attempt)?;
        tx.execute(
            "INSERT INTO incident_event (bureau_id, incident_id, seq, at_ms, device_ms, \
             idempotency_key, actor, kind) SELECT $1, * FROM UNNEST($2::bigint[], $3::int[], \
             $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[])",
            &[
                &bureau,
                &self.event_incident,
                &self.seq,
                &self.at_ms,
                &self.device_ms,
                &self.key,
                &self.actor,
                &self.kind,
            ],
        )
        .await
        .map_err(attempt)?;
        let f = &self.facts;
        let count = |n: u32| to_i32(n, "statistics count");
        let interval =
            |i: usize| -> Vec<Option<i64>> { f.iter().map(|(_, x)| x.intervals_s[i]).collect() };
        tx.execute(
            "INSERT INTO incident_facts (bureau_id, incident_id, created_ms, team_id, ward, \
             outcome, consent_or_exception, views, exception_views, arrival_contact_s, \
             contact_vehicle_s, vehicle_departure_s, arrival_departure_s, inquiries, difficult, \
             transported) SELECT $1, * FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[], \
             $5::text[], $6::text[], $7::boolean[], $8::int[], $9::int[], $10::bigint[], \
             $11::bigint[], $12::bigint[], $13::bigint[], $14::int[], $15::boolean[], \
             $16::boolean[])",
            &[
                &bureau,
                &f.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                &f.iter().map(|(_, x)| x.created_ms).collect::<Vec<_>>(),
                &f.iter().map(|(_, x)| x.team).collect::<Vec<_>>(),
                &f.iter().map(|(_, x)| x.ward.clone()).collect::<Vec<_>>(),
                &f.iter()
                    .map(|(_, x)| x.outcome.map(|o| o.as_str()))
                    .collect::<Vec<_>>(),
                &f.iter()
                    .map(|(_, x)| x.consent_or_exception)
                    .collect::<Vec<_>>(),
                &f.iter()
                    .map(|(_, x)| count(x.views))
                    .collect::<Result<Vec<_>, _>>()?,
                &f.iter()
                    .map(|(_, x)| count(x.exception_views))
                    .collect::<Result<Vec<_>, _>>()?,
                &interval(0),
                &interval(1),
                &interval(2),
                &interval(3),
                &f.iter()
                    .map(|(_, x)| count(x.inquiries))
                    .collect::<Result<Vec<_>, _>>()?,
                &f.iter().map(|(_, x)| x.difficult).collect::<Vec<_>>(),
                &f.iter().map(|(_, x)| x.transported).collect::<Vec<_>>(),
            ],
        )
        .await
        .map_err(attempt)?;
        Ok(())
    }
}

/// Appends a view record to its bureau's chain under the chain's head row (`FOR UPDATE`).
async fn append_view(tx: &Transaction<'_>, record: &ViewRecord) -> Result<ChainPosition, Attempt> {
    let head = tx
        .query_opt(
            "SELECT h.bureau_id, h.seq, h.hash FROM view_log_head h \
             JOIN bureau b ON b.id = h.bureau_id WHERE b.code = $1 FOR UPDATE OF h",
            &[&record.bureau],
        )
        .await
        .map_err(attempt)?;
    let Some(head) = head else {
        let known = tx
            .query_opt("SELECT 1 FROM bureau WHERE code = $1", &[&record.bureau])
            .await
            .map_err(attempt)?
            .is_some();
        return Err(if known {
            corrupt(format!(
                "the view log of bureau {} has no head row",
                record.bureau
            ))
        } else {
            StoreError::UnknownOrganisation(record.bureau.clone())
        }
        .into());
    };
    let (bureau, seq, hash): (i64, i64, Option<&[u8]>) =
        (col(&head, 0)?, col(&head, 1)?, col(&head, 2)?);
    let prev = match (seq, hash) {
        (0, _) => None,
        (seq, Some(h)) => Some((seq, hash32(h, format!("view log head {seq}"))?)),
        (seq, None) => return Err(corrupt(format!("view log head {seq} has no hash")).into()),
    };
    let linked = chain(prev, record.clone());
    let entry = serde_json::to_string(&linked.entry).map_err(encoding("view record"))?;
    tx.execute(
        "INSERT INTO view_log (bureau_id, seq, entry, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &bureau,
            &linked.seq,
            &entry,
            &linked.prev_hash.as_slice(),
            &linked.hash.as_slice(),
        ],
    )
    .await
    .map_err(attempt)?;
    tx.execute(
        "UPDATE view_log_head SET seq = $2, hash = $3 WHERE bureau_id = $1",
        &[&bureau, &linked.seq, &linked.hash.as_slice()],
    )
    .await
    .map_err(attempt)?;
    if record.hospital.is_some() {
        tx.execute(
            "INSERT INTO hospital_read_outbox (bureau_id, view_seq, next_try_ms) \
             VALUES ($1, $2, $3)",
            &[&bureau, &linked.seq, &record.at_ms],
        )
        .await
        .map_err(attempt)?;
    }
    Ok(ChainPosition {
        partition: bureau,
        seq: linked.seq,
    })
}

// ---------------------------------------------------------------------------------------------
// Races, ids, columns

fn raced(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            true
        }
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => e
            .as_db_error()
            .and_then(|d| d.constraint())
            .is_some_and(|k| RACING_KEYS.contains(&k)),
        _ => false,
    }
}

fn attempt(e: tokio_postgres::Error) -> Attempt {
    if raced(&e) {
        Attempt::Retry(e)
    } else {
        Attempt::Fail(db_err(e))
    }
}

impl From<Attempt> for Attempt<AppendError> {
    fn from(a: Attempt) -> Self {
        match a {
            Attempt::Retry(e) => Attempt::Retry(e),
            Attempt::Fail(e) => Attempt::Fail(e.into()),
        }
    }
}

impl From<AppendError> for Attempt<AppendError> {
    fn from(e: AppendError) -> Self {
        Attempt::Fail(e)
    }
}

impl From<IncidentError> for Attempt<AppendError> {
    fn from(e: IncidentError) -> Self {
        Attempt::Fail(AppendError::Rule(e))
    }
}

/// A client-made id (`new_id`) that also sorts after every id this process made before: lists
/// are newest first by id, and rows made within one millisecond must keep their order.
fn next_id(now_ms: i64) -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let fresh = new_id(now_ms);
    let prev = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(fresh.max(last.saturating_add(1)))
        })
        .unwrap_or_else(|last| last);
    fresh.max(prev.saturating_add(1))
}

/// The time for ids of rows whose call carries no time.
fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn to_i32(n: u32, what: &str) -> Result<i32, StoreError> {
    i32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} {n} is out of range")))
}

/// The one row found by a credential's hash, which names no bureau: the hash is unique only
/// within a bureau, so one found in two is refused rather than guessed.
fn only_row(mut rows: Vec<Row>, what: &str) -> Result<Option<Row>, StoreError> {
    if rows.len() > 1 {
        return Err(corrupt(format!("{what} is held by more than one bureau")));
    }
    Ok(rows.pop())
}

fn encoding(what: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt(format!("encoding {what}: {e}"))
}

fn ms_to_time(ms: i64) -> Result<DateTime<chrono::Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(format!("timestamp {ms}")))
}

/// The incident's day in Japan time, for its number.
fn japan_day(ms: i64) -> Result<String, StoreError> {
    Ok(ms_to_time(ms)?
        .with_timezone(&myna_domain::stats::JST)
        .format("%Y%m%d")
        .to_string())
}

fn hash32(bytes: &[u8], what: impl std::fmt::Display) -> Result<Hash32, StoreError> {
    crate::hash32(bytes, what).map_err(corrupt)
}

const BUREAU_COLUMNS: &str = "id, code, name, provider_url, provider_credential_file, \
     view_window_s, patient_secret, public_contact";

fn bureau_from(row: &Row) -> Result<Bureau, StoreError> {
    let id: i64 = col(row, 0)?;
    Ok(Bureau {
        id,
        code: col(row, 1)?,
        name: col(row, 2)?,
        provider_url: col(row, 3)?,
        provider_credential_file: col(row, 4)?,
        view_window_s: col(row, 5)?,
        patient_secret: PatientSecret::from_slice(col(row, 6)?)
            .ok_or_else(|| corrupt(format!("bureau {id}: patient_secret is not 32 bytes")))?,
        public_contact: col(row, 7)?,
    })
}

const ACCOUNT_COLUMNS: &str = "a.id, a.bureau_id, a.login, a.display_name, a.role, a.team_id, \
     a.password_hash, a.disabled, a.hospital_id, a.failed_logins, a.locked_until_ms";
/// How many columns `ACCOUNT_COLUMNS` has: a query's own columns come after.
const ACCOUNT_COLUMN_COUNT: usize = 11;

fn account_from(row: &Row) -> Result<Account, StoreError> {
    let role: String = col(row, 4)?;
    Ok(Account {
        id: col(row, 0)?,
        bureau_id: col(row, 1)?,
        login: col(row, 2)?,
        display_name: col(row, 3)?,
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("account role {role:?}")))?,
        team_id: col(row, 5)?,
        password_hash: col(row, 6)?,
        disabled: col(row, 7)?,
        hospital_id: col(row, 8)?,
        failed_logins: to_u32(col(row, 9)?, "failed_logins")?,
        locked_until_ms: col(row, 10)?,
    })
}

const TERMINAL_COLUMNS: &str =
    "id, bureau_id, team_id, label, revoked, cert_sha256 IS NOT NULL, cert_not_after_ms";

fn terminal_from(row: &Row) -> Result<Terminal, StoreError> {
    Ok(Terminal {
        id: col(row, 0)?,
        bureau_id: col(row, 1)?,
        team_id: col(row, 2)?,
        label: col(row, 3)?,
        revoked: col(row, 4)?,
        certificate_bound: col(row, 5)?,
        certificate_not_after_ms: col(row, 6)?,
    })
}

const ENROLLMENT_COLUMNS: &str = "id, bureau_id, label, code, csr_pem, requested_ms, \
     requested_from, state, terminal_id, certificate_pem, team_id";

fn enrollment_from(row: &Row) -> Result<Enrollment, StoreError> {
    let id: EnrollmentId = col(row, 0)?;
    let state: String = col(row, 7)?;
    let terminal: Option<TerminalId> = col(row, 8)?;
    let certificate_pem: Option<String> = col(row, 9)?;
    let state = match (state.as_str(), terminal, certificate_pem) {
        ("pending", _, _) => EnrollmentState::Pending,
        ("rejected", _, _) => EnrollmentState::Rejected,
        ("approved", Some(terminal), Some(certificate_pem)) => EnrollmentState::Approved {
            terminal,
            certificate_pem,
        },
        (other, ..) => return Err(corrupt(format!("enrollment {id}: state {other}"))),
    };
    Ok(Enrollment {
        id,
        bureau_id: col(row, 1)?,
        team_id: col(row, 10)?,
        label: col(row, 2)?,
        code: col(row, 3)?,
        csr_pem: col(row, 4)?,
        requested_ms: col(row, 5)?,
        requested_from: col(row, 6)?,
        state,
    })
}

const EVENT_COLUMNS: &str = "e.seq, e.at_ms, e.device_ms, e.idempotency_key, e.actor, e.kind";

/// The event in `EVENT_COLUMNS` from column `first` on.
fn event_from(row: &Row, first: usize, incident: IncidentId) -> Result<Event, StoreError> {
    let seq = to_u32(col(row, first)?, "event seq")?;
    let device: Option<i64> = col(row, first + 2)?;
    let actor: &str = col(row, first + 4)?;
    let kind: &str = col(row, first + 5)?;
    Ok(Event {
        seq,
        kind: serde_json::from_str::<EventKind>(kind)
            .map_err(|e| corrupt(format!("incident {incident} event {seq}: {e}")))?,
        at: ms_to_time(col(row, first + 1)?)?,
        device_at: device.map(ms_to_time).transpose()?,
        idempotency_key: col(row, first + 3)?,
        actor: serde_json::from_str::<Actor>(actor)
            .map_err(|e| corrupt(format!("incident {incident} event {seq} actor: {e}")))?,
    })
}

/// A view-log row (seq, entry, prev_hash, hash); an undecodable one is a break at its place.
fn view_from<E: serde::de::DeserializeOwned>(
    row: &Row,
) -> Result<Result<ChainedEntry<E>, ChainBreak>, StoreError> {
    let seq: i64 = col(row, 0)?;
    let unreadable = |problem: String| ChainBreak::Unreadable { seq, problem };
    let decoded = (|| -> Result<ChainedEntry<E>, ChainBreak> {
        let entry: &str = row.try_get(1).map_err(|e| unreadable(e.to_string()))?;
        let prev: &[u8] = row.try_get(2).map_err(|e| unreadable(e.to_string()))?;
        let hash: &[u8] = row.try_get(3).map_err(|e| unreadable(e.to_string()))?;
        Ok(ChainedEntry {
            seq,
            entry: serde_json::from_str(entry).map_err(|e| unreadable(e.to_string()))?,
            prev_hash: Hash32::try_from(prev)
                .map_err(|_| unreadable("prev_hash is not 32 bytes".into()))?,
            hash: Hash32::try_from(hash).map_err(|_| unreadable("hash is not 32 bytes".into()))?,
        })
    })();
    Ok(decoded)
}

// ---------------------------------------------------------------------------------------------
// Writes inside a transaction

async fn insert_account(
    tx: &Transaction<'_>,
    bureau: BureauId,
    a: &AccountSeed,
    now_ms: i64,
) -> Result<AccountId, Attempt> {
    let team: Option<TeamId> = match &a.team {
        None => None,
        Some(name) => {
            let row = tx
                .query_opt(
                    "SELECT id FROM team WHERE bureau_id = $1 AND name = $2",
                    &[&bureau, name],
                )
                .await
                .map_err(attempt)?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("account {}: no team {name:?}", a.login))
                })?;
            Some(col(&row, 0)?)
        }
    };
    let id = next_id(now_ms);
    // A hospital account without its hospital (or the reverse) fails the table's check.
    tx.execute(
        "INSERT INTO account (bureau_id, id, login, display_name, role, team_id, hospital_id, \
         password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &bureau,
            &id,
            &a.login,
            &a.display_name,
            &a.role.as_str(),
            &team,
            &a.hospital,
            &a.password_hash,
        ],
    )
    .await
    .map_err(attempt)?;
    Ok(id)
}

/// Checks one event against the log read in this transaction, inserts it as the log's next
/// and refreshes the incident row's denormalised columns.
async fn insert_event(
    tx: &Transaction<'_>,
    bureau: BureauId,
    incident: IncidentId,
    log: &Incident,
    new: &NewEvent,
    now_ms: i64,
) -> Result<Event, Attempt<AppendError>> {
    let event = myna_store::ems::checked_event(log, new, now_ms)?;
    let seq = event.seq;
    let kind = serde_json::to_string(&new.kind).map_err(encoding("event"))?;
    let actor = serde_json::to_string(&new.actor).map_err(encoding("actor"))?;
    tx.execute(
        "INSERT INTO incident_event (bureau_id, incident_id, seq, at_ms, device_ms, \
         idempotency_key, actor, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &bureau,
            &incident,
            &to_i32(seq, "event seq")?,
            &now_ms,
            &new.device_at_ms,
            &new.idempotency_key,
            &actor,
            &kind,
        ],
    )
    .await
    .map_err(attempt)?;
    match &new.kind {
        EventKind::Assigned { team } => {
            tx.execute(
                "UPDATE incident SET team_id = $3 WHERE bureau_id = $1 AND id = $2",
                &[&bureau, &incident, team],
            )
            .await
            .map_err(attempt)?;
        }
        EventKind::Closed => {
            tx.execute(
                "UPDATE incident SET closed = true WHERE bureau_id = $1 AND id = $2",
                &[&bureau, &incident],
            )
            .await
            .map_err(attempt)?;
        }
        _ => {}
    }
    Ok(event)
}

// ---------------------------------------------------------------------------------------------
// One run of each transaction that may lose a race

impl PgEmsStore {
    /// One transaction: a seed that fails half-way leaves nothing. A second seed of the code
    /// waits on `bureau_code_key` for the first and then finds it (ON CONFLICT DO NOTHING).
    async fn seed_once(&self, seed: &BureauSeed) -> Result<BureauId, Attempt> {
        let now = wall_ms();
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let id = next_id(now);
        let inserted = tx
            .query_opt(
                "INSERT INTO bureau (id, code, name, provider_url, provider_credential_file, \
                 view_window_s, patient_secret) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (code) DO NOTHING RETURNING id",
                &[
                    &id,
                    &seed.code,
                    &seed.name,
                    &seed.provider_url,
                    &seed.provider_credential_file,
                    &seed.view_window_s,
                    &seed.patient_secret.as_bytes().as_slice(),
                ],
            )
            .await
            .map_err(attempt)?;
        if inserted.is_none() {
            return Err(StoreError::OrganisationExists(seed.code.clone()).into());
        }
        tx.execute(
            "INSERT INTO view_log_head (bureau_id, seq, hash) VALUES ($1, 0, NULL)",
            &[&id],
        )
        .await
        .map_err(attempt)?;
        for (station, teams) in &seed.stations {
            let station_id = next_id(now);
            tx.execute(
                "INSERT INTO station (bureau_id, id, name) VALUES ($1, $2, $3)",
                &[&id, &station_id, station],
            )
            .await
            .map_err(attempt)?;
            for team in teams {
                tx.execute(
                    "INSERT INTO team (bureau_id, id, station_id, name) VALUES ($1, $2, $3, $4)",
                    &[&id, &next_id(now), &station_id, team],
                )
                .await
                .map_err(attempt)?;
            }
        }
        for a in &seed.accounts {
            insert_account(&tx, id, a, now).await?;
        }
        tx.commit().await.map_err(attempt)?;
        Ok(id)
    }

    async fn add_account_once(
        &self,
        bureau: BureauId,
        account: &AccountSeed,
    ) -> Result<AccountId, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let id = insert_account(&tx, bureau, account, wall_ms()).await?;
        tx.commit().await.map_err(attempt)?;
        Ok(id)
    }

    async fn set_password_once(
        &self,
        bureau: BureauId,
        login: &str,
        password_hash: &str,
    ) -> Result<bool, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let Some(row) = tx
            .query_opt(
                "UPDATE account SET password_hash = $3, failed_logins = 0, \
                 locked_until_ms = NULL WHERE bureau_id = $1 AND login = $2 RETURNING id",
                &[&bureau, &login, &password_hash],
            )
            .await
            .map_err(attempt)?
        else {
            return Ok(false);
        };
        let id: AccountId = col(&row, 0)?;
        tx.execute(
            "DELETE FROM session WHERE bureau_id = $1 AND account_id = $2",
            &[&bureau, &id],
        )
        .await
        .map_err(attempt)?;
        tx.commit().await.map_err(attempt)?;
        Ok(true)
    }

    /// The first UPDATE locks the account's row: failures of one account count one at a time.
    async fn sign_in_failed_once(
        &self,
        bureau: BureauId,
        account: AccountId,
        now_ms: i64,
        policy: LockoutPolicy,
    ) -> Result<Option<Account>, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        // A lock that has ended starts the count again.
        let counted = tx
            .execute(
                "UPDATE account SET \
                 failed_logins = CASE WHEN locked_until_ms <= $3 THEN 1 \
                                      ELSE failed_logins + 1 END, \
                 locked_until_ms = CASE WHEN locked_until_ms <= $3 THEN NULL \
                                        ELSE locked_until_ms END \
                 WHERE bureau_id = $1 AND id = $2",
                &[&bureau, &account, &now_ms],
            )
            .await
            .map_err(attempt)?;
        if counted == 0 {
            return Ok(None);
        }
        // A threshold beyond i32 is never reached.
        let lock_after = i32::try_from(policy.lock_after).unwrap_or(i32::MAX);
        tx.execute(
            "UPDATE account SET locked_until_ms = $3 WHERE bureau_id = $1 AND id = $2 \
             AND failed_logins >= $4 AND locked_until_ms IS NULL",
            &[
                &bureau,
                &account,
                &now_ms.saturating_add(policy.lock_ms),
                &lock_after,
            ],
        )
        .await
        .map_err(attempt)?;
        let row = tx
            .query_one(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM account a WHERE a.bureau_id = $1 AND a.id = $2"
                ),
                &[&bureau, &account],
            )
            .await
            .map_err(attempt)?;
        let after = account_from(&row)?;
        tx.commit().await.map_err(attempt)?;
        Ok(Some(after))
    }

    async fn add_terminal_once(
        &self,
        bureau: BureauId,
        team: TeamId,
        label: &str,
        token_hash: &str,
    ) -> Result<TerminalId, Attempt> {
        let client = connection(&self.pool).await?;
        let id = next_id(wall_ms());
        // Only for a team of this bureau: the row is made from the team's own.
        let n = client
            .execute(
                "INSERT INTO terminal (bureau_id, id, team_id, label, token_hash) \
                 SELECT bureau_id, $3::bigint, id, $4::text, $5::text FROM team \
                 WHERE bureau_id = $1 AND id = $2",
                &[&bureau, &team, &id, &label, &token_hash],
            )
            .await
            .map_err(attempt)?;
        if n != 1 {
            return Err(
                StoreError::Corrupt(format!("team {team} is not in bureau {bureau}")).into(),
            );
        }
        Ok(id)
    }

    async fn revoke_terminal_once(
        &self,
        bureau: BureauId,
        terminal: TerminalId,
    ) -> Result<bool, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let n = tx
            .execute(
                "UPDATE terminal SET revoked = true WHERE bureau_id = $1 AND id = $2",
                &[&bureau, &terminal],
            )
            .await
            .map_err(attempt)?;
        if n != 1 {
            // Not this bureau's terminal: touch nothing, not even its sessions.
            return Ok(false);
        }
        tx.execute(
            "DELETE FROM session WHERE bureau_id = $1 AND terminal_id = $2",
            &[&bureau, &terminal],
        )
        .await
        .map_err(attempt)?;
        tx.commit().await.map_err(attempt)?;
        Ok(true)
    }

    async fn create_invite_once(
        &self,
        bureau: BureauId,
        invite: &NewInvite,
        now_ms: i64,
    ) -> Result<Option<i64>, Attempt> {
        let client = connection(&self.pool).await?;
        let id = next_id(now_ms);
        // Only for a team of this bureau: the row is made from the team's own.
        let n = client
            .execute(
                "INSERT INTO enrollment_invite (bureau_id, id, team_id, secret_hash, created_ms, \
                 created_by, expires_ms) \
                 SELECT bureau_id, $3::bigint, id, $4::text, $5::bigint, $6::text, $7::bigint \
                 FROM team WHERE bureau_id = $1 AND id = $2",
                &[
                    &bureau,
                    &invite.team,
                    &id,
                    &invite.secret_hash,
                    &now_ms,
                    &invite.created_by,
                    &invite.expires_ms,
                ],
            )
            .await
            .map_err(attempt)?;
        Ok((n == 1).then_some(id))
    }

    /// Per bureau, serialised: the cap on pending requests is a count, so the bureau's filings
    /// take turns on its row (`FOR NO KEY UPDATE`, which the key-share locks of other inserts'
    /// foreign-key checks do not wait for). The invitation is claimed by a conditional UPDATE,
    /// so a cancellation or a second tablet racing for it finds it used;
    /// `enrollment_invite_key` is the backstop.
    async fn request_enrollment_once(
        &self,
        bureau: BureauId,
        request: &NewEnrollment,
        limits: EnrollmentLimits,
        now_ms: i64,
    ) -> Result<Filing, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let known = tx
            .query_opt(
                "SELECT id FROM bureau WHERE id = $1 FOR NO KEY UPDATE",
                &[&bureau],
            )
            .await
            .map_err(attempt)?;
        if known.is_none() {
            return Ok(Filing::NoInvite);
        }
        let Some(invite) = tx
            .query_opt(
                "UPDATE enrollment_invite SET used_ms = $3 WHERE bureau_id = $1 \
                 AND secret_hash = $2 AND used_ms IS NULL AND expires_ms > $3 \
                 RETURNING id, team_id",
                &[&bureau, &request.invite_hash, &now_ms],
            )
            .await
            .map_err(attempt)?
        else {
            return Ok(Filing::NoInvite);
        };
        let (invite, team): (i64, TeamId) = (col(&invite, 0)?, col(&invite, 1)?);
        tx.execute(
            "UPDATE enrollment SET state = 'rejected', decided_ms = $2 \
             WHERE bureau_id = $1 AND state = 'pending' AND requested_ms < $3",
            &[
                &bureau,
                &now_ms,
                &now_ms.saturating_sub(limits.pending_for_ms),
            ],
        )
        .await
        .map_err(attempt)?;
        let pending: i64 = col(
            &tx.query_one(
                "SELECT count(*) FROM enrollment WHERE bureau_id = $1 AND state = 'pending'",
                &[&bureau],
            )
            .await
            .map_err(attempt)?,
            0,
        )?;
        if pending >= i64::from(limits.max_pending) {
            // Not committed: the invitation stays open.
            return Ok(Filing::TooManyPending);
        }
        let id = next_id(now_ms);
        tx.execute(
            "INSERT INTO enrollment (bureau_id, id, team_id, invite_id, label, code, csr_pem, \
             poll_hash, requested_ms, requested_from, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')",
            &[
                &bureau,
                &id,
                &team,
                &invite,
                &request.label,
                &request.code,
                &request.csr_pem,
                &request.poll_hash,
                &now_ms,
                &request.requested_from,
            ],
        )
        .await
        .map_err(attempt)?;
        tx.commit().await.map_err(attempt)?;
        Ok(Filing::Filed(id))
    }

    /// The pending request's row is locked (`FOR UPDATE`): a second approval or a rejection
    /// waits, then finds it decided.
    async fn approve_enrollment_once(
        &self,
        bureau: BureauId,
        enrollment: EnrollmentId,
        certificate: &IssuedCertificate,
        limits: EnrollmentLimits,
        now_ms: i64,
    ) -> Result<Option<TerminalId>, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let Some(pending) = tx
            .query_opt(
                "SELECT label, team_id FROM enrollment WHERE bureau_id = $1 AND id = $2 \
                 AND state = 'pending' AND requested_ms >= $3 FOR UPDATE",
                &[
                    &bureau,
                    &enrollment,
                    &now_ms.saturating_sub(limits.pending_for_ms),
                ],
            )
            .await
            .map_err(attempt)?
        else {
            return Ok(None);
        };
        let (label, team): (String, TeamId) = (col(&pending, 0)?, col(&pending, 1)?);
        // Not a token's hash (those are bare hex), so no bearer token ever matches: the
        // terminal proves itself by its certificate alone.
        let unusable_token = format!("certificate:{}", certificate.sha256);
        let terminal = next_id(now_ms);
        tx.execute(
            "INSERT INTO terminal (bureau_id, id, team_id, label, token_hash, cert_sha256, \
             cert_not_after_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &bureau,
                &terminal,
                &team,
                &label,
                &unusable_token,
                &certificate.sha256,
                &certificate.not_after_ms,
            ],
        )
        .await
        .map_err(attempt)?;
        tx.execute(
            "UPDATE enrollment SET state = 'approved', decided_ms = $3, terminal_id = $4, \
             certificate_pem = $5 WHERE bureau_id = $1 AND id = $2",
            &[&bureau, &enrollment, &now_ms, &terminal, &certificate.pem],
        )
        .await
        .map_err(attempt)?;
        tx.commit().await.map_err(attempt)?;
        Ok(Some(terminal))
    }

    /// Numbers are handed out per bureau and Japan day by incrementing that day's row of
    /// `incident_day` (INSERT … ON CONFLICT DO UPDATE, which locks it): creations of one bureau
    /// on one day take turns there, and a rolled-back creation gives its number back.
    /// `incident_number_key` is the backstop.
    async fn create_incident_once(
        &self,
        bureau: BureauId,
        created: &NewEvent,
        now_ms: i64,
    ) -> Result<IncidentRecord, Attempt<AppendError>> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let day = japan_day(now_ms)?;
        let n: i32 = col(
            &tx.query_one(
                "INSERT INTO incident_day (bureau_id, day, last_number) VALUES ($1, $2, 1) \
                 ON CONFLICT (bureau_id, day) \
                 DO UPDATE SET last_number = incident_day.last_number + 1 \
                 RETURNING last_number",
                &[&bureau, &day],
            )
            .await
            .map_err(attempt)?,
            0,
        )?;
        let number = format!("{day}-{n:04}");
        let id = next_id(now_ms);
        tx.execute(
            "INSERT INTO incident (bureau_id, id, number, created_ms) VALUES ($1, $2, $3, $4)",
            &[&bureau, &id, &number, &now_ms],
        )
        .await
        .map_err(attempt)?;
        let event = insert_event(&tx, bureau, id, &Incident::default(), created, now_ms).await?;
        let log = Incident {
            events: vec![event],
        };
        save_facts(&tx, bureau, id, &log).await?;
        tx.commit().await.map_err(attempt)?;
        Ok(IncidentRecord {
            id,
            bureau_id: bureau,
            number,
            log,
        })
    }

    /// Per incident, serialised: the incident's row is locked (`FOR NO KEY UPDATE`) before its
    /// log is read, so the check and the append see the same log; the next seq and the
    /// idempotency key are the backstop (a loser runs again and then sees the winner's event).
    async fn append_once(
        &self,
        bureau: BureauId,
        incident: IncidentId,
        event: &NewEvent,
        now_ms: i64,
    ) -> Result<Appended, Attempt<AppendError>> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let Some(mut log) = locked_log(&tx, bureau, incident).await? else {
            return Err(AppendError::NotFound.into());
        };
        if let Some(done) = log.by_key(&event.idempotency_key) {
            if done.kind != event.kind {
                return Err(AppendError::KeyReused(event.idempotency_key.clone()).into());
            }
            return Ok(Appended::Duplicate(done.clone()));
        }
        let committed = insert_event(&tx, bureau, incident, &log, event, now_ms).await?;
        log.events.push(committed.clone());
        save_facts(&tx, bureau, incident, &log).await?;
        tx.commit().await.map_err(attempt)?;
        Ok(Appended::New(committed))
    }

    /// Serialised per bureau: the bureau's chain head row is locked (`FOR UPDATE`) for the
    /// append; `view_log_pkey` is the backstop.
    async fn record_view_once(&self, record: &ViewRecord) -> Result<ChainPosition, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let at = append_view(&tx, record).await?;
        tx.commit().await.map_err(attempt)?;
        Ok(at)
    }

    /// Serialised per bureau: the bureau's row is locked (`FOR NO KEY UPDATE`) while the chain's last
    /// entry is read and the next appended; `review_log_view_key` makes a second decision on
    /// one view a no-op answer.
    async fn record_review_once(
        &self,
        record: &ReviewRecord,
    ) -> Result<Option<ChainPosition>, Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let Some(b) = tx
            .query_opt(
                "SELECT id FROM bureau WHERE code = $1 FOR NO KEY UPDATE",
                &[&record.bureau],
            )
            .await
            .map_err(attempt)?
        else {
            return Err(StoreError::UnknownOrganisation(record.bureau.clone()).into());
        };
        let bureau: i64 = col(&b, 0)?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM review_log WHERE bureau_id = $1 AND view_partition = $2 \
                 AND view_seq = $3",
                &[&bureau, &record.view_partition, &record.view_seq],
            )
            .await
            .map_err(attempt)?;
        if done.is_some() {
            return Ok(None);
        }
        let prev = tx
            .query_opt(
                "SELECT seq, hash FROM review_log WHERE bureau_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&bureau],
            )
            .await
            .map_err(attempt)?
            .map(|r| -> Result<(i64, Hash32), StoreError> {
                let seq: i64 = col(&r, 0)?;
                Ok((seq, hash32(col(&r, 1)?, format!("review log {seq}"))?))
            })
            .transpose()?;
        let linked = chain(prev, record.clone());
        let entry = serde_json::to_string(&linked.entry).map_err(encoding("review record"))?;
        tx.execute(
            "INSERT INTO review_log (bureau_id, seq, view_partition, view_seq, entry, prev_hash, \
             hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &bureau,
                &linked.seq,
                &record.view_partition,
                &record.view_seq,
                &entry,
                &linked.prev_hash.as_slice(),
                &linked.hash.as_slice(),
            ],
        )
        .await
        .map_err(attempt)?;
        tx.commit().await.map_err(attempt)?;
        Ok(Some(ChainPosition {
            partition: bureau,
            seq: linked.seq,
        }))
    }

    /// One transaction: each Japan day's numbers are taken as one block from `incident_day`,
    /// then the incidents are written as appends write them.
    async fn load_incidents_once(
        &self,
        bureau: BureauId,
        incidents: &[PastIncident],
    ) -> Result<Vec<IncidentId>, Attempt<AppendError>> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let Some(row) = tx
            .query_opt("SELECT code FROM bureau WHERE id = $1", &[&bureau])
            .await
            .map_err(attempt)?
        else {
            return Err(StoreError::InvalidPast(format!("no bureau {bureau}")).into());
        };
        let code: String = col(&row, 0)?;
        let teams: Vec<TeamId> = tx
            .query("SELECT id FROM team WHERE bureau_id = $1", &[&bureau])
            .await
            .map_err(attempt)?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_, _>>()?;
        myna_store::ems::check_past_incidents(incidents, &code, &teams)?;
        let mut days: Vec<String> = Vec::with_capacity(incidents.len());
        let mut per_day: std::collections::BTreeMap<String, i32> = Default::default();
        for past in incidents {
            let created = past.events.first().map_or(0, |(_, at)| *at);
            let day = japan_day(created)?;
            *per_day.entry(day.clone()).or_default() += 1;
            days.push(day);
        }
        let mut next: HashMap<String, i32> = HashMap::new();
        for (day, n) in &per_day {
            let last: i32 = col(
                &tx.query_one(
                    "INSERT INTO incident_day (bureau_id, day, last_number) VALUES ($1, $2, $3) \
                     ON CONFLICT (bureau_id, day) \
                     DO UPDATE SET last_number = incident_day.last_number + EXCLUDED.last_number \
                     RETURNING last_number",
                    &[&bureau, day, n],
                )
                .await
                .map_err(attempt)?,
                0,
            )?;
            next.insert(day.clone(), last - n + 1);
        }
        // Every event is checked in memory first, as `append` checks it; then each table gets
        // one statement for the whole batch.
        let mut ids = Vec::with_capacity(incidents.len());
        let mut rows = PastRows::default();
        let mut views = Vec::new();
        for (past, day) in incidents.iter().zip(&days) {
            let Some(&(_, created_ms)) = past.events.first() else {
                continue;
            };
            let n = next
                .get_mut(day)
                .ok_or_else(|| corrupt("a day without numbers"))?;
            let number = format!("{day}-{:04}", *n);
            *n += 1;
            let id = next_id(created_ms);
            let mut log = Incident::default();
            for (event, at_ms) in &past.events {
                if log.by_key(&event.idempotency_key).is_some() {
                    return Err(AppendError::KeyReused(event.idempotency_key.clone()).into());
                }
                let committed = myna_store::ems::checked_event(&log, event, *at_ms)?;
                rows.event(id, &committed)?;
                log.events.push(committed);
            }
            rows.incident(id, &number, created_ms, &log)?;
            for view in &past.views {
                let mut view = view.clone();
                view.incident_number.clone_from(&number);
                views.push(view);
            }
            ids.push(id);
        }
        rows.write(&tx, bureau).await?;
        for view in &views {
            append_view(&tx, view).await?;
        }
        tx.commit().await.map_err(attempt)?;
        Ok(ids)
    }

    /// Per hospital, serialised: the upsert of the current status locks the hospital's row,
    /// so the next seq of its history is read after the previous change committed;
    /// `hospital_status_log_pkey` is the backstop.
    async fn set_hospital_status_once(
        &self,
        bureau: BureauId,
        change: &StatusChange,
    ) -> Result<(), Attempt> {
        let mut client = connection(&self.pool).await?;
        let tx = client.transaction().await.map_err(attempt)?;
        let status = serde_json::to_string(&change.status).map_err(encoding("hospital status"))?;
        let at = change.status.updated_at.timestamp_millis();
        let hospital = &change.status.hospital_id;
        tx.execute(
            "INSERT INTO hospital_status (bureau_id, hospital_id, status, updated_ms, account_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (bureau_id, hospital_id) DO UPDATE SET \
             status = excluded.status, updated_ms = excluded.updated_ms, \
             account_id = excluded.account_id",
            &[&bureau, hospital, &status, &at, &change.account],
        )
        .await
        .map_err(attempt)?;
        tx.execute(
            "INSERT INTO hospital_status_log (bureau_id, hospital_id, seq, status, updated_ms, \
             account_id) SELECT $1::bigint, $2::text, coalesce(max(seq), 0) + 1, $3::text, \
             $4::bigint, $5::bigint FROM hospital_status_log \
             WHERE bureau_id = $1 AND hospital_id = $2",
            &[&bureau, hospital, &status, &at, &change.account],
        )
        .await
        .map_err(attempt)?;
        tx.commit().await.map_err(attempt)
    }
}

// ---------------------------------------------------------------------------------------------

impl EmsStore for PgEmsStore {
    async fn seed_bureau(&self, seed: BureauSeed) -> Result<BureauId, StoreError> {
        retrying(|| self.seed_once(&seed)).await
    }

    async fn set_public_contact(&self, bureau: BureauId, contact: &str) -> Result<(), StoreError> {
        let client = connection(&self.pool).await?;
        client
            .execute(
                "UPDATE bureau SET public_contact = $2 WHERE id = $1",
                &[&bureau, &contact],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn set_provider(
        &self,
        bureau: BureauId,
        url: &str,
        credential_file: &str,
    ) -> Result<(), StoreError> {
        let client = connection(&self.pool).await?;
        client
            .execute(
                "UPDATE bureau SET provider_url = $2, provider_credential_file = $3 WHERE id = $1",
                &[&bureau, &url, &credential_file],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn bureau(&self, code: &str) -> Result<Option<Bureau>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query_opt(
                &format!("SELECT {BUREAU_COLUMNS} FROM bureau WHERE code = $1"),
                &[&code],
            )
            .await
            .map_err(db_err)?
            .map(|r| bureau_from(&r))
            .transpose()
    }

    async fn bureaus(&self) -> Result<Vec<Bureau>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                &format!("SELECT {BUREAU_COLUMNS} FROM bureau ORDER BY id"),
                &[],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(bureau_from)
            .collect()
    }

    async fn bureau_by_id(&self, id: BureauId) -> Result<Option<Bureau>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query_opt(
                &format!("SELECT {BUREAU_COLUMNS} FROM bureau WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(db_err)?
            .map(|r| bureau_from(&r))
            .transpose()
    }

    async fn teams(&self, bureau: BureauId) -> Result<Vec<Team>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                "SELECT t.id, t.bureau_id, s.name, t.name FROM team t \
                 JOIN station s ON s.bureau_id = t.bureau_id AND s.id = t.station_id \
                 WHERE t.bureau_id = $1 ORDER BY t.id",
                &[&bureau],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                Ok(Team {
                    id: col(r, 0)?,
                    bureau_id: col(r, 1)?,
                    station: col(r, 2)?,
                    name: col(r, 3)?,
                })
            })
            .collect()
    }

    async fn account(&self, bureau: BureauId, login: &str) -> Result<Option<Account>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query_opt(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM account a WHERE a.bureau_id = $1 AND a.login = $2"
                ),
                &[&bureau, &login],
            )
            .await
            .map_err(db_err)?
            .map(|r| account_from(&r))
            .transpose()
    }

    async fn add_account(
        &self,
        bureau: BureauId,
        account: AccountSeed,
    ) -> Result<AccountId, StoreError> {
        retrying(|| self.add_account_once(bureau, &account)).await
    }

    async fn set_password(
        &self,
        bureau: BureauId,
        login: &str,
        password_hash: String,
    ) -> Result<bool, StoreError> {
        retrying(|| self.set_password_once(bureau, login, &password_hash)).await
    }

    async fn sign_in_failed(
        &self,
        bureau: BureauId,
        account: AccountId,
        now_ms: i64,
        policy: LockoutPolicy,
    ) -> Result<Option<Account>, StoreError> {
        retrying(|| self.sign_in_failed_once(bureau, account, now_ms, policy)).await
    }

    async fn sign_in_succeeded(
        &self,
        bureau: BureauId,
        account: AccountId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let client = connection(&self.pool).await?;
        let n = client
            .execute(
                "UPDATE account SET failed_logins = 0, locked_until_ms = NULL \
                 WHERE bureau_id = $1 AND id = $2 \
                 AND (locked_until_ms IS NULL OR locked_until_ms <= $3)",
                &[&bureau, &account, &now_ms],
            )
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn clear_sign_in_failures(
        &self,
        bureau: BureauId,
        login: &str,
    ) -> Result<bool, StoreError> {
        let client = connection(&self.pool).await?;
        let n = client
            .execute(
                "UPDATE account SET failed_logins = 0, locked_until_ms = NULL \
                 WHERE bureau_id = $1 AND login = $2",
                &[&bureau, &login],
            )
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn accounts_with_failures(&self, bureau: BureauId) -> Result<Vec<Account>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM account a WHERE a.bureau_id = $1 \
                     AND (a.failed_logins > 0 OR a.locked_until_ms IS NOT NULL) ORDER BY a.login"
                ),
                &[&bureau],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(account_from)
            .collect()
    }

    async fn create_session(
        &self,
        token_hash: String,
        account: AccountId,
        terminal: Option<TerminalId>,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let client = connection(&self.pool).await?;
        // The trait names the account by id alone: the session takes the account's bureau,
        // and an id found in two bureaus opens nothing. The terminal must be of that bureau
        // too (its foreign key).
        let n = client
            .execute(
                "INSERT INTO session (bureau_id, token_hash, account_id, terminal_id, expires_ms) \
                 SELECT a.bureau_id, $1::text, a.id, $3::bigint, $4::bigint FROM account a \
                 WHERE a.id = $2 AND (SELECT count(*) FROM account WHERE id = $2) = 1",
                &[&token_hash, &account, &terminal, &expires_ms],
            )
            .await
            .map_err(db_err)?;
        if n != 1 {
            return Err(corrupt(format!(
                "account {account} is in no bureau or in more than one"
            )));
        }
        Ok(())
    }

    async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<Session>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS}, s.terminal_id, s.expires_ms FROM session s \
                     JOIN account a ON a.bureau_id = s.bureau_id AND a.id = s.account_id \
                     WHERE s.token_hash = $1 AND s.expires_ms > $2 AND NOT a.disabled LIMIT 2"
                ),
                &[&token_hash, &now_ms],
            )
            .await
            .map_err(db_err)?;
        only_row(rows, "a session token")?
            .map(|r| {
                Ok(Session {
                    account: account_from(&r)?,
                    terminal_id: col(&r, ACCOUNT_COLUMN_COUNT)?,
                    expires_ms: col(&r, ACCOUNT_COLUMN_COUNT + 1)?,
                })
            })
            .transpose()
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let client = connection(&self.pool).await?;
        client
            .execute("DELETE FROM session WHERE token_hash = $1", &[&token_hash])
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn add_terminal(
        &self,
        bureau: BureauId,
        team: TeamId,
        label: &str,
        token_hash: String,
    ) -> Result<TerminalId, StoreError> {
        retrying(|| self.add_terminal_once(bureau, team, label, &token_hash)).await
    }

    async fn revoke_terminal(
        &self,
        bureau: BureauId,
        terminal: TerminalId,
    ) -> Result<bool, StoreError> {
        retrying(|| self.revoke_terminal_once(bureau, terminal)).await
    }

    async fn terminal_by_token(&self, token_hash: &str) -> Result<Option<Terminal>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                &format!("SELECT {TERMINAL_COLUMNS} FROM terminal WHERE token_hash = $1 LIMIT 2"),
                &[&token_hash],
            )
            .await
            .map_err(db_err)?;
        only_row(rows, "a terminal token")?
            .map(|r| terminal_from(&r))
            .transpose()
    }

    async fn terminals(&self, bureau: BureauId) -> Result<Vec<Terminal>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                &format!(
                    "SELECT {TERMINAL_COLUMNS} FROM terminal WHERE bureau_id = $1 ORDER BY id"
                ),
                &[&bureau],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(terminal_from)
            .collect()
    }

    async fn terminal_by_certificate(
        &self,
        cert_sha256: &str,
    ) -> Result<Option<Terminal>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                &format!("SELECT {TERMINAL_COLUMNS} FROM terminal WHERE cert_sha256 = $1 LIMIT 2"),
                &[&cert_sha256],
            )
            .await
            .map_err(db_err)?;
        only_row(rows, "a terminal certificate")?
            .map(|r| terminal_from(&r))
            .transpose()
    }

    async fn create_invite(
        &self,
        bureau: BureauId,
        invite: NewInvite,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        retrying(|| self.create_invite_once(bureau, &invite, now_ms)).await
    }

    async fn open_invites(
        &self,
        bureau: BureauId,
        now_ms: i64,
    ) -> Result<Vec<OpenInvite>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                "SELECT id, team_id, created_ms, created_by, expires_ms FROM enrollment_invite \
                 WHERE bureau_id = $1 AND used_ms IS NULL AND expires_ms > $2 ORDER BY id DESC",
                &[&bureau, &now_ms],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                Ok(OpenInvite {
                    id: col(r, 0)?,
                    team_id: col(r, 1)?,
                    created_ms: col(r, 2)?,
                    created_by: col(r, 3)?,
                    expires_ms: col(r, 4)?,
                })
            })
            .collect()
    }

    async fn cancel_invite(
        &self,
        bureau: BureauId,
        invite: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let client = connection(&self.pool).await?;
        let changed = client
            .execute(
                // Expired since the epoch: a clock stepped back cannot revive it.
                "UPDATE enrollment_invite SET expires_ms = 0 WHERE bureau_id = $1 AND id = $2 \
                 AND used_ms IS NULL AND expires_ms > $3",
                &[&bureau, &invite, &now_ms],
            )
            .await
            .map_err(db_err)?;
        Ok(changed == 1)
    }

    async fn request_enrollment(
        &self,
        bureau: BureauId,
        request: NewEnrollment,
        limits: EnrollmentLimits,
        now_ms: i64,
    ) -> Result<Filing, StoreError> {
        retrying(|| self.request_enrollment_once(bureau, &request, limits, now_ms)).await
    }

    async fn enrollment_by_poll(&self, poll_hash: &str) -> Result<Option<Enrollment>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ENROLLMENT_COLUMNS} FROM enrollment WHERE poll_hash = $1 LIMIT 2"
                ),
                &[&poll_hash],
            )
            .await
            .map_err(db_err)?;
        only_row(rows, "an enrollment poll secret")?
            .map(|r| enrollment_from(&r))
            .transpose()
    }

    async fn enrollments(
        &self,
        bureau: BureauId,
        pending_only: bool,
    ) -> Result<Vec<Enrollment>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                &format!(
                    "SELECT {ENROLLMENT_COLUMNS} FROM enrollment WHERE bureau_id = $1 \
                     AND (NOT $2 OR state = 'pending') ORDER BY id DESC LIMIT 200"
                ),
                &[&bureau, &pending_only],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(enrollment_from)
            .collect()
    }

    async fn approve_enrollment(
        &self,
        bureau: BureauId,
        enrollment: EnrollmentId,
        certificate: IssuedCertificate,
        limits: EnrollmentLimits,
        now_ms: i64,
    ) -> Result<Option<TerminalId>, StoreError> {
        retrying(|| self.approve_enrollment_once(bureau, enrollment, &certificate, limits, now_ms))
            .await
    }

    async fn reject_enrollment(
        &self,
        bureau: BureauId,
        enrollment: EnrollmentId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let client = connection(&self.pool).await?;
        let n = client
            .execute(
                "UPDATE enrollment SET state = 'rejected', decided_ms = $3 \
                 WHERE bureau_id = $1 AND id = $2 AND state = 'pending'",
                &[&bureau, &enrollment, &now_ms],
            )
            .await
            .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn create_incident(
        &self,
        bureau: BureauId,
        created: NewEvent,
        now_ms: i64,
    ) -> Result<IncidentRecord, AppendError> {
        retrying(|| self.create_incident_once(bureau, &created, now_ms)).await
    }

    async fn append(
        &self,
        bureau: BureauId,
        incident: IncidentId,
        event: NewEvent,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        retrying(|| self.append_once(bureau, incident, &event, now_ms)).await
    }

    async fn incident(
        &self,
        bureau: BureauId,
        incident: IncidentId,
    ) -> Result<Option<IncidentRecord>, StoreError> {
        let client = connection(&self.pool).await?;
        // One statement: the number and the log are read from one snapshot.
        let rows = client
            .query(
                &format!(
                    "SELECT i.number, {EVENT_COLUMNS} FROM incident i \
                     JOIN incident_event e ON e.bureau_id = i.bureau_id AND e.incident_id = i.id \
                     WHERE i.bureau_id = $1 AND i.id = $2 ORDER BY e.seq"
                ),
                &[&bureau, &incident],
            )
            .await
            .map_err(db_err)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(IncidentRecord {
            id: incident,
            bureau_id: bureau,
            number: col(first, 0)?,
            log: Incident {
                events: rows
                    .iter()
                    .map(|r| event_from(r, 1, incident))
                    .collect::<Result<_, _>>()?,
            },
        }))
    }

    async fn incidents(
        &self,
        bureau: BureauId,
        filter: IncidentFilter,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        let client = connection(&self.pool).await?;
        // One statement: the chosen incidents and their logs from one snapshot, newest first.
        let rows = client
            .query(
                &format!(
                    "SELECT i.id, i.number, {EVENT_COLUMNS} FROM \
                     (SELECT id, number FROM incident WHERE bureau_id = $1 \
                      AND (NOT $2 OR NOT closed) AND ($3::bigint IS NULL OR team_id = $3) \
                      ORDER BY id DESC LIMIT $4) i \
                     JOIN incident_event e ON e.bureau_id = $1 AND e.incident_id = i.id \
                     ORDER BY i.id DESC, e.seq"
                ),
                &[
                    &bureau,
                    &filter.open_only,
                    &filter.team,
                    &i64::from(filter.limit),
                ],
            )
            .await
            .map_err(db_err)?;
        let mut out: Vec<IncidentRecord> = Vec::new();
        for row in &rows {
            let id: IncidentId = col(row, 0)?;
            let event = event_from(row, 2, id)?;
            match out.last_mut() {
                Some(r) if r.id == id => r.log.events.push(event),
                _ => out.push(IncidentRecord {
                    id,
                    bureau_id: bureau,
                    number: col(row, 1)?,
                    log: Incident {
                        events: vec![event],
                    },
                }),
            }
        }
        Ok(out)
    }

    async fn record_view(&self, record: ViewRecord) -> Result<ChainPosition, StoreError> {
        retrying(|| self.record_view_once(&record)).await
    }

    async fn incident_by_number(
        &self,
        bureau: BureauId,
        number: &str,
    ) -> Result<Option<IncidentRecord>, StoreError> {
        let client = connection(&self.pool).await?;
        let row = client
            .query_opt(
                "SELECT id FROM incident WHERE bureau_id = $1 AND number = $2",
                &[&bureau, &number],
            )
            .await
            .map_err(db_err)?;
        drop(client);
        match row {
            Some(r) => self.incident(bureau, col(&r, 0)?).await,
            None => Ok(None),
        }
    }

    async fn viewed_incident_times(
        &self,
        bureau: BureauId,
    ) -> Result<Vec<(String, myna_domain::review::IncidentTimes)>, StoreError> {
        let contact = myna_store::ems::contact_kind_json()?;
        let client = connection(&self.pool).await?;
        client
            .query(
                "SELECT i.number, i.created_ms, (SELECT min(e.at_ms) \
                 FROM incident_event e WHERE e.bureau_id = i.bureau_id \
                 AND e.incident_id = i.id AND e.kind = $2) \
                 FROM incident i WHERE i.bureau_id = $1 AND i.number IN \
                 (SELECT (v.entry::json)->>'incident_number' FROM view_log v \
                  WHERE v.bureau_id = $1)",
                &[&bureau, &contact],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                Ok((
                    col(r, 0)?,
                    myna_domain::review::IncidentTimes {
                        call_ms: col(r, 1)?,
                        contact_ms: col(r, 2)?,
                    },
                ))
            })
            .collect()
    }

    async fn exception_views(
        &self,
        bureau: &str,
    ) -> Result<Vec<(ChainPosition, ChainedEntry<ViewRecord>)>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                "SELECT v.seq, v.entry, v.prev_hash, v.hash, v.bureau_id FROM view_log v \
                 JOIN bureau b ON b.id = v.bureau_id WHERE b.code = $1 \
                 AND v.entry LIKE '%\"kind\":\"exception\"%' ORDER BY v.seq",
                &[&bureau],
            )
            .await
            .map_err(db_err)?;
        let mut out = Vec::new();
        for r in &rows {
            let e: ChainedEntry<ViewRecord> = view_from(r)?.map_err(|b| corrupt(b.to_string()))?;
            // The text match only narrows the read; the decoded consent decides. A hospital's
            // read of the crew's copy carries the crew's basis: the crew's own view is reviewed.
            if matches!(
                e.entry.consent,
                myna_domain::access::Consent::Exception { .. }
            ) && e.entry.hospital.is_none()
            {
                let partition: i64 = col(r, 4)?;
                out.push((
                    ChainPosition {
                        partition,
                        seq: e.seq,
                    },
                    e,
                ));
            }
        }
        Ok(out)
    }

    async fn record_review(
        &self,
        record: ReviewRecord,
    ) -> Result<Option<ChainPosition>, StoreError> {
        retrying(|| self.record_review_once(&record)).await
    }

    async fn reviews(&self, bureau: &str) -> Result<Vec<ChainedEntry<ReviewRecord>>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                "SELECT r.seq, r.entry, r.prev_hash, r.hash FROM review_log r \
                 JOIN bureau b ON b.id = r.bureau_id WHERE b.code = $1 ORDER BY r.seq",
                &[&bureau],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| view_from(r)?.map_err(|e| corrupt(e.to_string())))
            .collect()
    }

    /// Each bureau's chain in (bureau, seq) order. No head row is kept for this log, so a
    /// chain cut at its end is not found here.
    async fn verify_review_log(&self) -> Result<ChainReport, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                "SELECT seq, entry, prev_hash, hash, bureau_id FROM review_log \
                 ORDER BY bureau_id, seq",
                &[],
            )
            .await
            .map_err(db_err)?;
        let mut v = PartitionedVerifier::default();
        for row in &rows {
            let (seq, bureau): (i64, i64) = (col(row, 0)?, col(row, 4)?);
            let decoded: Result<ChainedEntry<ReviewRecord>, ChainBreak> = view_from(row)?;
            let checked = v
                .begins(bureau, seq)
                .and_then(|_| v.push(decoded.as_ref().map_err(Clone::clone)));
            if let Err(first_break) = checked {
                return Ok(ChainReport::Broken {
                    verified: v.entries(),
                    first_break,
                    chain: Some(bureau),
                    broken_chains: Vec::new(),
                });
            }
        }
        Ok(ChainReport::Intact {
            entries: v.entries(),
            partitions: v.partitions(),
            head_hash: None,
        })
    }

    async fn load_incidents(
        &self,
        bureau: BureauId,
        incidents: Vec<PastIncident>,
    ) -> Result<Vec<IncidentId>, AppendError> {
        retrying(|| self.load_incidents_once(bureau, &incidents)).await
    }

    async fn incident_facts(
        &self,
        bureau: BureauId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(IncidentId, IncidentFacts)>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                "SELECT incident_id, created_ms, team_id, ward, outcome, consent_or_exception, \
                 views, exception_views, arrival_contact_s, contact_vehicle_s, \
                 vehicle_departure_s, arrival_departure_s, inquiries, difficult, transported \
                 FROM incident_facts WHERE bureau_id = $1 AND created_ms >= $2 \
                 AND created_ms < $3 ORDER BY incident_id",
                &[&bureau, &from_ms, &to_ms],
            )
            .await
            .map_err(db_err)?;
        let count = |row: &Row, i: usize| -> Result<u32, StoreError> {
            let n: i32 = col(row, i)?;
            u32::try_from(n).map_err(|_| corrupt(format!("incident_facts count {n}")))
        };
        rows.iter()
            .map(|row| {
                let id: IncidentId = col(row, 0)?;
                let outcome: Option<&str> = col(row, 4)?;
                Ok((
                    id,
                    IncidentFacts {
                        created_ms: col(row, 1)?,
                        team: col(row, 2)?,
                        ward: col(row, 3)?,
                        outcome: outcome
                            .map(|o| {
                                myna_domain::incident::MynaOutcome::parse(o)
                                    .ok_or_else(|| corrupt(format!("incident {id}: outcome {o:?}")))
                            })
                            .transpose()?,
                        consent_or_exception: col(row, 5)?,
                        views: count(row, 6)?,
                        exception_views: count(row, 7)?,
                        intervals_s: [col(row, 8)?, col(row, 9)?, col(row, 10)?, col(row, 11)?],
                        inquiries: count(row, 12)?,
                        difficult: col(row, 13)?,
                        transported: col(row, 14)?,
                    },
                ))
            })
            .collect()
    }

    async fn due_hospital_reads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<PendingHospitalRead>, StoreError> {
        let client = connection(&self.pool).await?;
        let rows = client
            .query(
                "SELECT o.view_seq, v.entry, o.attempts, o.bureau_id \
                 FROM hospital_read_outbox o \
                 LEFT JOIN view_log v ON v.bureau_id = o.bureau_id AND v.seq = o.view_seq \
                 WHERE o.delivered_ms IS NULL AND o.refused_ms IS NULL AND o.next_try_ms <= $1 \
                 ORDER BY o.next_try_ms, o.bureau_id, o.view_seq LIMIT $2",
                &[&now_ms, &i64::from(limit)],
            )
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(PendingHospitalRead {
                    at: ChainPosition {
                        partition: col(r, 3)?,
                        seq: col(r, 0)?,
                    },
                    record: queued_read(col::<Option<&str>>(r, 1)?),
                    attempts: to_u32(col(r, 2)?, "outbox attempts")?,
                })
            })
            .collect()
    }

    async fn hospital_read_outbox(&self, bureau: &str) -> Result<HospitalReadOutbox, StoreError> {
        let client = connection(&self.pool).await?;
        let counts = client
            .query_one(
                "SELECT count(o.delivered_ms), \
                 count(*) FILTER (WHERE o.delivered_ms IS NULL AND o.refused_ms IS NULL) \
                 FROM hospital_read_outbox o JOIN bureau b ON b.id = o.bureau_id \
                 WHERE b.code = $1",
                &[&bureau],
            )
            .await
            .map_err(db_err)?;
        let count = |i: usize| -> Result<u64, StoreError> {
            u64::try_from(col::<i64>(&counts, i)?).map_err(|_| corrupt("a negative count"))
        };
        let refused = client
            .query(
                "SELECT o.bureau_id, o.view_seq, o.refused_ms, coalesce(o.last_error, '') \
                 FROM hospital_read_outbox o JOIN bureau b ON b.id = o.bureau_id \
                 WHERE b.code = $1 AND o.refused_ms IS NOT NULL \
                 ORDER BY o.refused_ms, o.view_seq",
                &[&bureau],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                Ok(RefusedHospitalRead {
                    at: ChainPosition {
                        partition: col(r, 0)?,
                        seq: col(r, 1)?,
                    },
                    refused_ms: col(r, 2)?,
                    error: col(r, 3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(HospitalReadOutbox {
            delivered: count(0)?,
            waiting: count(1)?,
            refused,
        })
    }

    async fn requeue_refused_hospital_reads(
        &self,
        bureau: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .execute(
                "UPDATE hospital_read_outbox o SET refused_ms = NULL, next_try_ms = $2 \
                 FROM bureau b WHERE b.id = o.bureau_id AND b.code = $1 \
                 AND o.refused_ms IS NOT NULL",
                &[&bureau, &now_ms],
            )
            .await
            .map_err(db_err)
    }

    async fn settle_hospital_read(
        &self,
        at: ChainPosition,
        now_ms: i64,
        outcome: HospitalReadOutcome,
    ) -> Result<bool, StoreError> {
        let client = connection(&self.pool).await?;
        let open = "WHERE bureau_id = $1 AND view_seq = $2 AND delivered_ms IS NULL \
                    AND refused_ms IS NULL";
        let n = match outcome {
            HospitalReadOutcome::Delivered { provider_access_id } => {
                client
                    .execute(
                        &format!(
                            "UPDATE hospital_read_outbox SET attempts = attempts + 1, \
                             delivered_ms = $3, provider_access_id = $4, last_error = NULL {open}"
                        ),
                        &[&at.partition, &at.seq, &now_ms, &provider_access_id],
                    )
                    .await
            }
            HospitalReadOutcome::Retry { next_try_ms, error } => {
                client
                    .execute(
                        &format!(
                            "UPDATE hospital_read_outbox SET attempts = attempts + 1, \
                             next_try_ms = $3, last_error = $4 {open}"
                        ),
                        &[&at.partition, &at.seq, &next_try_ms, &error],
                    )
                    .await
            }
            HospitalReadOutcome::Refused { error } => {
                client
                    .execute(
                        &format!(
                            "UPDATE hospital_read_outbox SET attempts = attempts + 1, \
                             refused_ms = $3, last_error = $4 {open}"
                        ),
                        &[&at.partition, &at.seq, &now_ms, &error],
                    )
                    .await
            }
        }
        .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn view_records(
        &self,
        bureau: &str,
        limit: u32,
    ) -> Result<Vec<ChainedEntry<ViewRecord>>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                "SELECT v.seq, v.entry, v.prev_hash, v.hash FROM view_log v \
                 JOIN bureau b ON b.id = v.bureau_id WHERE b.code = $1 \
                 ORDER BY v.seq DESC LIMIT $2",
                &[&bureau, &i64::from(limit)],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| view_from(r)?.map_err(|e| corrupt(e.to_string())))
            .collect()
    }

    /// Walks the bureaus' chains in (bureau, seq) order, in one snapshot with the bureaus' head
    /// rows (`REPEATABLE READ`), so each chain must end exactly at its head: a head beyond the
    /// chain (or a head over no entry) means the newest entries were removed, a head that is
    /// not the chain's last entry means the chain or its head was rewritten, a bureau without a
    /// head row means its head was removed, and an entry naming another bureau than the chain
    /// it sits in was moved.
    async fn verify_view_log(&self) -> Result<ChainReport, StoreError> {
        Ok(self.view_log_walk(Default::default()).await?.report)
    }

    /// In one `REPEATABLE READ` snapshot: the heads kept are the ends of the chains verified.
    async fn view_log_walk(
        &self,
        places: std::collections::BTreeMap<i64, i64>,
    ) -> Result<myna_store::ChainWalk, StoreError> {
        let mut client = connection(&self.pool).await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db_err)?;
        tx.batch_execute(crate::WALK_LIMITS).await.map_err(db_err)?;
        // Every bureau with its head (seq, hash); a missing row is corruption.
        let mut heads: HashMap<i64, (String, i64, Option<Hash32>)> = HashMap::new();
        for r in tx
            .query(
                "SELECT b.id, b.code, h.seq, h.hash FROM bureau b \
                 LEFT JOIN view_log_head h ON h.bureau_id = b.id",
                &[],
            )
            .await
            .map_err(db_err)?
        {
            let (id, code): (i64, String) = (col(&r, 0)?, col(&r, 1)?);
            let Some(seq) = col::<Option<i64>>(&r, 2)? else {
                return Err(corrupt(format!("bureau {code} has no view-log head row")));
            };
            let hash = col::<Option<&[u8]>>(&r, 3)?
                .map(|h| hash32(h, format!("bureau {code}'s view-log head")))
                .transpose()?;
            heads.insert(id, (code, seq, hash));
        }
        let stream = tx
            .query_raw(
                "SELECT seq, entry, prev_hash, hash, bureau_id FROM view_log \
                 ORDER BY bureau_id, seq",
                std::iter::empty::<i64>(),
            )
            .await
            .map_err(db_err)?;
        pin_mut!(stream);
        let mut v = PartitionedVerifier::keeping_heads(places);
        let codes: HashMap<i64, String> = heads.iter().map(|(id, h)| (*id, h.0.clone())).collect();
        let broken = |v: &PartitionedVerifier, bureau: i64, first_break: ChainBreak| {
            // The code is the name an operator knows; the id is the chain's key in the table.
            let code = codes.get(&bureau).map_or("(no bureau row)", String::as_str);
            tracing::error!(bureau = code, bureau_id = bureau, %first_break, "view log broken");
            Ok(myna_store::ChainWalk {
                report: ChainReport::Broken {
                    verified: v.entries(),
                    first_break,
                    chain: Some(bureau),
                    broken_chains: Vec::new(),
                },
                heads: Vec::new(),
                found: Default::default(),
            })
        };
        // A finished chain against its head: it must end exactly there.
        type Heads = HashMap<i64, (String, i64, Option<Hash32>)>;
        fn against_head(
            heads: &mut Heads,
            (bureau, (last, hash)): ChainHead,
        ) -> Option<ChainBreak> {
            match heads.remove(&bureau) {
                Some((_, seq, Some(h))) if seq == last && h == hash => None,
                Some((_, seq, _)) if seq > last => Some(ChainBreak::Truncated { seq }),
                _ => Some(ChainBreak::Rewritten { seq: last }),
            }
        }
        while let Some(row) = stream.next().await {
            let row = row.map_err(db_err)?;
            let bureau: i64 = col(&row, 4)?;
            let seq: i64 = col(&row, 0)?;
            match v.begins(bureau, seq) {
                Err(first_break) => return broken(&v, bureau, first_break),
                Ok(Some(ended)) => {
                    if let Some(first_break) = against_head(&mut heads, ended) {
                        return broken(&v, ended.0, first_break);
                    }
                }
                Ok(None) => {}
            }
            let code = heads.get(&bureau).map(|(code, _, _)| code.as_str());
            let decoded = view_from::<ViewRecord>(&row)?.and_then(|e| match code {
                Some(code) if e.entry.bureau == code => Ok(e),
                _ => Err(ChainBreak::Unreadable {
                    seq,
                    problem: format!(
                        "the entry names bureau {} but sits in another bureau's chain",
                        e.entry.bureau
                    ),
                }),
            });
            if let Err(first_break) = v.push(decoded.as_ref().map_err(Clone::clone)) {
                return broken(&v, bureau, first_break);
            }
        }
        if let Some(last) = v.last()
            && let Some(first_break) = against_head(&mut heads, last)
        {
            return broken(&v, last.0, first_break);
        }
        // Heads of bureaus the walk found no entry of: emptied, unless never written to.
        if let Some((bureau, (_, seq, _))) = heads.iter().find(|(_, (_, seq, _))| *seq > 0) {
            return broken(&v, *bureau, ChainBreak::Truncated { seq: *seq });
        }
        tx.commit().await.map_err(db_err)?;
        let head_hash = match (v.last(), v.partitions()) {
            (Some((_, (_, h))), 1) => Some(hex::encode(h)),
            _ => None,
        };
        let report = ChainReport::Intact {
            entries: v.entries(),
            partitions: v.partitions(),
            head_hash,
        };
        let (heads, found) = v.into_heads();
        Ok(myna_store::ChainWalk {
            report,
            heads,
            found,
        })
    }

    async fn view_log_hash(&self, at: ChainPosition) -> Result<Option<Hash32>, StoreError> {
        let client = connection(&self.pool).await?;
        let row = client
            .query_opt(
                "SELECT hash FROM view_log WHERE bureau_id = $1 AND seq = $2",
                &[&at.partition, &at.seq],
            )
            .await
            .map_err(db_err)?;
        row.map(|r| hash32(col(&r, 0)?, format!("view log {at:?}")))
            .transpose()
    }

    async fn set_hospital_status(
        &self,
        bureau: BureauId,
        change: StatusChange,
    ) -> Result<(), StoreError> {
        retrying(|| self.set_hospital_status_once(bureau, &change)).await
    }

    async fn hospital_statuses(&self, bureau: BureauId) -> Result<Vec<HospitalStatus>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                "SELECT status FROM hospital_status WHERE bureau_id = $1 ORDER BY hospital_id",
                &[&bureau],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                serde_json::from_str(col(r, 0)?)
                    .map_err(|e| corrupt(format!("hospital status: {e}")))
            })
            .collect()
    }

    async fn hospital_status_history(
        &self,
        bureau: BureauId,
        hospital: &str,
        limit: u32,
    ) -> Result<Vec<StatusChange>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                "SELECT status, account_id FROM hospital_status_log WHERE bureau_id = $1 \
                 AND hospital_id = $2 ORDER BY seq DESC LIMIT $3",
                &[&bureau, &hospital, &i64::from(limit)],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                Ok(StatusChange {
                    status: serde_json::from_str(col(r, 0)?)
                        .map_err(|e| corrupt(format!("hospital status: {e}")))?,
                    account: col(r, 1)?,
                })
            })
            .collect()
    }

    async fn save_handoff(
        &self,
        bureau: BureauId,
        incident: IncidentId,
        snapshot: HandoffSnapshot,
    ) -> Result<(), StoreError> {
        let snapshot_json = serde_json::to_string(&snapshot).map_err(encoding("handoff"))?;
        let patient_number = to_i32(snapshot.patient_number, "patient number")?;
        let client = connection(&self.pool).await?;
        // One statement, written only for an incident of this bureau.
        let n = client
            .execute(
                "INSERT INTO handoff_snapshot (bureau_id, incident_id, patient, view, \
                 patient_number, saved_ms, snapshot) \
                 SELECT bureau_id, id, $3::text, $4::text, $5::integer, $6::bigint, $7::text \
                 FROM incident WHERE bureau_id = $1 AND id = $2 \
                 ON CONFLICT (bureau_id, incident_id, patient, view) DO UPDATE SET \
                 patient_number = excluded.patient_number, saved_ms = excluded.saved_ms, \
                 snapshot = excluded.snapshot",
                &[
                    &bureau,
                    &incident,
                    &snapshot.patient.as_str(),
                    &snapshot.view.as_str(),
                    &patient_number,
                    &snapshot.saved_ms,
                    &snapshot_json,
                ],
            )
            .await
            .map_err(db_err)?;
        if n != 1 {
            return Err(StoreError::Corrupt(format!(
                "no incident {incident} in bureau {bureau}"
            )));
        }
        Ok(())
    }

    async fn purge_handoffs(&self, now_ms: i64) -> Result<u64, StoreError> {
        let client = connection(&self.pool).await?;
        // Across bureaus, each by its own window.
        client
            .execute(
                "DELETE FROM handoff_snapshot WHERE (bureau_id, incident_id) IN \
                 (SELECT i.bureau_id, i.id FROM incident i JOIN bureau b ON b.id = i.bureau_id \
                  WHERE i.created_ms < $1 - 2 * b.view_window_s * 1000)",
                &[&now_ms],
            )
            .await
            .map_err(db_err)
    }

    async fn handoffs(
        &self,
        bureau: BureauId,
        incident: IncidentId,
    ) -> Result<Vec<HandoffSnapshot>, StoreError> {
        let client = connection(&self.pool).await?;
        client
            .query(
                "SELECT snapshot FROM handoff_snapshot WHERE bureau_id = $1 AND incident_id = $2 \
                 ORDER BY patient_number, view",
                &[&bureau, &incident],
            )
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| serde_json::from_str(col(r, 0)?).map_err(|e| corrupt(format!("handoff: {e}"))))
            .collect()
    }

    /// `NOTIFY` on the channel every ems process on this database listens to, tried three
    /// times over about a second.
    async fn publish_change(&self, note: ChangeNote) {
        let payload = note.encode();
        for attempt in 1..=3u64 {
            let sent = match connection(&self.pool).await {
                Ok(client) => client
                    .execute("SELECT pg_notify($1, $2)", &[&CHANGES_CHANNEL, &payload])
                    .await
                    .map_err(db_err),
                Err(e) => Err(e),
            };
            match sent {
                Ok(_) => return,
                Err(e) if attempt == 3 => {
                    // The change is committed; other processes' streams learn of it only when
                    // their screens reload (not built: a periodic refresh on the tablet).
                    tracing::error!(error = %e, "could not tell other ems processes of a change");
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "telling other ems processes failed; again");
                    tokio::time::sleep(std::time::Duration::from_millis(300 * attempt)).await;
                }
            }
        }
    }

    /// `LISTEN` on a connection of its own (a pooled one would be handed to others), driven
    /// here so its notifications are read.
    async fn follow_changes(&self, deliver: ChangeSink) -> Result<(), StoreError> {
        let (client, mut connection) = self
            .follow
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(db_err)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(n) = message
                    && tx.send(n.payload().to_owned()).is_err()
                {
                    break;
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
            .await
            .map_err(db_err)?;
        deliver(Feed::Listening);
        while let Some(payload) = rx.recv().await {
            match ChangeNote::decode(&payload) {
                Some(note) => deliver(Feed::Note(note)),
                None => tracing::warn!(payload, "an unreadable change note"),
            }
        }
        driver.abort();
        Err(StoreError::Unavailable(
            "the change feed's connection closed".into(),
        ))
    }
}
