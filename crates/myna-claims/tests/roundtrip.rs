//! Synthetic persons written in two batches and read back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use myna_claims::{BatchReader, ImportBatch, Record};
use myna_domain::records::MedicalRecords;
use myna_store::PersonRecordSet;
use sha2::{Digest, Sha256};

/// The person sets a batch holds, rebuilt from its lines; checks each record's `seq` is its
/// index among the person's records of its kind.
fn rebuild(batch: &ImportBatch) -> Vec<PersonRecordSet> {
    let mut out: Vec<PersonRecordSet> = batch
        .persons
        .iter()
        .map(|(_, p)| PersonRecordSet {
            person: p.clone(),
            cert_serial: String::new(),
            records: MedicalRecords::default(),
        })
        .collect();
    for (_, card) in &batch.cards {
        let set = out.iter_mut().find(|s| s.person.id == card.person).unwrap();
        assert!(set.cert_serial.is_empty(), "two cards for one person");
        set.cert_serial = card.serial.clone();
    }
    for (line, c) in &batch.records {
        let r = &mut out
            .iter_mut()
            .find(|s| s.person.id == c.person)
            .unwrap()
            .records;
        let index = match &c.record {
            Record::Visit(v) => {
                r.visits.push(v.clone());
                r.visits.len()
            }
            Record::Dispensing(d) => {
                r.dispensings.push(d.clone());
                r.dispensings.len()
            }
            Record::Procedure(p) => {
                r.procedures.push(p.clone());
                r.procedures.len()
            }
            Record::Dialysis(d) => {
                r.dialysis.push(d.clone());
                r.dialysis.len()
            }
            Record::HealthCheck(h) => {
                r.health_checks.push(h.clone());
                r.health_checks.len()
            }
        } - 1;
        assert_eq!(c.seq as usize, index, "line {line}: seq");
    }
    out
}

fn digest_of(lines: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

#[test]
fn two_batches_round_trip() {
    let all = sets(0..12);
    let bytes = write(&[
        ("claims-2026-10/a", &all[..5]),
        ("claims-2026-10/b", &all[5..]),
    ]);
    let text = String::from_utf8(bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let batches = read_all(&bytes).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].id, "claims-2026-10/a");
    assert_eq!(batches[1].id, "claims-2026-10/b");
    assert_eq!(rebuild(&batches[0]), all[..5]);
    assert_eq!(rebuild(&batches[1]), all[5..]);

    // The batches cover the file, and every item sits on the line its number names.
    assert_eq!(batches[0].lines.0, 1);
    assert_eq!(batches[1].lines.0, batches[0].lines.1 + 1);
    assert_eq!(batches[1].lines.1, lines.len() as u64);
    for b in &batches {
        assert!(lines[b.lines.0 as usize - 1].starts_with("{\"type\":\"batch\""));
        let mut numbers: Vec<u64> = b.persons.iter().map(|(n, _)| *n).collect();
        numbers.extend(b.cards.iter().map(|(n, _)| *n));
        numbers.extend(b.records.iter().map(|(n, _)| *n));
        numbers.sort_unstable();
        assert_eq!(numbers, (b.lines.0 + 1..=b.lines.1).collect::<Vec<_>>());
        assert_eq!(b.len(), b.lines.1 - b.lines.0);
        for (n, p) in &b.persons {
            let l = lines[*n as usize - 1];
            assert!(l.starts_with(&format!("{{\"type\":\"person\",\"id\":{},", p.id.0)));
        }
        for (n, c) in &b.cards {
            let l = lines[*n as usize - 1];
            assert!(l.starts_with("{\"type\":\"card\"") && l.contains(&c.serial));
        }
        for (n, r) in &b.records {
            let l = lines[*n as usize - 1];
            let head = format!(
                "{{\"type\":\"{}\",\"person\":{},\"seq\":{},",
                r.record.kind(),
                r.person.0,
                r.seq
            );
            assert!(l.starts_with(&head), "{l}");
        }
        let own = &lines[b.lines.0 as usize - 1..b.lines.1 as usize];
        assert_eq!(b.digest, digest_of(own));
    }
    assert_ne!(batches[0].digest, batches[1].digest);

    // Read again: the same batches, digests included.
    assert_eq!(read_all(&bytes).unwrap(), batches);

    // The same file with CRLF line ends reads the same, digests included.
    let crlf = text.replace('\n', "\r\n").into_bytes();
    assert_eq!(read_all(&crlf).unwrap(), batches);
}

#[test]
fn every_kind_of_record_round_trips() {
    let all = covering_sets();
    let bytes = join(sample_lines());
    let batches = read_all(&bytes).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(rebuild(&batches[0]), all[..3]);
    assert_eq!(rebuild(&batches[1]), all[3..]);
    for kind in [
        "visit",
        "dispensing",
        "procedure",
        "dialysis",
        "health_check",
    ] {
        assert!(
            batches
                .iter()
                .flat_map(|b| &b.records)
                .any(|(_, r)| r.record.kind() == kind),
            "no {kind}"
        );
    }
}

#[test]
fn blank_lines_are_counted_and_hashed() {
    let lines = sample_lines();
    let plain = read_all(&join(lines)).unwrap();
    // A blank line before the first batch, one after the header, trailing ones at the end.
    let mut spaced = vec![String::new()];
    spaced.push(lines[0].clone());
    spaced.push("  \t".into());
    spaced.extend(lines[1..].iter().cloned());
    spaced.push(String::new());
    spaced.push(String::new());
    let bytes = join(&spaced);
    let batches = read_all(&bytes).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].lines.0, 2);
    assert_eq!(batches[0].persons[0].0, plain[0].persons[0].0 + 2);
    assert_eq!(batches[1].lines.1, spaced.len() as u64);
    // The first batch holds the blank line after its header; the second the trailing ones.
    assert_ne!(batches[0].digest, plain[0].digest);
    assert_ne!(batches[1].digest, plain[1].digest);
    assert_eq!(batches[0].persons.len(), plain[0].persons.len());
    // CRLF: still the same digests.
    let crlf = String::from_utf8(bytes).unwrap().replace('\n', "\r\n");
    assert_eq!(read_all(crlf.as_bytes()).unwrap(), batches);
}

#[test]
fn progress_counts_bytes_and_lines() {
    let bytes = join(sample_lines());
    let mut r = BatchReader::new(&bytes[..]);
    assert_eq!((r.bytes_read(), r.lines_read()), (0, 0));
    let first = r.next_batch().unwrap().unwrap();
    // The second batch's header has been read to end the first.
    assert_eq!(r.lines_read(), first.lines.1 + 1);
    let second = r.next_batch().unwrap().unwrap();
    assert_eq!(r.lines_read(), second.lines.1);
    assert_eq!(r.bytes_read(), bytes.len() as u64);
    assert_eq!(r.next_batch().unwrap(), None);
    assert_eq!(r.next_batch().unwrap(), None);
}

#[test]
fn a_file_without_a_final_line_end_reads() {
    let mut bytes = join(sample_lines());
    bytes.pop();
    assert_eq!(
        read_all(&bytes).unwrap(),
        read_all(&join(sample_lines())).unwrap()
    );
}
