//! SQLite backend of the `ems` store: one file, WAL with `synchronous=FULL`, so an event or a
//! view record is on disk before the call returns. The `ems` load is small (a bureau's tens of
//! teams), so one connection behind a mutex, used from blocking threads, is enough.

use crate::rows::{corrupt, db_err};
use crate::schema_version;
use chrono::DateTime;
use myna_domain::access::{ChainVerifier, ChainedEntry, Hash32, chain};
use myna_domain::hospitals::HospitalStatus;
use myna_domain::incident::{Actor, Event, EventKind, Incident, ViewRecord};
use myna_domain::patient::PatientSecret;
use myna_domain::review::ReviewRecord;
use myna_domain::stats::IncidentFacts;
use myna_store::StoreError;
use myna_store::ems::{
    Account, AccountId, AccountSeed, AppendError, Appended, Bureau, BureauId, BureauSeed, EmsStore,
    HandoffSnapshot, HospitalReadOutbox, HospitalReadOutcome, IncidentFilter, IncidentId,
    IncidentRecord, LockoutPolicy, NewEvent, PastIncident, PendingHospitalRead,
    RefusedHospitalRead, Role, Session, StatusChange, Team, TeamId, Terminal, TerminalId,
    queued_read,
};
use myna_store::ems::{
    Enrollment, EnrollmentId, EnrollmentLimits, EnrollmentState, Filing, IssuedCertificate,
    NewEnrollment, NewInvite, OpenInvite,
};
use myna_store::{ChainPosition, ChainReport};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

mod embedded {
    refinery::embed_migrations!("migrations_ems");
}

pub struct EmsSqlite {
    conn: Arc<Mutex<Connection>>,
}

impl EmsSqlite {
    /// Opens (creating if needed) the ems database and runs its migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        crate::create_owner_only(path)?;
        let mut conn = Connection::open(path).map_err(db_err)?;
        // Foreign keys are off while migrating (a migration may rebuild a table, as SQLite
        // asks), then on, and checked.
        // secure_delete: a deleted row (a session, a copy past its time, a credential an older
        // version kept) leaves no bytes in the file.
        crate::set_pragmas(
            &conn,
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = OFF; PRAGMA secure_delete = ON;",
        )?;
        refuse_unbound_history(&conn, path)?;
        let before = schema_version(&conn);
        crate::migrate(&mut conn, embedded::migrations::runner, path)?;
        if before.is_some_and(|v| v < CREDENTIAL_LEFT_SCHEMA) {
            // The provider credential an older version kept in clear was dropped: rewrite the
            // file and empty the WAL so no copy of it survives in free pages.
            conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(db_err)?;
            tracing::warn!(
                file = %path.display(),
                "the provider credential was removed from the database; point each bureau at \
                 its credential file with `ems set-provider`, and rotate the credential"
            );
        }
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(db_err)?;
        let dangling: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .map_err(db_err)?;
        if dangling > 0 {
            return Err(corrupt(format!(
                "{}: {dangling} rows reference missing rows",
                path.display()
            )));
        }
        backfill_facts(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T, E>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Unavailable("the ems database lock is poisoned".into()))?;
            job(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("database task failed: {e}")))?
    }
}

/// A file below this schema may hold the provider credential an older version kept (dropped
/// at V4; V5 marks the files vacuumed since, as V4 ran without `secure_delete`).
const CREDENTIAL_LEFT_SCHEMA: i64 = 5;

/// The applied schema version; `None` for a new file.
/// A database written before consent was bound to a patient (schema 1) holds face checks and
/// consents that name no card. They cannot be read under the per-patient rule and must not be
/// rewritten (the view log is hash-chained), so such a file is refused with a plain message.
fn refuse_unbound_history(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    // A new file has no history table yet: there is nothing to refuse.
    if schema_version(conn) != Some(1) {
        return Ok(());
    }
    let used: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM incident_event) + (SELECT count(*) FROM view_log)",
            [],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if used > 0 {
        return Err(StoreError::Unavailable(format!(
            "{} was written by an older ems whose consents name no patient; keep it for the \
             record and start this version on a new database file",
            path.display()
        )));
    }
    Ok(())
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)
}

fn bureau_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bureau> {
    Ok(Bureau {
        id: r.get(0)?,
        code: r.get(1)?,
        name: r.get(2)?,
        provider_url: r.get(3)?,
        provider_credential_file: r.get(4)?,
        view_window_s: r.get(5)?,
        patient_secret: {
            let bytes: Vec<u8> = r.get(6)?;
            PatientSecret::from_slice(&bytes).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    6,
                    rusqlite::types::Type::Blob,
                    "bureau.patient_secret is not 32 bytes".into(),
                )
            })?
        },
        public_contact: r.get(7)?,
    })
}

const BUREAU_COLS: &str = "id, code, name, provider_url, provider_credential_file, view_window_s, \
     patient_secret, public_contact";
const ACCOUNT_COLS: &str = "a.id, a.bureau_id, a.login, a.display_name, a.role, a.team_id, \
     a.password_hash, a.disabled, a.hospital_id, a.failed_logins, a.locked_until_ms";
/// How many columns `ACCOUNT_COLS` has: a query's own columns come after.
const ACCOUNT_COL_COUNT: usize = 11;

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Account, String)> {
    let role: String = r.get(4)?;
    Ok((
        Account {
            id: r.get(0)?,
            bureau_id: r.get(1)?,
            login: r.get(2)?,
            display_name: r.get(3)?,
            role: Role::Crew,
            team_id: r.get(5)?,
            password_hash: r.get(6)?,
            disabled: r.get(7)?,
            hospital_id: r.get(8)?,
            failed_logins: r.get(9)?,
            locked_until_ms: r.get(10)?,
        },
        role,
    ))
}

fn with_role((mut a, role): (Account, String)) -> Result<Account, StoreError> {
    a.role = Role::parse(&role).ok_or_else(|| corrupt(format!("account role {role:?}")))?;
    Ok(a)
}

fn terminal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Terminal> {
    Ok(Terminal {
        id: r.get(0)?,
        bureau_id: r.get(1)?,
        team_id: r.get(2)?,
        label: r.get(3)?,
        revoked: r.get(4)?,
        certificate_bound: r.get(5)?,
        certificate_not_after_ms: r.get(6)?,
    })
}

const TERMINAL_COLUMNS: &str =
    "id, bureau_id, team_id, label, revoked, cert_sha256 IS NOT NULL, cert_not_after_ms";

const ENROLLMENT_COLUMNS: &str = "id, bureau_id, label, code, csr_pem, requested_ms, \
     requested_from, state, terminal_id, certificate_pem, team_id";

fn enrollment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Enrollment, Option<String>)> {
    let state: String = r.get(7)?;
    let terminal: Option<TerminalId> = r.get(8)?;
    let certificate_pem: Option<String> = r.get(9)?;
    let (state, problem) = match (state.as_str(), terminal, certificate_pem) {
        ("pending", _, _) => (EnrollmentState::Pending, None),
        ("rejected", _, _) => (EnrollmentState::Rejected, None),
        ("approved", Some(terminal), Some(certificate_pem)) => (
            EnrollmentState::Approved {
                terminal,
                certificate_pem,
            },
            None,
        ),
        (other, ..) => (
            EnrollmentState::Rejected,
            Some(format!("enrollment state {other}")),
        ),
    };
    Ok((
        Enrollment {
            id: r.get(0)?,
            bureau_id: r.get(1)?,
            team_id: r.get(10)?,
            label: r.get(2)?,
            code: r.get(3)?,
            csr_pem: r.get(4)?,
            requested_ms: r.get(5)?,
            requested_from: r.get(6)?,
            state,
        },
        problem,
    ))
}

