//! SQLite backend of the provider store.
//!
//! One writer thread owns the write connection. Accesses are group-committed: the writer takes
//! every access waiting in its queue, runs each inside its own SAVEPOINT of one transaction
//! (resolve serial, read records, append the hash-chained log entry), commits once with
//! `synchronous=FULL`, and only then answers. Each access is thus atomic with its log entry and
//! durable before its summary leaves the server, while one fsync serves many accesses.
//! Reads that write nothing use a small pool of read-only connections.
//!
//! The accesses' reads stay on the writer on purpose: a read transaction on another connection
//! that starts after a commit drops that connection's whole page cache (and its memory map),
//! and the writer commits all the time. Moving the reads to reader connections was measured
//! slower (`docs/benchmarks.md`).

pub mod baseline;
pub mod ems;
mod import;
mod rows;

pub use ems::EmsSqlite;

/// Creates the database file readable by its owner only, before SQLite opens it: SQLite would
/// create it with the umask's mode (usually 0644), and it gives the WAL and shared-memory
/// files the database file's own mode. An existing file (one an older version made 0644) and
/// its WAL and shared memory are narrowed to 0600.
pub fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            if let Ok(meta) = std::fs::metadata(file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(
                    |e| StoreError::Unavailable(format!("restricting {}: {e}", file.display())),
                )?;
                tracing::warn!(file = %file.display(), "was readable by others; now 0600");
            }
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "creating {}: {e}",
            path.display()
        ))),
    }
}

use chrono::NaiveDate;
use myna_domain::access::{ChainBreak, ChainVerifier, Hash32, chain};
use myna_domain::person::PersonId;
use myna_domain::summary::Windows;
use myna_store::columns::Masters;
use myna_store::{
    AccessGranted, AccessRequest, ChainPosition, ChainReport, DatasetInfo, Organisation,
    PersonRecordSet, ProviderStore, StoreError,
};
use rows::{corrupt, db_err};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Most accesses committed in one transaction.
const MAX_BATCH: usize = 256;

/// Prepared statements kept per connection: an access's reads alone use about fifteen.
const STATEMENT_CACHE: usize = 64;

/// How the file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// WAL with `synchronous=FULL`: every commit is on disk before it is acknowledged.
    Full,
    /// For bulk loads into a new file that is discarded if the load fails: no journal, no fsync.
    BulkLoad,
}

type AccessReply = oneshot::Sender<Result<AccessGranted, StoreError>>;

enum Job {
    Access(Box<AccessRequest>, AccessReply),
    Admin(AdminJob),
}

