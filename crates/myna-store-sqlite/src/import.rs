//! A claims-import batch in one transaction (`ProviderStore::import_batch`).

use crate::rows::{RowWriter, db_err};
use myna_store::StoreError;
use myna_store::columns::Masters;
use myna_store::import::{ImportBatch, Imported, LineNo, Record};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;

fn rejected(line: LineNo, problem: String) -> StoreError {
    StoreError::ImportRejected { line, problem }
}

/// Applies `batch` inside the caller's transaction; any error leaves it to be rolled back.
pub(crate) fn import_batch(
    conn: &Connection,
    masters: &mut Masters,
    batch: &ImportBatch,
    now_ms: i64,
) -> Result<Imported, StoreError> {
    let seen: Option<Vec<u8>> = conn
        .query_row(
            "SELECT digest FROM import_batch WHERE id = ?1",
            [&batch.id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    if let Some(digest) = seen {
        return if digest == batch.digest {
            Ok(Imported::AlreadyImported)
        } else {
            Err(rejected(
                batch.lines.0,
                format!(
                    "batch {:?} was imported before with other content",
                    batch.id
                ),
            ))
        };
    }
    myna_store::import::check(batch)?;
    let w = RowWriter::new(conn)?;
    let mut held: HashSet<i64> = HashSet::new();
    for (_, p) in &batch.persons {
        w.person(p, true)?;
        held.insert(p.id.0);
    }
    let mut is_held = |id: i64| -> Result<bool, StoreError> {
        if held.contains(&id) {
            return Ok(true);
        }
        let found = conn
            .prepare_cached("SELECT 1 FROM person WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |_| Ok(())).optional())
            .map_err(db_err)?
            .is_some();
        if found {
            held.insert(id);
        }
        Ok(found)
    };
    for (line, c) in &batch.cards {
        if !is_held(c.person.0)? {
            return Err(rejected(
                *line,
                format!("card {}: person {} is not held", c.serial, c.person.0),
            ));
        }
        let linked: Option<i64> = conn
            .prepare_cached("SELECT person_id FROM auth_cert WHERE serial = ?1")
            .and_then(|mut s| s.query_row([&c.serial], |r| r.get(0)).optional())
            .map_err(db_err)?;
        match linked {
            None => w.card(&c.serial, c.person.0)?,
            Some(p) if p == c.person.0 => {}
            Some(p) => {
                return Err(rejected(
                    *line,
                    format!("card {} is linked to another person ({p})", c.serial),
                ));
            }
        }
    }
    for (line, r) in &batch.records {
        let id = r.person.0;
        if !is_held(id)? {
            return Err(rejected(
                *line,
                format!("{}: the person is not held", r.describe()),
            ));
        }
        let seq = i64::from(r.seq);
        let written = match &r.record {
            Record::Visit(v) => w.visit(masters, id, seq, v),
            Record::Dispensing(d) => w.dispensing(masters, id, seq, d),
            Record::Procedure(p) => w.procedure(masters, id, seq, p),
            Record::Dialysis(d) => w.dialysis(masters, id, seq, d),
            Record::HealthCheck(h) => w.health_check(id, seq, h),
        };
        written.map_err(|e| match e {
            StoreError::InvalidRecord { problem, .. } => {
                rejected(*line, format!("{}: {problem}", r.describe()))
            }
            other => other,
        })?;
    }
    conn.execute(
        "INSERT INTO import_batch (id, digest, first_line, last_line, items, imported_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            batch.id,
            batch.digest.as_slice(),
            batch.lines.0 as i64,
            batch.lines.1 as i64,
            batch.len() as i64,
            now_ms
        ],
    )
    .map_err(db_err)?;
    Ok(Imported::Applied { items: batch.len() })
}