/// An enrollment row, or `Corrupt` if its state and columns disagree.
fn checked_enrollment(row: (Enrollment, Option<String>)) -> Result<Enrollment, StoreError> {
    match row {
        (e, None) => Ok(e),
        (e, Some(problem)) => Err(corrupt(format!("enrollment {}: {problem}", e.id))),
    }
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

fn load_log(conn: &Connection, incident: IncidentId) -> Result<Incident, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, at_ms, device_ms, idempotency_key, actor, kind FROM incident_event \
             WHERE incident_id = ?1 ORDER BY seq",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([incident], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(db_err)?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, at, device, key, actor, kind) = row.map_err(db_err)?;
        events.push(Event {
            seq,
            kind: serde_json::from_str::<EventKind>(&kind)
                .map_err(|e| corrupt(format!("incident {incident} event {seq}: {e}")))?,
            at: ms_to_time(at)?,
            device_at: device.map(ms_to_time).transpose()?,
            idempotency_key: key,
            actor: serde_json::from_str::<Actor>(&actor)
                .map_err(|e| corrupt(format!("incident {incident} event {seq} actor: {e}")))?,
        });
    }
    Ok(Incident { events })
}

fn load_incident(
    conn: &Connection,
    bureau: BureauId,
    id: IncidentId,
) -> Result<Option<IncidentRecord>, StoreError> {
    let number: Option<String> = conn
        .query_row(
            "SELECT number FROM incident WHERE id = ?1 AND bureau_id = ?2",
            params![id, bureau],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    let Some(number) = number else {
        return Ok(None);
    };
    Ok(Some(IncidentRecord {
        id,
        bureau_id: bureau,
        number,
        log: load_log(conn, id)?,
    }))
}

/// The next number of the bureau's Japan day `day` (e.g. `20261124`): one more than the
/// incidents numbered that day so far.
fn next_number(tx: &Transaction<'_>, bureau: BureauId, day: &str) -> Result<i64, StoreError> {
    // A range, not LIKE: it uses the (bureau_id, number) index ('.' sorts right after '-').
    let n: i64 = tx
        .query_row(
            "SELECT count(*) FROM incident WHERE bureau_id = ?1 AND number >= ?2 AND number < ?3",
            params![bureau, format!("{day}-"), format!("{day}.")],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    Ok(n + 1)
}

fn insert_incident(
    tx: &Transaction<'_>,
    bureau: BureauId,
    number: &str,
    created_ms: i64,
) -> Result<IncidentId, StoreError> {
    tx.execute(
        "INSERT INTO incident (bureau_id, number, created_ms) VALUES (?1, ?2, ?3)",
        params![bureau, number, created_ms],
    )
    .map_err(db_err)?;
    Ok(tx.last_insert_rowid())
}

/// Writes the incident's statistics row from its log as it now stands.
fn save_facts(
    conn: &Connection,
    bureau: BureauId,
    incident: IncidentId,
    log: &Incident,
) -> Result<(), StoreError> {
    let Some(f) = IncidentFacts::of(log) else {
        return Ok(());
    };
    let [a, b, c, d] = f.intervals_s;
    conn.prepare_cached(
        "INSERT INTO incident_facts (incident_id, bureau_id, created_ms, team_id, ward, \
         outcome, consent_or_exception, views, exception_views, arrival_contact_s, \
         contact_vehicle_s, vehicle_departure_s, arrival_departure_s, inquiries, difficult, \
         transported) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
         ON CONFLICT (incident_id) DO UPDATE SET bureau_id = excluded.bureau_id, \
         created_ms = excluded.created_ms, team_id = excluded.team_id, ward = excluded.ward, \
         outcome = excluded.outcome, consent_or_exception = excluded.consent_or_exception, \
         views = excluded.views, exception_views = excluded.exception_views, \
         arrival_contact_s = excluded.arrival_contact_s, \
         contact_vehicle_s = excluded.contact_vehicle_s, \
         vehicle_departure_s = excluded.vehicle_departure_s, \
         arrival_departure_s = excluded.arrival_departure_s, inquiries = excluded.inquiries, \
         difficult = excluded.difficult, transported = excluded.transported",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            incident,
            bureau,
            f.created_ms,
            f.team,
            f.ward,
            f.outcome.map(|o| o.as_str()),
            f.consent_or_exception,
            f.views,
            f.exception_views,
            a,
            b,
            c,
            d,
            f.inquiries,
            f.difficult,
            f.transported
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

fn facts_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(IncidentId, IncidentFacts, Option<String>)> {
    Ok((
        r.get(0)?,
        IncidentFacts {
            created_ms: r.get(1)?,
            team: r.get(2)?,
            ward: r.get(3)?,
            outcome: None,
            consent_or_exception: r.get(5)?,
            views: r.get(6)?,
            exception_views: r.get(7)?,
            intervals_s: [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?],
            inquiries: r.get(12)?,
            difficult: r.get(13)?,
            transported: r.get(14)?,
        },
        r.get(4)?,
    ))
}

/// Fills in the statistics rows of incidents written before schema 7 (once: afterwards every
/// append keeps them).
fn backfill_facts(conn: &mut Connection) -> Result<(), StoreError> {
    let missing: Vec<(IncidentId, BureauId)> = {
        let mut stmt = conn
            .prepare(
                "SELECT i.id, i.bureau_id FROM incident i \
                 LEFT JOIN incident_facts f ON f.incident_id = i.id WHERE f.incident_id IS NULL",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
    };
    if missing.is_empty() {
        return Ok(());
    }
    // In transactions of a thousand, so no other process waits on the file for long.
    for chunk in missing.chunks(1000) {
        let tx = immediate(conn)?;
        for (id, bureau) in chunk {
            let log = load_log(&tx, *id)?;
            save_facts(&tx, *bureau, *id, &log)?;
        }
        tx.commit().map_err(db_err)?;
    }
    tracing::info!(incidents = missing.len(), "statistics rows filled in");
    Ok(())
}

/// Inserts one checked event and refreshes the incident row's denormalised columns.
fn insert_event(
    tx: &Transaction<'_>,
    incident: IncidentId,
    log: &Incident,
    new: &NewEvent,
    now_ms: i64,
) -> Result<Event, AppendError> {
    let event = myna_store::ems::checked_event(log, new, now_ms)?;
    let seq = event.seq;
    let kind = serde_json::to_string(&new.kind)
        .map_err(|e| StoreError::Corrupt(format!("encoding event: {e}")))?;
    let actor = serde_json::to_string(&new.actor)
        .map_err(|e| StoreError::Corrupt(format!("encoding actor: {e}")))?;
    tx.prepare_cached(
        "INSERT INTO incident_event (incident_id, seq, at_ms, device_ms, idempotency_key, actor, kind) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            incident,
            seq,
            now_ms,
            new.device_at_ms,
            new.idempotency_key,
            actor,
            kind
        ])
    })
    .map_err(db_err)?;
    match &new.kind {
        EventKind::Assigned { team } => {
            tx.execute(
                "UPDATE incident SET team_id = ?1 WHERE id = ?2",
                params![team, incident],
            )
            .map_err(db_err)?;
        }
        EventKind::Closed => {
            tx.execute("UPDATE incident SET closed = 1 WHERE id = ?1", [incident])
                .map_err(db_err)?;
        }
        _ => {}
    }
    Ok(event)
}

/// Walks the one chain of `table` (`view_log`, `review_log`: seq, entry, prev_hash, hash).
fn verify_chain<E: serde::de::DeserializeOwned + myna_domain::access::Linked>(
    conn: &Connection,
    table: &'static str,
) -> Result<ChainReport, StoreError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT seq, entry, prev_hash, hash FROM {table} ORDER BY seq"
        ))
        .map_err(db_err)?;
    let rows = stmt.query_map([], view_row).map_err(db_err)?;
    let mut v = ChainVerifier::default();
    for row in rows {
        let checked = to_chained::<E>(row.map_err(db_err)?).and_then(|e| v.push(&e));
        if let Err(first_break) = checked {
            return Ok(ChainReport::Broken {
                verified: v.count(),
                first_break,
                chain: None,
                broken_chains: Vec::new(),
            });
        }
    }
    Ok(ChainReport::one_chain(&v))
}

