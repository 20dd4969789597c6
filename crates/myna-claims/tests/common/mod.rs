//! Synthetic files for the tests.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use chrono::NaiveDate;
use myna_claims::{BatchReader, BatchWriter, ImportBatch, Limits, ParseError};
use myna_store::PersonRecordSet;
use std::sync::OnceLock;

pub const SEED: u64 = 2026;

pub fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
}

/// Persons `range` of the synthetic population, as `gen` loads them.
pub fn sets(range: std::ops::Range<u64>) -> Vec<PersonRecordSet> {
    let generator = myna_synth::Generator::new(SEED, as_of()).unwrap();
    range
        .map(|i| {
            let p = generator.person(i);
            PersonRecordSet {
                person: p.person,
                cert_serial: p.cert_serial,
                records: p.records,
            }
        })
        .collect()
}

pub fn write(batches: &[(&str, &[PersonRecordSet])]) -> Vec<u8> {
    let mut w = BatchWriter::new(Vec::new());
    for (id, sets) in batches {
        w.begin_batch(id).unwrap();
        for s in *sets {
            w.person_set(s).unwrap();
        }
    }
    w.finish().unwrap()
}

/// Every batch of `bytes`, or the first error.
pub fn read_all(bytes: &[u8]) -> Result<Vec<ImportBatch>, ParseError> {
    read_all_with(bytes, Limits::default())
}

pub fn read_all_with(bytes: &[u8], limits: Limits) -> Result<Vec<ImportBatch>, ParseError> {
    let mut r = BatchReader::with_limits(bytes, limits);
    let mut out = Vec::new();
    while let Some(b) = r.next_batch()? {
        out.push(b);
    }
    assert_eq!(r.bytes_read(), bytes.len() as u64);
    Ok(out)
}

/// Persons 0..4 and then the first persons holding a kind of record 0..4 lack, so that every
/// kind occurs.
pub fn covering_sets() -> Vec<PersonRecordSet> {
    let mut out = sets(0..4);
    let generator = myna_synth::Generator::new(SEED, as_of()).unwrap();
    let kinds = |s: &PersonRecordSet| {
        let r = &s.records;
        [
            !r.visits.is_empty(),
            !r.dispensings.is_empty(),
            !r.procedures.is_empty(),
            !r.dialysis.is_empty(),
            !r.health_checks.is_empty(),
        ]
    };
    for i in 4..20_000 {
        let have: Vec<[bool; 5]> = out.iter().map(kinds).collect();
        let covered = |k: usize| have.iter().any(|h| h[k]);
        if (0..5).all(covered) {
            return out;
        }
        let p = generator.person(i);
        let s = PersonRecordSet {
            person: p.person,
            cert_serial: p.cert_serial,
            records: p.records,
        };
        if kinds(&s).iter().enumerate().any(|(k, h)| *h && !covered(k)) {
            out.push(s);
        }
    }
    panic!("the population lacks a kind of record")
}

/// A small valid file of two batches (see `covering_sets`; the first batch three persons), as
/// lines without line ends.
pub fn sample_lines() -> &'static [String] {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    LINES.get_or_init(|| {
        let s = covering_sets();
        let bytes = write(&[("first", &s[..3]), ("second", &s[3..])]);
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    })
}

pub fn join(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.into_bytes()
}

/// The first line of the sample whose type is `kind`, and its index.
pub fn sample_line(kind: &str) -> (usize, serde_json::Map<String, serde_json::Value>) {
    let tag = format!("{{\"type\":\"{kind}\"");
    let (i, l) = sample_lines()
        .iter()
        .enumerate()
        .find(|(_, l)| l.starts_with(&tag))
        .unwrap_or_else(|| panic!("no {kind} line in the sample"));
    (i, serde_json::from_str(l).unwrap())
}

/// Lines in a file as the reader counts them.
pub fn count_lines(bytes: &[u8]) -> u64 {
    let newlines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
    newlines + u64::from(!bytes.is_empty() && bytes.last() != Some(&b'\n'))
}
