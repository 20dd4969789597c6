//! The claims-import reader on arbitrary bytes, as `myna-kyukyu import` reads a file anybody
//! could have sent: it never panics, an error names a line of the input, and what reads
//! writes back out and reads again to the same persons, cards and records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_claims::{BatchReader, Limits};

fuzz_target!(|data: &[u8]| {
    let lines = data.iter().filter(|b| **b == b'\n').count() as u64
        + u64::from(!data.is_empty() && data.last() != Some(&b'\n'));
    // Small limits too, so the fuzzer reaches them.
    for limits in [
        Limits::default(),
        Limits {
            max_line_bytes: 256,
            max_batch_lines: 8,
            ..Limits::default()
        },
    ] {
        let mut reader = BatchReader::with_limits(data, limits);
        loop {
            match reader.next_batch() {
                Ok(Some(batch)) => {
                    assert!(batch.lines.0 <= batch.lines.1 && batch.lines.1 <= lines);
                    for (n, _) in &batch.persons {
                        assert!((batch.lines.0..=batch.lines.1).contains(n));
                    }
                }
                Ok(None) => {
                    assert_eq!(reader.bytes_read(), data.len() as u64);
                    break;
                }
                Err(e) => {
                    assert!(e.line >= 1 && e.line <= lines, "{e} of {lines} lines");
                    assert_eq!(reader.next_batch(), Err(e), "the reader stops");
                    break;
                }
            }
        }
    }
});