/// The last entry's place and hash of the one chain of `table`, if it has any.
fn chain_head(
    tx: &Transaction<'_>,
    table: &'static str,
) -> Result<Option<(i64, Hash32)>, StoreError> {
    tx.query_row(
        &format!("SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1"),
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
    )
    .optional()
    .map_err(db_err)?
    .map(|(seq, h)| {
        Hash32::try_from(h.as_slice())
            .map(|h| (seq, h))
            .map_err(|_| corrupt(format!("{table} {seq}: hash is not 32 bytes")))
    })
    .transpose()
}

/// Appends a view record to the one chain (SQLite has a single writer, so every bureau shares
/// partition 0).
fn append_view(tx: &Transaction<'_>, record: ViewRecord) -> Result<ChainPosition, StoreError> {
    let prev = chain_head(tx, "view_log")?;
    let bureau = record.bureau.clone();
    let hospital_read_at = record.hospital.is_some().then_some(record.at_ms);
    let linked = chain(prev, record);
    let entry = serde_json::to_string(&linked.entry)
        .map_err(|e| StoreError::Corrupt(format!("encoding view record: {e}")))?;
    tx.prepare_cached(
        "INSERT INTO view_log (seq, bureau, entry, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            linked.seq,
            bureau,
            entry,
            linked.prev_hash.as_slice(),
            linked.hash.as_slice()
        ])
    })
    .map_err(db_err)?;
    if let Some(at_ms) = hospital_read_at {
        tx.prepare_cached(
            "INSERT INTO hospital_read_outbox (view_seq, bureau, next_try_ms) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut stmt| stmt.execute(params![linked.seq, bureau, at_ms]))
        .map_err(db_err)?;
    }
    Ok(ChainPosition {
        partition: 0,
        seq: linked.seq,
    })
}

fn view_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, Vec<u8>, Vec<u8>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_chained<E: serde::de::DeserializeOwned>(
    (seq, entry, prev, hash): (i64, String, Vec<u8>, Vec<u8>),
) -> Result<ChainedEntry<E>, myna_domain::access::ChainBreak> {
    let unreadable = |problem: String| myna_domain::access::ChainBreak::Unreadable { seq, problem };
    Ok(ChainedEntry {
        seq,
        entry: serde_json::from_str(&entry).map_err(|e| unreadable(e.to_string()))?,
        prev_hash: Hash32::try_from(prev.as_slice())
            .map_err(|_| unreadable("prev_hash is not 32 bytes".into()))?,
        hash: Hash32::try_from(hash.as_slice())
            .map_err(|_| unreadable("hash is not 32 bytes".into()))?,
    })
}

fn insert_account(
    tx: &Transaction<'_>,
    bureau: BureauId,
    a: &AccountSeed,
) -> Result<AccountId, StoreError> {
    let team: Option<i64> = match &a.team {
        None => None,
        Some(name) => Some(
            tx.query_row(
                "SELECT id FROM team WHERE bureau_id = ?1 AND name = ?2",
                params![bureau, name],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| StoreError::Corrupt(format!("account {}: no team {name:?}", a.login)))?,
        ),
    };
    tx.execute(
        "INSERT INTO account (bureau_id, login, display_name, role, team_id, \
                     hospital_id, password_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            bureau,
            a.login,
            a.display_name,
            a.role.as_str(),
            team,
            a.hospital,
            a.password_hash
        ],
    )
    .map_err(db_err)?;
    Ok(tx.last_insert_rowid())
}