/// Writes other than accesses; each runs in its own transaction.
enum AdminJob {
    Load(
        Vec<PersonRecordSet>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    Import(
        Box<myna_store::import::ImportBatch>,
        oneshot::Sender<Result<myna_store::import::Imported, StoreError>>,
    ),
    AddOrganisation(
        Organisation,
        String,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    Revoke(String, String, oneshot::Sender<Result<(), StoreError>>),
    DisableOrganisation(String, bool, oneshot::Sender<Result<bool, StoreError>>),
    /// Organisation, certificate SHA-256, reason.
    RevokeOrganisationCertificate(
        String,
        String,
        String,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
    SetInfo(DatasetInfo, oneshot::Sender<Result<(), StoreError>>),
    SetClaimsThrough(NaiveDate, oneshot::Sender<Result<(), StoreError>>),
    HospitalRead(
        Box<myna_store::HospitalReadReport>,
        oneshot::Sender<Result<myna_store::HospitalReadLogged, StoreError>>,
    ),
}

pub struct SqliteStore {
    path: PathBuf,
    jobs: Mutex<mpsc::Sender<Job>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

/// How often the background thread folds the WAL back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Checkpoints from its own connection, so the writer never stalls on one mid-batch.
fn spawn_checkpointer(
    path: &Path,
) -> Result<(mpsc::Sender<()>, std::thread::JoinHandle<()>), StoreError> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(db_err)?;
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        })
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok((tx, handle))
}

/// Runs `pragmas` (the journal mode among them) on a connection just opened. A new file's
/// switch to WAL takes an exclusive lock, and SQLite answers "busy" at once, without waiting,
/// when two processes opening the file at the same moment would otherwise wait on each other:
/// the switch is tried again, for up to 5 s.
pub(crate) fn set_pragmas(conn: &Connection, pragmas: &str) -> Result<(), StoreError> {
    let mut tries = 0;
    loop {
        match conn.execute_batch(pragmas) {
            Err(e) if tries < 50 && is_busy(&e) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other.map_err(db_err),
        }
    }
}

/// Whether another connection holds the lock `e` waited for.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The newest migration applied to `conn`'s file, if any.
pub(crate) fn schema_version(conn: &Connection) -> Option<i64> {
    conn.query_row(
        "SELECT max(version) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )
    .ok()
    .flatten()
}

/// Brings `path`'s schema up to `runner()`'s migrations. Two processes opening a new file at
/// once race on them: the loser's migration fails on a table the winner has just made, or on
/// the winner's write lock. It then runs again and finds those applied; any other failure is
/// reported at once.
pub(crate) fn migrate(
    conn: &mut Connection,
    runner: impl Fn() -> refinery::Runner,
    path: &Path,
) -> Result<(), StoreError> {
    const TRIES: u32 = 50;
    let mut tries = 0;
    loop {
        let before = schema_version(conn);
        match runner().run(conn) {
            Ok(_) => return Ok(()),
            Err(e) => {
                let busy = std::error::Error::source(&e)
                    .and_then(|c| c.downcast_ref::<rusqlite::Error>())
                    .is_some_and(is_busy);
                tries += 1;
                if tries >= TRIES || !(busy || schema_version(conn) > before) {
                    return Err(StoreError::Unavailable(format!(
                        "migrating {}: {e}",
                        path.display()
                    )));
                }
                tracing::debug!(file = %path.display(), error = %e, "another process migrates; again");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("the database writer has stopped".into())
}

fn open_conn(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    create_owner_only(path)?;
    let conn = Connection::open(path).map_err(db_err)?;
    let pragmas = match durability {
        Durability::Full => {
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA cache_size = -65536;"
        }
        Durability::BulkLoad => {
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; \
             PRAGMA locking_mode = EXCLUSIVE;"
        }
    };
    set_pragmas(&conn, pragmas)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file with full durability.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::Full)
    }

    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let mut conn = open_conn(path, durability)?;
        migrate(&mut conn, embedded::migrations::runner, path)?;
        let masters = rows::load_masters(&conn)?;
        let names = rows::Names::new(masters.clone());
        let claims_through = read_claims_through(&conn)?;
        let checkpointer = match durability {
            Durability::Full => {
                conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
                    .map_err(db_err)?;
                Some(spawn_checkpointer(path)?)
            }
            Durability::BulkLoad => None,
        };
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let data_version = data_version(&conn).unwrap_or(0);
                Writer {
                    conn,
                    masters,
                    names,
                    claims_through,
                    claims_version: data_version,
                    data_version,
                }
                .run(rx)
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            path: path.to_owned(),
            jobs: Mutex::new(tx),
            readers: Arc::new(Mutex::new(Vec::new())),
            writer: Mutex::new(Some(writer)),
            checkpointer,
        })
    }

    /// Finishes queued work, closes every connection and waits for the writer to exit, so the
    /// file is complete on return (needed before renaming a freshly loaded database).
    pub fn close(self) -> Result<(), StoreError> {
        let Self {
            jobs,
            readers,
            writer,
            checkpointer,
            ..
        } = self;
        drop(jobs);
        drop(readers);
        let handle = writer.lock().map_err(|_| unavailable())?.take();
        if let Some(h) = handle {
            h.join()
                .map_err(|_| StoreError::Unavailable("the database writer panicked".into()))?;
        }
        if let Some((stop, handle)) = checkpointer {
            drop(stop);
            handle
                .join()
                .map_err(|_| StoreError::Unavailable("the checkpoint thread panicked".into()))?;
        }
        Ok(())
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .lock()
            .map_err(|_| unavailable())?
            .send(make(tx))
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    /// Runs `f` on a pooled read-only connection off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.lock().map_err(|_| unavailable())?.pop();
            let conn = match conn {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(db_err)?;
                    c.execute_batch("PRAGMA busy_timeout = 5000;")
                        .map_err(db_err)?;
                    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                    c
                }
            };
            let out = f(&conn);
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

struct Writer {
    conn: Connection,
    /// What loads check against; kept in step with the tables inside each load's transaction.
    masters: Masters,
    /// The names accesses read.
    names: rows::Names,
    /// `dataset_info.claims_through`, kept here because every access reports it.
    claims_through: Option<NaiveDate>,
    /// `PRAGMA data_version` when `claims_through` was last read: another process may set it
    /// (`provider claims-through`), and the next batch of accesses reads it again.
    claims_version: i64,
    /// `PRAGMA data_version` when `masters` was last read: another process's commit (an
    /// `import` beside a serving provider) changes it, and the next load reads them again.
    data_version: i64,
}

/// One dataset fact: set, or removed when None.
fn put_info(conn: &Connection, key: &str, value: Option<String>) -> Result<(), StoreError> {
    match value {
        Some(v) => conn.execute(
            "INSERT INTO dataset_info (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, v],
        ),
        None => conn.execute("DELETE FROM dataset_info WHERE key = ?1", [key]),
    }
    .map(drop)
    .map_err(db_err)
}

fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(db_err)
}

