//! What a claims import hands the provider's store: one batch at a time, each applied whole or
//! not at all (the file format and its reader are `myna-claims`; `docs/import-format.md`).

use myna_domain::access::Hash32;
use myna_domain::person::{Person, PersonId};
use myna_domain::records::{Dialysis, Dispensing, HealthCheck, Procedure, Visit};

/// A line of the import file, counted from 1.
pub type LineNo = u64;

/// One batch of claims (レセプト) and e-prescription dispensings.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportBatch {
    /// The sender's name for the batch, unique among its batches.
    pub id: String,
    /// SHA-256 over the batch's lines as read: the same id arriving with other content is
    /// refused rather than applied twice.
    pub digest: Hash32,
    /// The batch's header line and its last line.
    pub lines: (LineNo, LineNo),
    /// Demographics: a person not yet held is added; one already held is updated to these.
    pub persons: Vec<(LineNo, Person)>,
    /// Links from an auth-certificate serial to its person (a reissued card links a new one).
    pub cards: Vec<(LineNo, CardLink)>,
    pub records: Vec<(LineNo, ClaimRecord)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardLink {
    pub serial: String,
    pub person: PersonId,
}

/// One medical record of a person, with the number the sender gives it among that person's
/// records of its kind (with the person and the service date, the record's key).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRecord {
    pub person: PersonId,
    pub seq: u32,
    pub record: Record,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Visit(Visit),
    Dispensing(Dispensing),
    Procedure(Procedure),
    Dialysis(Dialysis),
    HealthCheck(HealthCheck),
}

impl Record {
    pub fn service_date(&self) -> chrono::NaiveDate {
        match self {
            Record::Visit(r) => r.service_date,
            Record::Dispensing(r) => r.service_date,
            Record::Procedure(r) => r.service_date,
            Record::Dialysis(r) => r.service_date,
            Record::HealthCheck(r) => r.service_date,
        }
    }

    /// The record's kind as the import file names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Visit(_) => "visit",
            Record::Dispensing(_) => "dispensing",
            Record::Procedure(_) => "procedure",
            Record::Dialysis(_) => "dialysis",
            Record::HealthCheck(_) => "health_check",
        }
    }
}

impl ImportBatch {
    /// Persons, card links and records: what the progress bar counts.
    pub fn len(&self) -> u64 {
        (self.persons.len() + self.cards.len() + self.records.len()) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What importing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Applied now, in one transaction: this many persons, card links and records.
    Applied { items: u64 },
    /// Applied before (same id, same digest): nothing changed.
    AlreadyImported,
}

/// A batch whose id is already held with `stored` digest: skipped if it is the same batch,
/// refused at its header if its content changed.
pub fn seen_before(batch: &ImportBatch, stored: &[u8]) -> Result<Imported, crate::StoreError> {
    if stored == batch.digest.as_slice() {
        Ok(Imported::AlreadyImported)
    } else {
        Err(crate::StoreError::ImportRejected {
            line: batch.lines.0,
            problem: format!(
                "batch {:?} was imported before with other content",
                batch.id
            ),
        })
    }
}

/// What a batch must satisfy before any store looks at it: each record passes
/// `MedicalRecords::check` on its own, no record key (person, kind, service date, seq) and no
/// card serial appears twice, and no person is declared twice. Names the offending line.
pub fn check(batch: &ImportBatch) -> Result<(), crate::StoreError> {
    use myna_domain::records::MedicalRecords;
    use std::collections::HashMap;
    let rejected =
        |line: LineNo, problem: String| crate::StoreError::ImportRejected { line, problem };
    let mut persons: HashMap<i64, LineNo> = HashMap::new();
    for (line, p) in &batch.persons {
        if let Some(first) = persons.insert(p.id.0, *line) {
            return Err(rejected(
                *line,
                format!(
                    "person {} is declared twice (first at line {first})",
                    p.id.0
                ),
            ));
        }
    }
    let mut serials: HashMap<&str, LineNo> = HashMap::new();
    for (line, c) in &batch.cards {
        if let Some(first) = serials.insert(c.serial.as_str(), *line) {
            return Err(rejected(
                *line,
                format!("card {} is linked twice (first at line {first})", c.serial),
            ));
        }
    }
    let mut keys: HashMap<(i64, &'static str, chrono::NaiveDate, u32), LineNo> = HashMap::new();
    for (line, r) in &batch.records {
        let mut one = MedicalRecords::default();
        match &r.record {
            Record::Visit(v) => one.visits.push(v.clone()),
            Record::Dispensing(d) => one.dispensings.push(d.clone()),
            Record::Procedure(p) => one.procedures.push(p.clone()),
            Record::Dialysis(d) => one.dialysis.push(d.clone()),
            Record::HealthCheck(h) => one.health_checks.push(h.clone()),
        }
        one.check()
            .map_err(|e| rejected(*line, format!("{}: {e}", r.record.kind())))?;
        let key = (r.person.0, r.record.kind(), r.record.service_date(), r.seq);
        if let Some(first) = keys.insert(key, *line) {
            return Err(rejected(
                *line,
                format!("{} appears twice (first at line {first})", r.describe()),
            ));
        }
    }
    Ok(())
}

impl ClaimRecord {
    /// The record by its key, for messages: `visit of person 7 on 2026-10-01, seq 0`.
    pub fn describe(&self) -> String {
        format!(
            "{} of person {} on {}, seq {}",
            self.record.kind(),
            self.person.0,
            self.record.service_date(),
            self.seq
        )
    }
}