impl EmsStore for EmsSqlite {
    async fn seed_bureau(&self, seed: BureauSeed) -> Result<BureauId, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let exists: Option<i64> = tx
                .query_row("SELECT id FROM bureau WHERE code = ?1", [&seed.code], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db_err)?;
            if exists.is_some() {
                return Err(StoreError::OrganisationExists(seed.code));
            }
            tx.execute(
                "INSERT INTO bureau (code, name, provider_url, provider_credential_file, view_window_s, \
                 patient_secret) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    seed.code,
                    seed.name,
                    seed.provider_url,
                    seed.provider_credential_file,
                    seed.view_window_s,
                    seed.patient_secret.as_bytes().as_slice()
                ],
            )
            .map_err(db_err)?;
            let bureau = tx.last_insert_rowid();
            for (station, teams) in &seed.stations {
                tx.execute(
                    "INSERT INTO station (bureau_id, name) VALUES (?1, ?2)",
                    params![bureau, station],
                )
                .map_err(db_err)?;
                let station_id = tx.last_insert_rowid();
                for team in teams {
                    tx.execute(
                        "INSERT INTO team (bureau_id, station_id, name) VALUES (?1, ?2, ?3)",
                        params![bureau, station_id, team],
                    )
                    .map_err(db_err)?;
                }
            }
            for a in &seed.accounts {
                insert_account(&tx, bureau, a)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(bureau)
        })
        .await
    }

    async fn set_provider(
        &self,
        bureau: BureauId,
        url: &str,
        credential_file: &str,
    ) -> Result<(), StoreError> {
        let (url, file) = (url.to_owned(), credential_file.to_owned());
        self.run(move |conn| {
            conn.execute(
                "UPDATE bureau SET provider_url = ?1, provider_credential_file = ?2 WHERE id = ?3",
                params![url, file, bureau],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn set_public_contact(&self, bureau: BureauId, contact: &str) -> Result<(), StoreError> {
        let contact = contact.to_owned();
        self.run(move |conn| {
            conn.execute(
                "UPDATE bureau SET public_contact = ?1 WHERE id = ?2",
                params![contact, bureau],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn bureau(&self, code: &str) -> Result<Option<Bureau>, StoreError> {
        let code = code.to_owned();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {BUREAU_COLS} FROM bureau WHERE code = ?1"),
                [code],
                bureau_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn bureaus(&self) -> Result<Vec<Bureau>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {BUREAU_COLS} FROM bureau ORDER BY id"))
                .map_err(db_err)?;
            let rows = stmt.query_map([], bureau_row).map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        })
        .await
    }

    async fn bureau_by_id(&self, id: BureauId) -> Result<Option<Bureau>, StoreError> {
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {BUREAU_COLS} FROM bureau WHERE id = ?1"),
                [id],
                bureau_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn teams(&self, bureau: BureauId) -> Result<Vec<Team>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT t.id, t.bureau_id, s.name, t.name FROM team t \
                     JOIN station s ON s.id = t.station_id WHERE t.bureau_id = ?1 ORDER BY t.id",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([bureau], |r| {
                    Ok(Team {
                        id: r.get(0)?,
                        bureau_id: r.get(1)?,
                        station: r.get(2)?,
                        name: r.get(3)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        })
        .await
    }

    async fn account(&self, bureau: BureauId, login: &str) -> Result<Option<Account>, StoreError> {
        let login = login.to_owned();
        self.run(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {ACCOUNT_COLS} FROM account a WHERE a.bureau_id = ?1 AND a.login = ?2"
                ),
                params![bureau, login],
                account_row,
            )
            .optional()
            .map_err(db_err)?
            .map(with_role)
            .transpose()
        })
        .await
    }

    async fn add_account(
        &self,
        bureau: BureauId,
        account: AccountSeed,
    ) -> Result<AccountId, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let id = insert_account(&tx, bureau, &account)?;
            tx.commit().map_err(db_err)?;
            Ok(id)
        })
        .await
    }

    async fn set_password(
        &self,
        bureau: BureauId,
        login: &str,
        password_hash: String,
    ) -> Result<bool, StoreError> {
        let login = login.to_owned();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM account WHERE bureau_id = ?1 AND login = ?2",
                    params![bureau, login],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            let Some(id) = id else { return Ok(false) };
            tx.execute(
                "UPDATE account SET password_hash = ?1, failed_logins = 0, \
                 locked_until_ms = NULL WHERE id = ?2",
                params![password_hash, id],
            )
            .map_err(db_err)?;
            tx.execute("DELETE FROM session WHERE account_id = ?1", [id])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn sign_in_failed(
        &self,
        bureau: BureauId,
        account: AccountId,
        now_ms: i64,
        policy: LockoutPolicy,
    ) -> Result<Option<Account>, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            // A lock that has ended starts the count again.
            let counted = tx
                .execute(
                    "UPDATE account SET \
                     failed_logins = CASE WHEN locked_until_ms <= ?3 THEN 1 \
                                          ELSE failed_logins + 1 END, \
                     locked_until_ms = CASE WHEN locked_until_ms <= ?3 THEN NULL \
                                            ELSE locked_until_ms END \
                     WHERE id = ?1 AND bureau_id = ?2",
                    params![account, bureau, now_ms],
                )
                .map_err(db_err)?;
            if counted == 0 {
                return Ok(None);
            }
            tx.execute(
                "UPDATE account SET locked_until_ms = ?2 \
                 WHERE id = ?1 AND failed_logins >= ?3 AND locked_until_ms IS NULL",
                params![
                    account,
                    now_ms.saturating_add(policy.lock_ms),
                    policy.lock_after
                ],
            )
            .map_err(db_err)?;
            let after = tx
                .query_row(
                    &format!("SELECT {ACCOUNT_COLS} FROM account a WHERE a.id = ?1"),
                    [account],
                    account_row,
                )
                .map_err(db_err)
                .and_then(with_role)?;
            tx.commit().map_err(db_err)?;
            Ok(Some(after))
        })
        .await
    }

    async fn sign_in_succeeded(
        &self,
        bureau: BureauId,
        account: AccountId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            let n = conn
                .execute(
                    "UPDATE account SET failed_logins = 0, locked_until_ms = NULL \
                     WHERE id = ?1 AND bureau_id = ?2 \
                     AND (locked_until_ms IS NULL OR locked_until_ms <= ?3)",
                    params![account, bureau, now_ms],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn clear_sign_in_failures(
        &self,
        bureau: BureauId,
        login: &str,
    ) -> Result<bool, StoreError> {
        let login = login.to_owned();
        self.run(move |conn| {
            let n = conn
                .execute(
                    "UPDATE account SET failed_logins = 0, locked_until_ms = NULL \
                     WHERE bureau_id = ?1 AND login = ?2",
                    params![bureau, login],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn accounts_with_failures(&self, bureau: BureauId) -> Result<Vec<Account>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLS} FROM account a WHERE a.bureau_id = ?1 \
                     AND (a.failed_logins > 0 OR a.locked_until_ms IS NOT NULL) ORDER BY a.login"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map([bureau], account_row).map_err(db_err)?;
            rows.map(|r| r.map_err(db_err).and_then(with_role))
                .collect()
        })
        .await
    }

    async fn create_session(
        &self,
        token_hash: String,
        account: i64,
        terminal: Option<TerminalId>,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO session (token_hash, account_id, terminal_id, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                params![token_hash, account, terminal, expires_ms],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<Session>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.run(move |conn| {
            let row = conn
                .query_row(
                    &format!(
                        "SELECT {ACCOUNT_COLS}, s.terminal_id, s.expires_ms FROM session s \
                         JOIN account a ON a.id = s.account_id \
                         WHERE s.token_hash = ?1 AND s.expires_ms > ?2 AND a.disabled = 0"
                    ),
                    params![token_hash, now_ms],
                    |r| {
                        Ok((
                            account_row(r)?,
                            r.get::<_, Option<i64>>(ACCOUNT_COL_COUNT)?,
                            r.get::<_, i64>(ACCOUNT_COL_COUNT + 1)?,
                        ))
                    },
                )
                .optional()
                .map_err(db_err)?;
            row.map(|(a, terminal_id, expires_ms)| {
                Ok(Session {
                    account: with_role(a)?,
                    terminal_id,
                    expires_ms,
                })
            })
            .transpose()
        })
        .await
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.run(move |conn| {
            conn.execute("DELETE FROM session WHERE token_hash = ?1", [token_hash])
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn add_terminal(
        &self,
        bureau: BureauId,
        team: TeamId,
        label: &str,
        token_hash: String,
    ) -> Result<TerminalId, StoreError> {
        let label = label.to_owned();
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let team_ok: Option<i64> = tx
                .query_row(
                    "SELECT id FROM team WHERE id = ?1 AND bureau_id = ?2",
                    params![team, bureau],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            if team_ok.is_none() {
                return Err(StoreError::Corrupt(format!(
                    "team {team} is not in bureau {bureau}"
                )));
            }
            tx.execute(
                "INSERT INTO terminal (bureau_id, team_id, label, token_hash) VALUES (?1, ?2, ?3, ?4)",
                params![bureau, team, label, token_hash],
            )
            .map_err(db_err)?;
            let id = tx.last_insert_rowid();
            tx.commit().map_err(db_err)?;
            Ok(id)
        })
        .await
    }

    async fn revoke_terminal(
        &self,
        bureau: BureauId,
        terminal: TerminalId,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let n = tx
                .execute(
                    "UPDATE terminal SET revoked = 1 WHERE id = ?1 AND bureau_id = ?2",
                    params![terminal, bureau],
                )
                .map_err(db_err)?;
            if n != 1 {
                // Not this bureau's terminal: touch nothing, not even its sessions.
                return Ok(false);
            }
            tx.execute("DELETE FROM session WHERE terminal_id = ?1", [terminal])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn terminal_by_token(&self, token_hash: &str) -> Result<Option<Terminal>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {TERMINAL_COLUMNS} FROM terminal WHERE token_hash = ?1"),
                [token_hash],
                terminal_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn terminals(&self, bureau: BureauId) -> Result<Vec<Terminal>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TERMINAL_COLUMNS} FROM terminal WHERE bureau_id = ?1 ORDER BY id"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map([bureau], terminal_row).map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        })
        .await
    }

    async fn terminal_by_certificate(
        &self,
        cert_sha256: &str,
    ) -> Result<Option<Terminal>, StoreError> {
        let cert_sha256 = cert_sha256.to_owned();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {TERMINAL_COLUMNS} FROM terminal WHERE cert_sha256 = ?1"),
                [cert_sha256],
                terminal_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn create_invite(
        &self,
        bureau: BureauId,
        invite: NewInvite,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let team_ok: Option<i64> = tx
                .query_row(
                    "SELECT id FROM team WHERE id = ?1 AND bureau_id = ?2",
                    params![invite.team, bureau],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            if team_ok.is_none() {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO enrollment_invite (bureau_id, team_id, secret_hash, created_ms, \
                 created_by, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    bureau,
                    invite.team,
                    invite.secret_hash,
                    now_ms,
                    invite.created_by,
                    invite.expires_ms
                ],
            )
            .map_err(db_err)?;
            let id = tx.last_insert_rowid();
            tx.commit().map_err(db_err)?;
            Ok(Some(id))
        })
        .await
    }

    async fn open_invites(
        &self,
        bureau: BureauId,
        now_ms: i64,
    ) -> Result<Vec<OpenInvite>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, team_id, created_ms, created_by, expires_ms FROM enrollment_invite \
                     WHERE bureau_id = ?1 AND used_ms IS NULL AND expires_ms > ?2 \
                     ORDER BY id DESC",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![bureau, now_ms], |r| {
                    Ok(OpenInvite {
                        id: r.get(0)?,
                        team_id: r.get(1)?,
                        created_ms: r.get(2)?,
                        created_by: r.get(3)?,
                        expires_ms: r.get(4)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        })
        .await
    }

    async fn cancel_invite(
        &self,
        bureau: BureauId,
        invite: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            let changed = conn
                .execute(
                    // Expired since the epoch: a clock stepped back cannot revive it.
                    "UPDATE enrollment_invite SET expires_ms = 0 WHERE id = ?1 \
                     AND bureau_id = ?2 AND used_ms IS NULL AND expires_ms > ?3",
                    params![invite, bureau, now_ms],
                )
                .map_err(db_err)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn request_enrollment(
        &self,
        bureau: BureauId,
        request: NewEnrollment,
        limits: EnrollmentLimits,
        now_ms: i64,
    ) -> Result<Filing, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let invite: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT id, team_id FROM enrollment_invite WHERE secret_hash = ?1 \
                     AND bureau_id = ?2 AND used_ms IS NULL AND expires_ms > ?3",
                    params![request.invite_hash, bureau, now_ms],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db_err)?;
            let Some((invite, team)) = invite else {
                return Ok(Filing::NoInvite);
            };
            tx.execute(
                "UPDATE enrollment SET state = 'rejected', decided_ms = ?1 \
                 WHERE bureau_id = ?2 AND state = 'pending' AND requested_ms < ?3",
                params![now_ms, bureau, now_ms.saturating_sub(limits.pending_for_ms)],
            )
            .map_err(db_err)?;
            let pending: i64 = tx
                .query_row(
                    "SELECT count(*) FROM enrollment WHERE bureau_id = ?1 AND state = 'pending'",
                    [bureau],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if pending >= i64::from(limits.max_pending) {
                return Ok(Filing::TooManyPending);
            }
            tx.execute(
                "UPDATE enrollment_invite SET used_ms = ?1 WHERE id = ?2",
                params![now_ms, invite],
            )
            .map_err(db_err)?;
            tx.execute(
                "INSERT INTO enrollment (bureau_id, team_id, invite_id, label, code, csr_pem, \
                 poll_hash, requested_ms, requested_from, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending')",
                params![
                    bureau,
                    team,
                    invite,
                    request.label,
                    request.code,
                    request.csr_pem,
                    request.poll_hash,
                    now_ms,
                    request.requested_from
                ],
            )
            .map_err(db_err)?;
            let id = tx.last_insert_rowid();
            tx.commit().map_err(db_err)?;
            Ok(Filing::Filed(id))
        })
        .await
    }

    async fn enrollment_by_poll(&self, poll_hash: &str) -> Result<Option<Enrollment>, StoreError> {
        let poll_hash = poll_hash.to_owned();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollment WHERE poll_hash = ?1"),
                [poll_hash],
                enrollment_row,
            )
            .optional()
            .map_err(db_err)?
            .map(checked_enrollment)
            .transpose()
        })
        .await
    }

    async fn enrollments(
        &self,
        bureau: BureauId,
        pending_only: bool,
    ) -> Result<Vec<Enrollment>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ENROLLMENT_COLUMNS} FROM enrollment WHERE bureau_id = ?1 \
                     AND (?2 = 0 OR state = 'pending') ORDER BY id DESC LIMIT 200"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![bureau, pending_only], enrollment_row)
                .map_err(db_err)?;
            rows.map(|r| r.map_err(db_err).and_then(checked_enrollment))
                .collect()
        })
        .await
    }

    async fn approve_enrollment(
        &self,
        bureau: BureauId,
        enrollment: EnrollmentId,
        certificate: IssuedCertificate,
        limits: EnrollmentLimits,
        now_ms: i64,
    ) -> Result<Option<TerminalId>, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let pending: Option<(String, TeamId)> = tx
                .query_row(
                    "SELECT label, team_id FROM enrollment WHERE id = ?1 AND bureau_id = ?2 \
                     AND state = 'pending' AND requested_ms >= ?3",
                    params![
                        enrollment,
                        bureau,
                        now_ms.saturating_sub(limits.pending_for_ms)
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db_err)?;
            let Some((label, team)) = pending else {
                return Ok(None);
            };
            // Not a token's hash (those are bare hex), so no bearer token ever matches: the
            // terminal proves itself by its certificate alone.
            let unusable_token = format!("certificate:{}", certificate.sha256);
            tx.execute(
                "INSERT INTO terminal (bureau_id, team_id, label, token_hash, cert_sha256, \
                 cert_not_after_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    bureau,
                    team,
                    label,
                    unusable_token,
                    certificate.sha256,
                    certificate.not_after_ms
                ],
            )
            .map_err(db_err)?;
            let terminal = tx.last_insert_rowid();
            tx.execute(
                "UPDATE enrollment SET state = 'approved', decided_ms = ?1, terminal_id = ?2, \
                 certificate_pem = ?3 WHERE id = ?4",
                params![now_ms, terminal, certificate.pem, enrollment],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(Some(terminal))
        })
        .await
    }

    async fn reject_enrollment(
        &self,
        bureau: BureauId,
        enrollment: EnrollmentId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            let n = conn
                .execute(
                    "UPDATE enrollment SET state = 'rejected', decided_ms = ?1 \
                     WHERE id = ?2 AND bureau_id = ?3 AND state = 'pending'",
                    params![now_ms, enrollment, bureau],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn create_incident(
        &self,
        bureau: BureauId,
        created: NewEvent,
        now_ms: i64,
    ) -> Result<IncidentRecord, AppendError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let day = japan_day(now_ms)?;
            let number = format!("{day}-{:04}", next_number(&tx, bureau, &day)?);
            let id = insert_incident(&tx, bureau, &number, now_ms)?;
            let event = insert_event(&tx, id, &Incident::default(), &created, now_ms)?;
            let log = Incident {
                events: vec![event],
            };
            save_facts(&tx, bureau, id, &log)?;
            tx.commit().map_err(db_err)?;
            Ok(IncidentRecord {
                id,
                bureau_id: bureau,
                number,
                log,
            })
        })
        .await
    }

    async fn append(
        &self,
        bureau: BureauId,
        incident: IncidentId,
        event: NewEvent,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let Some(record) = load_incident(&tx, bureau, incident)? else {
                return Err(AppendError::NotFound);
            };
            if let Some(done) = record.log.by_key(&event.idempotency_key) {
                if done.kind != event.kind {
                    return Err(AppendError::KeyReused(event.idempotency_key));
                }
                return Ok(Appended::Duplicate(done.clone()));
            }
            let committed = insert_event(&tx, incident, &record.log, &event, now_ms)?;
            let mut log = record.log;
            log.events.push(committed.clone());
            save_facts(&tx, bureau, incident, &log)?;
            tx.commit().map_err(db_err)?;
            Ok(Appended::New(committed))
        })
        .await
    }

    async fn incident(
        &self,
        bureau: BureauId,
        incident: IncidentId,
    ) -> Result<Option<IncidentRecord>, StoreError> {
        self.run(move |conn| load_incident(conn, bureau, incident))
            .await
    }

    async fn incidents(
        &self,
        bureau: BureauId,
        filter: IncidentFilter,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        self.run(move |conn| {
            let ids: Vec<i64> = {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT id FROM incident WHERE bureau_id = ?1 \
                         AND (?2 = 0 OR closed = 0) AND (?3 IS NULL OR team_id = ?3) \
                         ORDER BY id DESC LIMIT ?4",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(
                        params![bureau, filter.open_only, filter.team, filter.limit],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)?
            };
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(r) = load_incident(conn, bureau, id)? {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn record_view(&self, record: ViewRecord) -> Result<ChainPosition, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let at = append_view(&tx, record)?;
            tx.commit().map_err(db_err)?;
            Ok(at)
        })
        .await
    }

    async fn due_hospital_reads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<PendingHospitalRead>, StoreError> {
        self.run(move |conn| {
            // The outbox is STRICT; the view log's entry is read as whatever it holds, so one
            // damaged entry is that read's problem, not every read's.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT o.view_seq, o.attempts, v.entry \
                     FROM hospital_read_outbox o LEFT JOIN view_log v ON v.seq = o.view_seq \
                     WHERE o.delivered_ms IS NULL AND o.refused_ms IS NULL \
                     AND o.next_try_ms <= ?1 ORDER BY o.next_try_ms, o.view_seq LIMIT ?2",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![now_ms, limit], |r| {
                    let entry = match r.get::<_, rusqlite::types::Value>(2)? {
                        rusqlite::types::Value::Null => Ok(None),
                        rusqlite::types::Value::Text(t) => Ok(Some(t)),
                        _ => Err("its view-log entry is not text".to_owned()),
                    };
                    Ok(PendingHospitalRead {
                        at: ChainPosition {
                            partition: 0,
                            seq: r.get(0)?,
                        },
                        attempts: r.get(1)?,
                        record: entry.and_then(|e| queued_read(e.as_deref())),
                    })
                })
                .map_err(db_err)?;
            rows.map(|r| r.map_err(db_err)).collect()
        })
        .await
    }

    async fn hospital_read_outbox(&self, bureau: &str) -> Result<HospitalReadOutbox, StoreError> {
        let bureau = bureau.to_owned();
        self.run(move |conn| {
            let (delivered, waiting): (i64, i64) = conn
                .query_row(
                    "SELECT count(delivered_ms), \
                     count(*) FILTER (WHERE delivered_ms IS NULL AND refused_ms IS NULL) \
                     FROM hospital_read_outbox WHERE bureau = ?1",
                    [&bureau],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db_err)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT view_seq, refused_ms, coalesce(last_error, '') FROM hospital_read_outbox \
                     WHERE bureau = ?1 AND refused_ms IS NOT NULL ORDER BY refused_ms, view_seq",
                )
                .map_err(db_err)?;
            let refused = stmt
                .query_map([&bureau], |r| {
                    Ok(RefusedHospitalRead {
                        at: ChainPosition {
                            partition: 0,
                            seq: r.get(0)?,
                        },
                        refused_ms: r.get(1)?,
                        error: r.get(2)?,
                    })
                })
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            let count = |n: i64| u64::try_from(n).unwrap_or_default();
            Ok(HospitalReadOutbox {
                delivered: count(delivered),
                waiting: count(waiting),
                refused,
            })
        })
        .await
    }

    async fn requeue_refused_hospital_reads(
        &self,
        bureau: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let bureau = bureau.to_owned();
        self.run(move |conn| {
            conn.execute(
                "UPDATE hospital_read_outbox SET refused_ms = NULL, next_try_ms = ?2 \
                 WHERE bureau = ?1 AND refused_ms IS NOT NULL",
                params![bureau, now_ms],
            )
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }

    async fn settle_hospital_read(
        &self,
        at: ChainPosition,
        now_ms: i64,
        outcome: HospitalReadOutcome,
    ) -> Result<bool, StoreError> {
        if at.partition != 0 {
            return Ok(false);
        }
        self.run(move |conn| {
            let open = "WHERE view_seq = ?1 AND delivered_ms IS NULL AND refused_ms IS NULL";
            let (sql, args): (String, Vec<rusqlite::types::Value>) = match outcome {
                HospitalReadOutcome::Delivered { provider_access_id } => (
                    format!(
                        "UPDATE hospital_read_outbox SET attempts = attempts + 1, \
                         delivered_ms = ?2, provider_access_id = ?3, last_error = NULL {open}"
                    ),
                    vec![now_ms.into(), provider_access_id.into()],
                ),
                HospitalReadOutcome::Retry { next_try_ms, error } => (
                    format!(
                        "UPDATE hospital_read_outbox SET attempts = attempts + 1, \
                         next_try_ms = ?2, last_error = ?3 {open}"
                    ),
                    vec![next_try_ms.into(), error.into()],
                ),
                HospitalReadOutcome::Refused { error } => (
                    format!(
                        "UPDATE hospital_read_outbox SET attempts = attempts + 1, \
                         refused_ms = ?2, last_error = ?3 {open}"
                    ),
                    vec![now_ms.into(), error.into()],
                ),
            };
            let mut params: Vec<rusqlite::types::Value> = vec![at.seq.into()];
            params.extend(args);
            conn.execute(&sql, rusqlite::params_from_iter(params))
                .map(|n| n == 1)
                .map_err(db_err)
        })
        .await
    }

    async fn incident_by_number(
        &self,
        bureau: BureauId,
        number: &str,
    ) -> Result<Option<IncidentRecord>, StoreError> {
        let number = number.to_owned();
        self.run(move |conn| {
            let id: Option<IncidentId> = conn
                .query_row(
                    "SELECT id FROM incident WHERE bureau_id = ?1 AND number = ?2",
                    params![bureau, number],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            match id {
                Some(id) => load_incident(conn, bureau, id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn viewed_incident_times(
        &self,
        bureau: BureauId,
    ) -> Result<Vec<(String, myna_domain::review::IncidentTimes)>, StoreError> {
        let contact = myna_store::ems::contact_kind_json()?;
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT i.number, i.created_ms, (SELECT min(e.at_ms) \
                     FROM incident_event e WHERE e.incident_id = i.id AND e.kind = ?2) \
                     FROM incident i WHERE i.bureau_id = ?1 AND i.number IN \
                     (SELECT json_extract(v.entry, '$.incident_number') FROM view_log v \
                      WHERE v.bureau = (SELECT code FROM bureau WHERE id = ?1))",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![bureau, contact], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        myna_domain::review::IncidentTimes {
                            call_ms: r.get(1)?,
                            contact_ms: r.get(2)?,
                        },
                    ))
                })
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db_err)
        })
        .await
    }

    async fn exception_views(
        &self,
        bureau: &str,
    ) -> Result<Vec<(ChainPosition, ChainedEntry<ViewRecord>)>, StoreError> {
        let bureau = bureau.to_owned();
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, entry, prev_hash, hash FROM view_log WHERE bureau = ?1 \
                     AND entry LIKE '%\"kind\":\"exception\"%' ORDER BY seq",
                )
                .map_err(db_err)?;
            let rows = stmt.query_map([&bureau], view_row).map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let e: ChainedEntry<ViewRecord> =
                    to_chained(row.map_err(db_err)?).map_err(|b| corrupt(b.to_string()))?;
                // The text match only narrows the read; the decoded consent decides. A hospital's
                // read of the crew's copy carries the crew's basis: the crew's own view is reviewed.
                if matches!(
                    e.entry.consent,
                    myna_domain::access::Consent::Exception { .. }
                ) && e.entry.hospital.is_none()
                {
                    out.push((
                        ChainPosition {
                            partition: 0,
                            seq: e.seq,
                        },
                        e,
                    ));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn record_review(
        &self,
        record: ReviewRecord,
    ) -> Result<Option<ChainPosition>, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let done: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM review_log WHERE bureau = ?1 \
                     AND view_partition = ?2 AND view_seq = ?3)",
                    params![record.bureau, record.view_partition, record.view_seq],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if done {
                return Ok(None);
            }
            let prev = chain_head(&tx, "review_log")?;
            let (bureau, partition, view_seq) = (
                record.bureau.clone(),
                record.view_partition,
                record.view_seq,
            );
            let linked = chain(prev, record);
            let entry = serde_json::to_string(&linked.entry)
                .map_err(|e| StoreError::Corrupt(format!("encoding review record: {e}")))?;
            tx.execute(
                "INSERT INTO review_log (seq, bureau, view_partition, view_seq, entry, prev_hash, \
                 hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    linked.seq,
                    bureau,
                    partition,
                    view_seq,
                    entry,
                    linked.prev_hash.as_slice(),
                    linked.hash.as_slice()
                ],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(Some(ChainPosition {
                partition: 0,
                seq: linked.seq,
            }))
        })
        .await
    }

    async fn reviews(&self, bureau: &str) -> Result<Vec<ChainedEntry<ReviewRecord>>, StoreError> {
        let bureau = bureau.to_owned();
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, entry, prev_hash, hash FROM review_log WHERE bureau = ?1 \
                     ORDER BY seq",
                )
                .map_err(db_err)?;
            let rows = stmt.query_map([&bureau], view_row).map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(to_chained(row.map_err(db_err)?).map_err(|b| corrupt(b.to_string()))?);
            }
            Ok(out)
        })
        .await
    }

    async fn verify_review_log(&self) -> Result<ChainReport, StoreError> {
        self.run(|conn| verify_chain::<ReviewRecord>(conn, "review_log"))
            .await
    }

    async fn load_incidents(
        &self,
        bureau: BureauId,
        incidents: Vec<PastIncident>,
    ) -> Result<Vec<IncidentId>, AppendError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let code: String = tx
                .query_row("SELECT code FROM bureau WHERE id = ?1", [bureau], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db_err)?
                .ok_or_else(|| StoreError::InvalidPast(format!("no bureau {bureau}")))?;
            let teams: Vec<TeamId> = {
                let mut stmt = tx
                    .prepare("SELECT id FROM team WHERE bureau_id = ?1")
                    .map_err(db_err)?;
                let rows = stmt.query_map([bureau], |r| r.get(0)).map_err(db_err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
            };
            myna_store::ems::check_past_incidents(&incidents, &code, &teams)?;
            let mut last_number: std::collections::HashMap<String, i64> = Default::default();
            let mut ids = Vec::with_capacity(incidents.len());
            for past in incidents {
                let Some(&(_, created_ms)) = past.events.first() else {
                    continue;
                };
                let day = japan_day(created_ms)?;
                let n = match last_number.get(&day) {
                    Some(n) => n + 1,
                    None => next_number(&tx, bureau, &day)?,
                };
                last_number.insert(day.clone(), n);
                let number = format!("{day}-{n:04}");
                let id = insert_incident(&tx, bureau, &number, created_ms)?;
                let mut log = Incident::default();
                for (event, at_ms) in &past.events {
                    if log.by_key(&event.idempotency_key).is_some() {
                        return Err(AppendError::KeyReused(event.idempotency_key.clone()));
                    }
                    let committed = insert_event(&tx, id, &log, event, *at_ms)?;
                    log.events.push(committed);
                }
                save_facts(&tx, bureau, id, &log)?;
                for mut view in past.views {
                    view.incident_number.clone_from(&number);
                    append_view(&tx, view)?;
                }
                ids.push(id);
            }
            tx.commit().map_err(db_err)?;
            Ok(ids)
        })
        .await
    }

    async fn incident_facts(
        &self,
        bureau: BureauId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(IncidentId, IncidentFacts)>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT incident_id, created_ms, team_id, ward, outcome, consent_or_exception, \
                     views, exception_views, arrival_contact_s, contact_vehicle_s, \
                     vehicle_departure_s, arrival_departure_s, inquiries, difficult, transported \
                     FROM incident_facts WHERE bureau_id = ?1 AND created_ms >= ?2 \
                     AND created_ms < ?3 ORDER BY incident_id",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![bureau, from_ms, to_ms], facts_row)
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, mut facts, outcome) = row.map_err(db_err)?;
                facts.outcome = outcome
                    .map(|o| {
                        myna_domain::incident::MynaOutcome::parse(&o)
                            .ok_or_else(|| corrupt(format!("incident {id}: outcome {o:?}")))
                    })
                    .transpose()?;
                out.push((id, facts));
            }
            Ok(out)
        })
        .await
    }

    async fn view_records(
        &self,
        bureau: &str,
        limit: u32,
    ) -> Result<Vec<ChainedEntry<ViewRecord>>, StoreError> {
        let bureau = bureau.to_owned();
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, entry, prev_hash, hash FROM view_log WHERE bureau = ?1 \
                     ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![bureau, limit], view_row)
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(to_chained(row.map_err(db_err)?).map_err(|e| corrupt(e.to_string()))?);
            }
            Ok(out)
        })
        .await
    }

    async fn verify_view_log(&self) -> Result<ChainReport, StoreError> {
        self.run(|conn| verify_chain::<ViewRecord>(conn, "view_log"))
            .await
    }

    /// One chain (partition 0), checkpointed by its head (`v1`), which every verify checks
    /// against each signed head; the walk and the head are read one after the other here.
    async fn view_log_walk(
        &self,
        places: std::collections::BTreeMap<i64, i64>,
    ) -> Result<myna_store::ChainWalk, StoreError> {
        let report = self.verify_view_log().await?;
        let head = self
            .run(|conn| {
                conn.query_row(
                    "SELECT seq, hash FROM view_log ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )
                .optional()
                .map_err(db_err)
            })
            .await?;
        let head = match head {
            Some((seq, h)) => {
                let hash = Hash32::try_from(h.as_slice())
                    .map_err(|_| corrupt(format!("view_log {seq}: hash is not 32 bytes")))?;
                Some((seq, hash))
            }
            None => None,
        };
        let found = match places.get(&0) {
            Some(seq) => {
                self.view_log_hash(ChainPosition {
                    partition: 0,
                    seq: *seq,
                })
                .await?
            }
            None => None,
        };
        Ok(myna_store::ChainWalk::of_one_chain(report, head, found))
    }

    async fn view_log_hash(&self, at: ChainPosition) -> Result<Option<Hash32>, StoreError> {
        if at.partition != 0 {
            return Ok(None);
        }
        let seq = at.seq;
        self.run(move |conn| {
            let hash: Option<Vec<u8>> = conn
                .query_row("SELECT hash FROM view_log WHERE seq = ?1", [seq], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db_err)?;
            hash.map(|h| {
                Hash32::try_from(h.as_slice())
                    .map_err(|_| corrupt(format!("view_log {seq}: hash is not 32 bytes")))
            })
            .transpose()
        })
        .await
    }

    async fn set_hospital_status(
        &self,
        bureau: BureauId,
        change: StatusChange,
    ) -> Result<(), StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let status = serde_json::to_string(&change.status)
                .map_err(|e| StoreError::Corrupt(format!("encoding hospital status: {e}")))?;
            let at = change.status.updated_at.timestamp_millis();
            let hospital = &change.status.hospital_id;
            tx.execute(
                "INSERT INTO hospital_status (bureau_id, hospital_id, status, updated_ms, account_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (bureau_id, hospital_id) DO UPDATE SET \
                 status = excluded.status, updated_ms = excluded.updated_ms, \
                 account_id = excluded.account_id",
                params![bureau, hospital, status, at, change.account],
            )
            .map_err(db_err)?;
            tx.execute(
                "INSERT INTO hospital_status_log (bureau_id, hospital_id, seq, status, updated_ms, \
                 account_id) VALUES (?1, ?2, (SELECT coalesce(max(seq), 0) + 1 FROM \
                 hospital_status_log WHERE bureau_id = ?1 AND hospital_id = ?2), ?3, ?4, ?5)",
                params![bureau, hospital, status, at, change.account],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn hospital_statuses(&self, bureau: BureauId) -> Result<Vec<HospitalStatus>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT status FROM hospital_status WHERE bureau_id = ?1 ORDER BY hospital_id",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([bureau], |r| r.get::<_, String>(0))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let json = row.map_err(db_err)?;
                out.push(
                    serde_json::from_str(&json)
                        .map_err(|e| corrupt(format!("hospital status: {e}")))?,
                );
            }
            Ok(out)
        })
        .await
    }

    async fn hospital_status_history(
        &self,
        bureau: BureauId,
        hospital: &str,
        limit: u32,
    ) -> Result<Vec<StatusChange>, StoreError> {
        let hospital = hospital.to_owned();
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT status, account_id FROM hospital_status_log WHERE bureau_id = ?1 \
                     AND hospital_id = ?2 ORDER BY seq DESC LIMIT ?3",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![bureau, hospital, limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (json, account) = row.map_err(db_err)?;
                out.push(StatusChange {
                    status: serde_json::from_str(&json)
                        .map_err(|e| corrupt(format!("hospital status: {e}")))?,
                    account,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn save_handoff(
        &self,
        bureau: BureauId,
        incident: IncidentId,
        snapshot: HandoffSnapshot,
    ) -> Result<(), StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let ours: Option<i64> = tx
                .query_row(
                    "SELECT id FROM incident WHERE id = ?1 AND bureau_id = ?2",
                    params![incident, bureau],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            if ours.is_none() {
                return Err(StoreError::Corrupt(format!(
                    "no incident {incident} in bureau {bureau}"
                )));
            }
            let json = serde_json::to_string(&snapshot)
                .map_err(|e| StoreError::Corrupt(format!("encoding handoff: {e}")))?;
            tx.execute(
                "INSERT INTO handoff_snapshot (incident_id, patient, view, patient_number, \
                 saved_ms, snapshot) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (incident_id, patient, view) DO UPDATE SET \
                 patient_number = excluded.patient_number, saved_ms = excluded.saved_ms, \
                 snapshot = excluded.snapshot",
                params![
                    incident,
                    snapshot.patient.as_str(),
                    snapshot.view.as_str(),
                    snapshot.patient_number,
                    snapshot.saved_ms,
                    json
                ],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn purge_handoffs(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let n = tx
                .execute(
                    "DELETE FROM handoff_snapshot WHERE incident_id IN (SELECT i.id FROM \
                     incident i JOIN bureau b ON b.id = i.bureau_id \
                     WHERE i.created_ms < ?1 - 2 * b.view_window_s * 1000)",
                    [now_ms],
                )
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn handoffs(
        &self,
        bureau: BureauId,
        incident: IncidentId,
    ) -> Result<Vec<HandoffSnapshot>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT h.snapshot FROM handoff_snapshot h JOIN incident i \
                     ON i.id = h.incident_id WHERE h.incident_id = ?1 AND i.bureau_id = ?2 \
                     ORDER BY h.patient_number, h.view",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![incident, bureau], |r| r.get::<_, String>(0))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let json = row.map_err(db_err)?;
                out.push(
                    serde_json::from_str(&json).map_err(|e| corrupt(format!("handoff: {e}")))?,
                );
            }
            Ok(out)
        })
        .await
    }
}
