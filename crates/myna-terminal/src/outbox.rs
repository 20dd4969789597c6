//! 送信待ち (outbox): the terminal's durable queue of incident events. A tap is committed here
//! (SQLite, `synchronous=FULL`) before the crew sees it as done, then delivered to `ems` in
//! order. Every event carries an idempotency key made at the tap, so a resend after a lost
//! answer is answered by `ems`, not appended again: each event arrives exactly once.
//!
//! Nothing medical goes in here: phases, the face check (with the card's certificate), consent
//! and outcomes. And nothing stays: a row is deleted once ems has answered it, with
//! `secure_delete` zeroing its bytes and a WAL truncation so no copy is left in the log.

use myna_wire::terminal::EventBody;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    pub incident: i64,
    pub body: EventBody,
}

pub struct Outbox {
    conn: Mutex<Connection>,
}

#[derive(Debug)]
pub struct OutboxError(pub String);

impl std::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "outbox: {}", self.0)
    }
}

impl std::error::Error for OutboxError {}

fn err(e: impl std::fmt::Display) -> OutboxError {
    OutboxError(e.to_string())
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        // The outbox holds card certificates: owner-only from the start (SQLite would use the
        // umask, and gives the WAL the database file's mode).
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(err(e)),
            _ => {}
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA secure_delete = ON;
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 incident_id INTEGER NOT NULL,
                 idempotency_key TEXT NOT NULL UNIQUE,
                 body TEXT NOT NULL
             );",
        )
        .map_err(err)?;
        // A file from before rows were deleted on delivery keeps delivered rows: drop them.
        let old_layout: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM pragma_table_info('outbox') WHERE name = 'state'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if old_layout {
            conn.execute_batch("DELETE FROM outbox WHERE state <> 'pending'; VACUUM;")
                .map_err(err)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, OutboxError> {
        let conn = self.conn.lock().map_err(|_| err("lock poisoned"))?;
        f(&conn).map_err(err)
    }

    /// Commits an event to the queue; durable when this returns.
    pub fn push(&self, incident: i64, body: &EventBody) -> Result<i64, OutboxError> {
        let json = serde_json::to_string(body).map_err(err)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO outbox (incident_id, idempotency_key, body) VALUES (?1, ?2, ?3)",
                params![incident, body.idempotency_key, json],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// The oldest event not yet delivered.
    pub fn head(&self) -> Result<Option<Queued>, OutboxError> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT id, incident_id, body FROM outbox ORDER BY id LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
        })?;
        row.map(|(id, incident, body)| {
            Ok(Queued {
                id,
                incident,
                body: serde_json::from_str(&body).map_err(err)?,
            })
        })
        .transpose()
    }

    /// ems answered this event (accepted or refused): it leaves the tablet. Its bytes are
    /// zeroed in the database file and the WAL is truncated, so no copy stays on disk.
    pub fn delivered(&self, id: i64) -> Result<(), OutboxError> {
        self.with(|c| {
            c.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
    }

    /// Undelivered events, oldest first (for the crew's "queued" marks).
    pub fn pending(&self) -> Result<Vec<Queued>, OutboxError> {
        let rows = self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, incident_id, body FROM outbox ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(id, incident, body)| {
                Ok(Queued {
                    id,
                    incident,
                    body: serde_json::from_str(&body).map_err(err)?,
                })
            })
            .collect()
    }

    pub fn pending_for(&self, incident: i64) -> Result<usize, OutboxError> {
        Ok(self
            .pending()?
            .iter()
            .filter(|q| q.incident == incident)
            .count())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use myna_domain::incident::Phase;
    use myna_wire::terminal::CrewEvent;

    fn body(key: &str, phase: Phase) -> EventBody {
        EventBody {
            idempotency_key: key.into(),
            device_at_ms: Some(1),
            event: CrewEvent::Phase { phase },
        }
    }

    #[test]
    fn events_survive_reopening_and_leave_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        {
            let o = Outbox::open(&path).unwrap();
            o.push(1, &body("a", Phase::Arrival)).unwrap();
            o.push(1, &body("b", Phase::Contact)).unwrap();
            use std::os::unix::fs::PermissionsExt;
            for p in [path.clone(), path.with_extension("db-wal")] {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} is owner-only", p.display());
            }
        }
        let o = Outbox::open(&path).unwrap();
        let head = o.head().unwrap().unwrap();
        assert_eq!(head.body.idempotency_key, "a");
        o.delivered(head.id).unwrap();
        assert_eq!(o.head().unwrap().unwrap().body.idempotency_key, "b");
        assert_eq!(o.pending_for(1).unwrap(), 1);
        assert!(
            o.push(1, &body("b", Phase::Contact)).is_err(),
            "keys are unique"
        );
    }

    #[test]
    fn a_delivered_event_leaves_no_bytes_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let o = Outbox::open(&path).unwrap();
        let marker = "consent-marker-7f3a9c";
        let id = o.push(1, &body(marker, Phase::Arrival)).unwrap();
        o.delivered(id).unwrap();
        assert!(o.head().unwrap().is_none());
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let found = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
            assert!(!found, "a delivered event's bytes stay on disk");
        }
    }
}
