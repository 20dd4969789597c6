//! The import benchmark's baseline (`bench import`): SQLite's own bulk insert of the same rows,
//! prepared inserts in one transaction into tables with no key or index (the reference
//! tables keep their unique codes, which the inserts' `ON CONFLICT` needs). Not a store.

use crate::rows::{RowWriter, db_err};
use myna_store::StoreError;
use myna_store::columns::Masters;
use myna_store::import::{ImportBatch, Record};
use rusqlite::Connection;
use std::path::Path;

const TABLES: [&str; 10] = [
    "person",
    "auth_cert",
    "institution",
    "drug",
    "drug_product",
    "visit",
    "dispensing",
    "procedure_record",
    "dialysis",
    "health_check",
];

pub struct SqliteBaseline {
    conn: Connection,
    masters: Masters,
}

impl SqliteBaseline {
    /// A new file at `path` with the store's durability (WAL, `synchronous=FULL`), the
    /// baseline tables, and the one transaction open.
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        let store = crate::SqliteStore::open(path)?;
        store.close()?;
        let conn = Connection::open(path).map_err(db_err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(db_err)?;
        for t in TABLES {
            conn.execute_batch(&format!(
                "CREATE TABLE baseline_{t} AS SELECT * FROM {t} WHERE 0"
            ))
            .map_err(db_err)?;
        }
        conn.execute_batch(
            "CREATE UNIQUE INDEX baseline_institution_code ON baseline_institution (code); \
             CREATE UNIQUE INDEX baseline_drug_yj ON baseline_drug (yj); \
             CREATE UNIQUE INDEX baseline_drug_product_code ON baseline_drug_product (receipt_code); \
             BEGIN",
        )
        .map_err(db_err)?;
        Ok(Self {
            conn,
            masters: Masters::default(),
        })
    }

    /// Inserts the batch's persons, card links and records; how many.
    pub fn insert(&mut self, batch: &ImportBatch) -> Result<u64, StoreError> {
        let w = RowWriter::with_prefix(&self.conn, "baseline_");
        for (_, p) in &batch.persons {
            w.person(p, false)?;
        }
        for (_, c) in &batch.cards {
            w.card(&c.serial, c.person.0)?;
        }
        let m = &mut self.masters;
        for (_, r) in &batch.records {
            let (id, seq) = (r.person.0, i64::from(r.seq));
            match &r.record {
                Record::Visit(v) => w.visit(m, id, seq, v)?,
                Record::Dispensing(d) => w.dispensing(m, id, seq, d)?,
                Record::Procedure(p) => w.procedure(m, id, seq, p)?,
                Record::Dialysis(d) => w.dialysis(m, id, seq, d)?,
                Record::HealthCheck(h) => w.health_check(id, seq, h)?,
            }
        }
        Ok(batch.len())
    }

    /// Commits the one transaction.
    pub fn finish(self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT").map_err(db_err)
    }
}