fn read_claims_through(conn: &Connection) -> Result<Option<NaiveDate>, StoreError> {
    conn.query_row(
        "SELECT value FROM dataset_info WHERE key = 'claims_through'",
        [],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map_err(db_err)
    .map(|s| myna_store::columns::claims_date_for_access(s.as_deref()))
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut accesses = Vec::new();
            let mut pending = Some(first);
            // Take everything already queued, up to a batch of accesses.
            while let Some(job) = pending.take() {
                match job {
                    Job::Access(req, reply) => accesses.push((req, reply)),
                    Job::Admin(admin) => {
                        // Commit waiting accesses first so jobs apply in arrival order.
                        self.commit_accesses(std::mem::take(&mut accesses));
                        self.run_admin(admin);
                    }
                }
                if accesses.len() < MAX_BATCH {
                    pending = rx.try_recv().ok();
                }
            }
            self.commit_accesses(accesses);
        }
    }

    fn run_admin(&mut self, job: AdminJob) {
        match job {
            AdminJob::Load(persons, reply) => {
                let r = self.in_tx(|conn, masters| rows::insert_persons(conn, masters, &persons));
                if r.is_err() {
                    // The cache may name rows the rollback removed.
                    if let Ok(m) = rows::load_masters(&self.conn) {
                        self.masters = m;
                    }
                }
                let _ = reply.send(r);
            }
            AdminJob::Import(batch, reply) => {
                let now_ms = chrono::Utc::now().timestamp_millis();
                let r =
                    self.in_tx(|conn, masters| import::import_batch(conn, masters, &batch, now_ms));
                if r.is_err()
                    && let Ok(m) = rows::load_masters(&self.conn)
                {
                    self.masters = m;
                }
                let _ = reply.send(r);
            }
            AdminJob::AddOrganisation(org, hash, reply) => {
                let r = self.in_tx(|conn, _| {
                    let exists = conn
                        .query_row("SELECT 1 FROM organisation WHERE id = ?1", [&org.id], |_| Ok(()))
                        .optional()
                        .map_err(db_err)?;
                    if exists.is_some() {
                        return Err(StoreError::OrganisationExists(org.id.clone()));
                    }
                    conn.execute(
                        "INSERT INTO organisation (id, name, secret_sha256, disabled) VALUES (?1, ?2, ?3, 0)",
                        params![org.id, org.name, hash],
                    )
                    .map_err(db_err)?;
                    Ok(())
                });
                let _ = reply.send(r);
            }
            AdminJob::DisableOrganisation(id, disabled, reply) => {
                let r = self.in_tx(|conn, _| {
                    let n = conn
                        .execute(
                            "UPDATE organisation SET disabled = ?1 WHERE id = ?2",
                            params![i64::from(disabled), id],
                        )
                        .map_err(db_err)?;
                    Ok(n == 1)
                });
                let _ = reply.send(r);
            }
            AdminJob::RevokeOrganisationCertificate(org, sha256, reason, reply) => {
                let r = self.in_tx(|conn, _| {
                    let known: Option<i64> = conn
                        .query_row("SELECT 1 FROM organisation WHERE id = ?1", [&org], |r| {
                            r.get(0)
                        })
                        .optional()
                        .map_err(db_err)?;
                    if known.is_none() {
                        return Ok(false);
                    }
                    conn.execute(
                        "INSERT INTO organisation_certificate_revocation \
                         (public_key_sha256, organisation_id, revoked_at, reason) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (public_key_sha256) DO NOTHING",
                        params![sha256, org, chrono::Utc::now().to_rfc3339(), reason],
                    )
                    .map_err(db_err)?;
                    Ok(true)
                });
                let _ = reply.send(r);
            }
            AdminJob::Revoke(serial, reason, reply) => {
                let r = self.in_tx(|conn, _| {
                    conn.execute(
                        "INSERT INTO revoked_cert (serial, revoked_at, reason) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (serial) DO NOTHING",
                        params![serial, chrono::Utc::now().to_rfc3339(), reason],
                    )
                    .map_err(db_err)?;
                    Ok(())
                });
                let _ = reply.send(r);
            }
            AdminJob::HospitalRead(report, reply) => {
                let r = self.in_tx(|conn, _| rows::record_hospital_read(conn, &report));
                let _ = reply.send(r);
            }
            AdminJob::SetClaimsThrough(date, reply) => {
                let r =
                    self.in_tx(|conn, _| put_info(conn, "claims_through", Some(date.to_string())));
                if r.is_ok() {
                    self.claims_through = Some(date);
                }
                let _ = reply.send(r);
            }
            AdminJob::SetInfo(info, reply) => {
                let r = self.in_tx(|conn, _| {
                    let put = |k: &str, v: Option<String>| put_info(conn, k, v);
                    put("persons", Some(info.persons.to_string()))?;
                    put("seed", info.seed.map(|s| s.to_string()))?;
                    put(
                        "generated_as_of",
                        info.generated_as_of.map(|d| d.to_string()),
                    )?;
                    put("claims_through", info.claims_through.map(|d| d.to_string()))?;
                    Ok(())
                });
                if r.is_ok() {
                    self.claims_through = info.claims_through;
                }
                let _ = reply.send(r);
            }
        }
    }

    fn in_tx<T>(
        &mut self,
        f: impl FnOnce(&Connection, &mut Masters) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run(&self.conn, "BEGIN IMMEDIATE")?;
        // Institutions and drugs another process added since: a load checks against them.
        if let Ok(v) = data_version(&self.conn)
            && v != self.data_version
            && let Ok(m) = rows::load_masters(&self.conn)
        {
            self.masters = m;
            self.data_version = v;
        }
        match f(&self.conn, &mut self.masters) {
            Ok(v) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    Err(db_err(e))
                }
            },
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn commit_accesses(&mut self, batch: Vec<(Box<AccessRequest>, AccessReply)>) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = run(&self.conn, "BEGIN IMMEDIATE") {
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Unavailable(format!("begin failed: {e}"))));
            }
            return;
        }
        // Another process's commit since the last batch may have moved the claims date.
        if let Ok(v) = data_version(&self.conn)
            && v != self.claims_version
            && let Ok(c) = read_claims_through(&self.conn)
        {
            self.claims_through = c;
            self.claims_version = v;
        }
        let mut results = Vec::with_capacity(batch.len());
        let mut lost: Option<String> = None;
        for (req, reply) in batch {
            if lost.is_some() {
                results.push((Err(unavailable()), reply));
                continue;
            }
            let r = self.one_access(&req);
            // Some errors (I/O, disk full) make SQLite roll back the whole transaction. Running
            // the rest would commit them one by one, outside the batch: refuse them instead.
            if self.conn.is_autocommit() {
                lost = Some(match &r {
                    Err(e) => e.to_string(),
                    Ok(_) => "transaction ended early".into(),
                });
            }
            results.push((r, reply));
        }
        if let Some(why) = lost {
            tracing::error!(%why, "the batch transaction was rolled back; no access in it was granted");
            for (_, reply) in results {
                let _ = reply.send(Err(StoreError::Unavailable(format!(
                    "transaction rolled back: {why}"
                ))));
            }
            return;
        }
        match run(&self.conn, "COMMIT") {
            Ok(()) => {
                for (r, reply) in results {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, "access-log commit failed; no access in the batch was granted");
                for (_, reply) in results {
                    let _ = reply.send(Err(StoreError::Unavailable(format!("commit failed: {e}"))));
                }
            }
        }
    }

    /// One access inside the open transaction, in its own savepoint.
    fn one_access(&mut self, req: &AccessRequest) -> Result<AccessGranted, StoreError> {
        run(&self.conn, "SAVEPOINT access")?;
        let r = self.access_in_savepoint(req);
        if self.conn.is_autocommit() {
            // SQLite already rolled back everything; there is no savepoint left to end.
            return r;
        }
        if r.is_err() {
            run(&self.conn, "ROLLBACK TO access")?;
        }
        run(&self.conn, "RELEASE access")?;
        r
    }

    fn access_in_savepoint(&mut self, req: &AccessRequest) -> Result<AccessGranted, StoreError> {
        let conn = &self.conn;
        let id = card_holder(conn, &req.serial_hex)?;
        let person = rows::read_person(conn, id)?;
        let plan = Windows::for_view(req.view).fetch_plan(req.today);
        let records = rows::read_records(conn, &self.names, id, &plan, req.today)?;
        let prev = rows::access_head(conn)?;
        let mut entry = req.entry.clone();
        entry.person_id = id;
        let chained = chain(prev, entry);
        rows::insert_access(conn, &chained)?;
        Ok(AccessGranted {
            person,
            records,
            claims_through: self.claims_through,
            // The log's one chain: an entry's id is its place in it.
            access_id: chained.seq,
            position: ChainPosition {
                partition: 0,
                seq: chained.seq,
            },
        })
    }
}

