//! The file format in which claims (レセプト) and e-prescription dispensings reach the provider
//! (`docs/import-format.md`): NDJSON, a sequence of batches, each a `batch` line followed by
//! `person`, `card` and record lines.
//!
//! [`BatchReader`] streams a file into [`ImportBatch`]es, one batch in memory at a time, checking
//! every line so that an error names the line it is on. [`BatchWriter`] writes the format from
//! [`PersonRecordSet`](myna_store::PersonRecordSet)s, numbering records as a load does.

mod line;
mod read;
mod write;

pub use myna_store::import::{CardLink, ClaimRecord, ImportBatch, LineNo, Record};
pub use read::BatchReader;
pub use write::BatchWriter;

/// The format version this crate reads and writes (the `batch` line's `format`).
pub const FORMAT: u64 = 1;

/// Longest line, in bytes without its line end.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Most lines in one batch, its `batch` line and blank lines included. A bigger batch must be
/// split: the store applies a batch in one transaction and the reader holds it in memory.
pub const MAX_BATCH_LINES: u64 = 200_000;

/// Most bytes in one batch (its lines without their line ends): what a batch may take in
/// memory is bounded by this, not by lines × the longest line.
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Longest institution code, in characters (a key the store indexes).
pub const MAX_CODE_CHARS: usize = 32;

/// Longest card serial, in hexadecimal digits.
pub const MAX_SERIAL_DIGITS: usize = 64;

/// Longest batch id, in bytes.
pub const MAX_BATCH_ID: usize = 128;

/// The reader's limits; [`Limits::default`] is the format's ([`MAX_LINE_BYTES`],
/// [`MAX_BATCH_LINES`]). Smaller limits are for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_line_bytes: usize,
    pub max_batch_lines: u64,
    pub max_batch_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: MAX_LINE_BYTES,
            max_batch_lines: MAX_BATCH_LINES,
            max_batch_bytes: MAX_BATCH_BYTES,
        }
    }
}

/// Why a file cannot be read: the line (counted from 1) and what is wrong with it. A read
/// error of the underlying reader is reported at the line being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    pub line: LineNo,
    pub problem: String,
}

/// Checks a batch id: 1 to [`MAX_BATCH_ID`] printable ASCII characters, no whitespace.
pub fn check_batch_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("batch id is empty".into());
    }
    if id.len() > MAX_BATCH_ID {
        return Err(format!(
            "batch id is {} bytes long; at most {MAX_BATCH_ID} allowed",
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "batch id may hold only printable ASCII without whitespace (found {c:?})"
        ));
    }
    Ok(())
}

/// Checks a card's certificate serial: upper-case hexadecimal digits, as the card reader reports
/// a serial and the store matches it.
pub fn check_serial(serial: &str) -> Result<(), String> {
    if serial.is_empty() {
        return Err("serial is empty".into());
    }
    if serial.len() > MAX_SERIAL_DIGITS {
        return Err(format!(
            "serial has {} digits; at most {MAX_SERIAL_DIGITS} allowed",
            serial.len()
        ));
    }
    if !serial
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return Err(format!(
            "serial must be upper-case hexadecimal digits (got {})",
            line::shorten(serial)
        ));
    }
    Ok(())
}