/// Runs one statement that returns no rows, prepared once per connection.
fn run(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .map_err(db_err)?
        .execute([])
        .map(|_| ())
        .map_err(db_err)
}

/// The person a card's serial links to, unless the card is revoked.
fn card_holder(conn: &Connection, serial_hex: &str) -> Result<PersonId, StoreError> {
    let person_id: i64 = conn
        .prepare_cached("SELECT person_id FROM auth_cert WHERE serial = ?1")
        .map_err(db_err)?
        .query_row([serial_hex], |r| r.get(0))
        .optional()
        .map_err(db_err)?
        .ok_or_else(|| StoreError::UnknownSerial(serial_hex.to_owned()))?;
    if let Some(revoked_at) = conn
        .prepare_cached("SELECT revoked_at FROM revoked_cert WHERE serial = ?1")
        .map_err(db_err)?
        .query_row([serial_hex], |r| r.get::<_, String>(0))
        .optional()
        .map_err(db_err)?
    {
        return Err(StoreError::Revoked {
            serial: serial_hex.to_owned(),
            revoked_at,
        });
    }
    Ok(PersonId(person_id))
}

impl ProviderStore for SqliteStore {
    async fn access_records(&self, request: AccessRequest) -> Result<AccessGranted, StoreError> {
        self.submit(|tx| Job::Access(Box::new(request), tx)).await
    }

    async fn authenticate(
        &self,
        org_id: &str,
        secret: &str,
    ) -> Result<Option<Organisation>, StoreError> {
        let org_id = org_id.to_owned();
        let secret = secret.to_owned();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT name, secret_sha256, disabled FROM organisation WHERE id = ?1",
                )
                .map_err(db_err)?
                .query_row([&org_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()
                .map_err(db_err)?;
            Ok(match row {
                Some((name, hash, 0)) if myna_store::secret_matches(&secret, &hash) => {
                    Some(Organisation { id: org_id, name })
                }
                _ => None,
            })
        })
        .await
    }

    async fn organisation(&self, org_id: &str) -> Result<Option<Organisation>, StoreError> {
        let org_id = org_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT name FROM organisation WHERE id = ?1 AND disabled = 0")
                .map_err(db_err)?
                .query_row([&org_id], |r| r.get::<_, String>(0))
                .optional()
                .map_err(db_err)
                .map(|name| name.map(|name| Organisation { id: org_id, name }))
        })
        .await
    }

    async fn organisation_for_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
    ) -> Result<Option<Organisation>, StoreError> {
        let (org_id, sha256) = (org_id.to_owned(), public_key_sha256.to_ascii_lowercase());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT name FROM organisation WHERE id = ?1 AND disabled = 0 AND NOT EXISTS \
                 (SELECT 1 FROM organisation_certificate_revocation WHERE public_key_sha256 = ?2)",
            )
            .map_err(db_err)?
            .query_row(params![&org_id, &sha256], |r| r.get::<_, String>(0))
            .optional()
            .map_err(db_err)
            .map(|name| name.map(|name| Organisation { id: org_id, name }))
        })
        .await
    }

    async fn revoke_organisation_certificate(
        &self,
        org_id: &str,
        public_key_sha256: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let (o, c, r) = (
            org_id.to_owned(),
            public_key_sha256.to_ascii_lowercase(),
            reason.to_owned(),
        );
        self.submit(|tx| Job::Admin(AdminJob::RevokeOrganisationCertificate(o, c, r, tx)))
            .await
    }

    async fn add_organisation(
        &self,
        org: Organisation,
        secret_hash: String,
    ) -> Result<(), StoreError> {
        self.submit(|tx| Job::Admin(AdminJob::AddOrganisation(org, secret_hash, tx)))
            .await
    }

    async fn set_organisation_disabled(
        &self,
        org_id: &str,
        disabled: bool,
    ) -> Result<bool, StoreError> {
        let id = org_id.to_owned();
        self.submit(|tx| Job::Admin(AdminJob::DisableOrganisation(id, disabled, tx)))
            .await
    }

    async fn revoke_serial(&self, serial_hex: &str, reason: &str) -> Result<(), StoreError> {
        let (s, r) = (serial_hex.to_owned(), reason.to_owned());
        self.submit(|tx| Job::Admin(AdminJob::Revoke(s, r, tx)))
            .await
    }

    async fn load_persons(&self, persons: Vec<PersonRecordSet>) -> Result<(), StoreError> {
        myna_store::check_persons(&persons)?;
        self.submit(|tx| Job::Admin(AdminJob::Load(persons, tx)))
            .await
    }

    async fn import_batch(
        &self,
        batch: myna_store::import::ImportBatch,
    ) -> Result<myna_store::import::Imported, StoreError> {
        self.submit(|tx| Job::Admin(AdminJob::Import(Box::new(batch), tx)))
            .await
    }

    async fn dataset_info(&self) -> Result<DatasetInfo, StoreError> {
        self.read(|conn| {
            let get = |k: &str| -> Result<Option<String>, StoreError> {
                conn.query_row("SELECT value FROM dataset_info WHERE key = ?1", [k], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db_err)
            };
            let date = |s: Option<String>| -> Result<Option<NaiveDate>, StoreError> {
                s.map(|s| s.parse().map_err(|_| corrupt(format!("bad date {s:?}"))))
                    .transpose()
            };
            Ok(DatasetInfo {
                persons: get("persons")?.and_then(|s| s.parse().ok()).unwrap_or(0),
                seed: get("seed")?.and_then(|s| s.parse().ok()),
                generated_as_of: date(get("generated_as_of")?)?,
                claims_through: date(get("claims_through")?)?,
            })
        })
        .await
    }

    async fn set_dataset_info(&self, info: DatasetInfo) -> Result<(), StoreError> {
        self.submit(|tx| Job::Admin(AdminJob::SetInfo(info, tx)))
            .await
    }

    async fn set_claims_through(&self, date: NaiveDate) -> Result<(), StoreError> {
        self.submit(|tx| Job::Admin(AdminJob::SetClaimsThrough(date, tx)))
            .await
    }

    async fn verify_access_log(&self) -> Result<ChainReport, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {} FROM access_log ORDER BY seq",
                    rows::ACCESS_COLUMNS
                ))
                .map_err(db_err)?;
            let mut rows = stmt.query([]).map_err(db_err)?;
            let mut v = ChainVerifier::default();
            while let Some(row) = rows.next().map_err(db_err)? {
                let decoded = rows::chained_from_row(row).map_err(db_err)?;
                let outcome = match decoded {
                    Ok(e) => v.push(&e),
                    Err((seq, problem)) => Err(ChainBreak::Unreadable { seq, problem }),
                };
                if let Err(first_break) = outcome {
                    return Ok(ChainReport::Broken {
                        verified: v.count(),
                        first_break,
                        chain: None,
                        broken_chains: Vec::new(),
                    });
                }
            }
            // One chain (partition 0): SQLite has a single writer, so nothing waits.
            Ok(ChainReport::one_chain(&v))
        })
        .await
    }

    /// One chain (partition 0), checkpointed by its head (`v1`), which every verify checks
    /// against each signed head; the walk and the head are read one after the other here.
    async fn access_log_walk(
        &self,
        places: std::collections::BTreeMap<i64, i64>,
    ) -> Result<myna_store::ChainWalk, StoreError> {
        let report = self.verify_access_log().await?;
        let head = self.read(rows::access_head).await?;
        let found = match places.get(&0) {
            Some(seq) => {
                self.access_log_hash(ChainPosition {
                    partition: 0,
                    seq: *seq,
                })
                .await?
            }
            None => None,
        };
        Ok(myna_store::ChainWalk::of_one_chain(report, head, found))
    }

    async fn access_log_hash(&self, at: ChainPosition) -> Result<Option<Hash32>, StoreError> {
        let seq = at.seq;
        if at.partition != 0 {
            return Ok(None);
        }
        self.read(move |conn| rows::access_hash(conn, seq)).await
    }

    async fn access_log_for(
        &self,
        person: PersonId,
        limit: u32,
    ) -> Result<Vec<(ChainPosition, myna_domain::access::ChainedEntry)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM access_log WHERE person_id = ?1 ORDER BY seq DESC LIMIT ?2",
                    rows::ACCESS_COLUMNS
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![person.0, limit], rows::chained_from_row)
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                match row.map_err(db_err)? {
                    // One chain: the place is (0, seq).
                    Ok(e) => out.push((
                        ChainPosition {
                            partition: 0,
                            seq: e.seq,
                        },
                        e,
                    )),
                    Err((seq, problem)) => {
                        return Err(corrupt(format!("access-log entry {seq}: {problem}")));
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn record_hospital_read(
        &self,
        report: myna_store::HospitalReadReport,
    ) -> Result<myna_store::HospitalReadLogged, StoreError> {
        self.submit(|tx| Job::Admin(AdminJob::HospitalRead(Box::new(report), tx)))
            .await
    }

    async fn card_holder(&self, serial_hex: &str) -> Result<PersonId, StoreError> {
        let serial = serial_hex.to_owned();
        self.read(move |conn| card_holder(conn, &serial)).await
    }

    async fn organisation_names(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, name FROM organisation")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(db_err)?;
            rows.map(|r| r.map_err(db_err)).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use myna_domain::summary::View;

    /// A claims date in the file that is not a date: the store still opens (a revocation must
    /// still work), accesses report the date as unknown, and `dataset_info` names it as
    /// corrupt.
    #[tokio::test]
    async fn an_unreadable_claims_date_is_reported_as_unknown_and_the_store_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let set = myna_store::testsuite::sample_person(42, "01AD00000042");
        let store = SqliteStore::open(&path).unwrap();
        store.load_persons(vec![set.clone()]).await.unwrap();
        store.close().unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO dataset_info (key, value) VALUES ('claims_through', '2026-02-30') \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [],
            )
            .unwrap();

        let store = SqliteStore::open(&path).unwrap();
        let request = |n| myna_store::testsuite::request(&set.cert_serial, View::Summary, n);
        let granted = store.access_records(request(1)).await.unwrap();
        assert_eq!(granted.claims_through, None);
        store
            .revoke_serial(&set.cert_serial, "card reported stolen")
            .await
            .unwrap();
        assert!(matches!(
            store.access_records(request(2)).await,
            Err(StoreError::Revoked { .. })
        ));
        match store.dataset_info().await {
            Err(StoreError::Corrupt(why)) => assert!(why.contains("2026-02-30"), "{why}"),
            other => panic!("dataset_info with an unreadable claims date: {other:?}"),
        }
    }

    /// A SIGKILL test cannot see a missing fsync (the OS keeps the pages), so pin the settings
    /// that make a commit survive power loss.
    #[test]
    fn full_durability_means_wal_and_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_conn(&dir.path().join("d.db"), Durability::Full).unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
        assert_eq!(mode, "wal");
    }

    /// The one number a `SELECT count(*) …` on the file at `path` answers.
    fn count(path: &Path, sql: &str) -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    /// A file at V4 holding `set` and one access-log entry, written as V4 code wrote them.
    fn write_v4_file(path: &Path, set: &PersonRecordSet) {
        use myna_store::columns::{care_setting_str, dialysis_modality_str, procedure_kind_str};
        let mut conn = open_conn(path, Durability::Full).unwrap();
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(4))
            .run(&mut conn)
            .unwrap();
        let (p, r) = (&set.person, &set.records);
        conn.execute(
            "INSERT INTO person VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                p.id.0, p.name, p.name_kana, p.birth_date.to_string(), p.sex.code(),
                p.address.postal_code, p.address.prefecture, p.address.municipality,
                p.address.street, p.coverage.insurer_number, p.coverage.insurer_name,
                p.coverage.symbol, p.coverage.number, p.coverage.branch
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO auth_cert VALUES (?1, ?2)",
            params![set.cert_serial, p.id.0],
        )
        .unwrap();
        for (seq, v) in r.visits.iter().enumerate() {
            conn.execute(
                "INSERT INTO institution VALUES (?1, ?2, 'clinic') ON CONFLICT DO NOTHING",
                params![v.institution.code, v.institution.name],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO visit VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    p.id.0,
                    v.service_date.to_string(),
                    seq as i64,
                    v.available_on.to_string(),
                    v.institution.code,
                    v.department,
                    care_setting_str(v.setting),
                    v.source.as_str()
                ],
            )
            .unwrap();
        }
        for (seq, x) in r.dispensings.iter().enumerate() {
            for i in [Some(&x.prescriber), x.pharmacy.as_ref()]
                .into_iter()
                .flatten()
            {
                conn.execute(
                    "INSERT INTO institution VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![
                        i.code,
                        i.name,
                        myna_store::columns::institution_kind_str(i.kind)
                    ],
                )
                .unwrap();
            }
            let receipt = x.drug.receipt_code.as_ref().map(|c| c.as_str());
            conn.execute(
                "INSERT INTO drug VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    x.drug.yj.as_str(),
                    receipt,
                    x.drug.name,
                    x.drug.generic_name,
                    x.drug.strength
                ],
            )
            .unwrap();
            if let Some(code) = receipt {
                conn.execute(
                    "INSERT INTO drug_product VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        code,
                        x.drug.yj.as_str(),
                        x.drug.name,
                        x.drug.generic_name,
                        x.drug.strength
                    ],
                )
                .unwrap();
            }
            conn.execute(
                "INSERT INTO dispensing VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    p.id.0,
                    x.service_date.to_string(),
                    seq as i64,
                    x.available_on.to_string(),
                    x.drug.yj.as_str(),
                    x.daily_quantity,
                    x.unit,
                    x.days,
                    x.prescriber.code,
                    x.pharmacy.as_ref().map(|i| i.code.as_str()),
                    x.source.as_str(),
                    receipt
                ],
            )
            .unwrap();
        }
        for (seq, x) in r.procedures.iter().enumerate() {
            conn.execute(
                "INSERT INTO procedure_record VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    p.id.0,
                    x.service_date.to_string(),
                    seq as i64,
                    x.available_on.to_string(),
                    procedure_kind_str(x.kind),
                    x.code,
                    x.name,
                    x.institution.code,
                    x.source.as_str()
                ],
            )
            .unwrap();
        }
        for (seq, x) in r.dialysis.iter().enumerate() {
            conn.execute(
                "INSERT INTO dialysis VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    p.id.0,
                    x.service_date.to_string(),
                    seq as i64,
                    x.available_on.to_string(),
                    dialysis_modality_str(x.modality),
                    x.sessions,
                    x.institution.code,
                    x.source.as_str()
                ],
            )
            .unwrap();
        }
        for (seq, x) in r.health_checks.iter().enumerate() {
            conn.execute(
                "INSERT INTO health_check VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    p.id.0, x.service_date.to_string(), seq as i64, x.available_on.to_string(),
                    x.height_cm, x.weight_kg, x.systolic_mmhg, x.diastolic_mmhg,
                    x.hba1c_percent, x.ldl_mg_dl, x.egfr, x.urine_protein, x.source.as_str()
                ],
            )
            .unwrap();
        }
        let mut before = myna_store::testsuite::request(&set.cert_serial, View::Full, 1).entry;
        before.person_id = p.id;
        let e = chain(None, before);
        let x = &e.entry;
        conn.execute(
            // The columns before V6.
            "INSERT INTO access_log (seq, at_ms, organisation_id, viewer_organisation, viewer_team, \
             viewer_crew_member, incident_ref, person_id, cert_serial, purpose, consent, \
             exception_reason, view, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                e.seq, x.at_ms, x.organisation_id, x.viewer.organisation, x.viewer.team,
                x.viewer.crew_member, x.incident_ref, x.person_id.0, x.cert_serial,
                x.purpose.as_str(), x.consent.kind_str(), x.consent.reason().map(|r| r.as_str()),
                x.view.as_str(), hex::encode(e.prev_hash), hex::encode(e.hash)
            ],
        )
        .unwrap();
        drop(conn);
    }

    /// A file written before V5 (text dates and enums, hex hashes) migrates to integers and
    /// BLOBs: the same person reads back as a file created at V5 holds it, and the log's chain,
    /// with an entry written before and one after, verifies.
    #[tokio::test]
    async fn a_v4_file_migrates_to_integer_dates_enums_and_binary_hashes() {
        use myna_domain::records::*;
        let dir = tempfile::tempdir().unwrap();
        let mut set = myna_store::testsuite::sample_person(41, "01AD00000041");
        // A product code, stored last in `dispensing`: a column out of order in V5's copy
        // would move it.
        set.records.dispensings[0].drug.receipt_code =
            Some(myna_domain::codes::ReceiptDrugCode::parse("622004601").unwrap());
        let d = set.records.visits[1].service_date;
        set.records.dialysis.push(Dialysis {
            service_date: d,
            available_on: d + chrono::Days::new(30),
            modality: DialysisModality::Peritoneal,
            sessions: 30,
            institution: set.records.visits[1].institution.clone(),
            source: Source::Claims,
        });

        let old_path = dir.path().join("v4.db");
        write_v4_file(&old_path, &set);

        let migrated = SqliteStore::open(&old_path).unwrap();
        let fresh = SqliteStore::open(&dir.path().join("v5.db")).unwrap();
        fresh.load_persons(vec![set.clone()]).await.unwrap();
        let request = || myna_store::testsuite::request(&set.cert_serial, View::Full, 2);
        let got = migrated.access_records(request()).await.unwrap();
        let want = fresh.access_records(request()).await.unwrap();
        assert_eq!(got.person, want.person);
        assert_eq!(got.records, want.records);
        assert_eq!(
            got.records.dialysis.len(),
            1,
            "the dialysis record is in the view"
        );
        assert_eq!(
            got.access_id, 2,
            "appended after the entry written before V5"
        );
        assert_eq!(entries(&migrated).await, 2);
        let head = migrated.access_log_hash(got.position).await.unwrap();
        assert!(head.is_some());
        let index = count(
            &old_path,
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'access_log_by_person'",
        );
        assert_eq!(index, 1, "the log's index by person is back");
    }

    /// A V4 row V5 cannot convert fails the whole migration, naming its table and column, and
    /// leaves the file at V4 with the row as it was.
    #[tokio::test]
    async fn a_v4_row_v5_cannot_convert_fails_the_migration_and_changes_nothing() {
        let bad = [
            ("UPDATE visit SET setting = 'daycare'", "visit_v5.setting"),
            (
                "UPDATE visit SET service_date = '2024-02-30'",
                "visit_v5.service_date",
            ),
            (
                "UPDATE health_check SET available_on = '2460000'",
                "health_check_v5.available_on",
            ),
            (
                "UPDATE access_log SET hash = 'not hex'",
                "access_log_v5.hash",
            ),
        ];
        for (corrupt_row, column) in bad {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("v4.db");
            let set = myna_store::testsuite::sample_person(41, "01AD00000041");
            write_v4_file(&path, &set);
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute(corrupt_row, [])
                .unwrap();
            let err = SqliteStore::open(&path)
                .err()
                .expect(corrupt_row)
                .to_string();
            assert!(err.contains(column), "{corrupt_row}: {err}");
            let text = count(
                &path,
                "SELECT count(*) FROM visit WHERE typeof(service_date) = 'text'",
            );
            assert_eq!(text, 2, "{corrupt_row}: the V4 tables are untouched");
        }
    }

    async fn entries(store: &SqliteStore) -> u64 {
        match store.verify_access_log().await.unwrap() {
            ChainReport::Intact { entries, .. } => entries,
            broken => panic!("{broken:?}"),
        }
    }
}
