//! The streaming reader: a file into batches, one at a time.

use crate::line::{self, Line};
use crate::{ImportBatch, Limits, LineNo, ParseError};
use sha2::{Digest, Sha256};
use std::io::{BufRead, ErrorKind};

/// Reads an import file batch by batch, never holding more than one batch (and the next
/// batch's header line) in memory.
///
/// After an error the reader stops: that call and every later one return the same error.
pub struct BatchReader<R: BufRead> {
    reader: R,
    limits: Limits,
    /// The current line, without its line end.
    line: Vec<u8>,
    bytes_read: u64,
    lines_read: u64,
    /// The next batch's header, read while ending the previous batch.
    pending: Option<Header>,
    failed: Option<ParseError>,
}

struct Header {
    id: String,
    line: LineNo,
    raw: Vec<u8>,
}

impl<R: BufRead> BatchReader<R> {
    pub fn new(reader: R) -> Self {
        Self::with_limits(reader, Limits::default())
    }

    pub fn with_limits(reader: R, limits: Limits) -> Self {
        Self {
            reader,
            limits,
            line: Vec::new(),
            bytes_read: 0,
            lines_read: 0,
            pending: None,
            failed: None,
        }
    }

    /// Bytes consumed from the reader so far, line ends included.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Lines consumed so far: the last line read. One more than the returned batch's last line
    /// when the next batch's header has been read.
    pub fn lines_read(&self) -> u64 {
        self.lines_read
    }

    /// The next batch, or `None` at the end of the file.
    pub fn next_batch(&mut self) -> Result<Option<ImportBatch>, ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let next = self.read_batch();
        if let Err(e) = &next {
            self.failed = Some(e.clone());
            self.pending = None;
            self.line = Vec::new();
        }
        next
    }

    fn read_batch(&mut self) -> Result<Option<ImportBatch>, ParseError> {
        let header = match self.pending.take() {
            Some(h) => h,
            None => loop {
                let Some(n) = self.read_line()? else {
                    return Ok(None);
                };
                match line::parse(&self.line) {
                    Ok(Line::Blank) => continue,
                    Ok(Line::Batch(id)) => {
                        break Header {
                            id,
                            line: n,
                            raw: self.line.clone(),
                        };
                    }
                    Ok(_) => return Err(error(n, "a record before the first batch line".into())),
                    Err(problem) => return Err(error(n, problem)),
                }
            },
        };
        let mut hasher = Sha256::new();
        hasher.update(&header.raw);
        hasher.update(b"\n");
        let mut batch = ImportBatch {
            id: header.id,
            digest: [0; 32],
            lines: (header.line, header.line),
            persons: Vec::new(),
            cards: Vec::new(),
            records: Vec::new(),
        };
        let mut count: u64 = 1;
        let mut bytes = header.raw.len() as u64;
        while let Some(n) = self.read_line()? {
            let parsed = line::parse(&self.line).map_err(|problem| error(n, problem))?;
            if let Line::Batch(id) = parsed {
                self.pending = Some(Header {
                    id,
                    line: n,
                    raw: self.line.clone(),
                });
                break;
            }
            count += 1;
            if count > self.limits.max_batch_lines {
                return Err(error(
                    n,
                    format!(
                        "batch {:?} has more than {} lines; split it into smaller batches",
                        batch.id, self.limits.max_batch_lines
                    ),
                ));
            }
            bytes += self.line.len() as u64;
            if bytes > self.limits.max_batch_bytes {
                return Err(error(
                    n,
                    format!(
                        "batch {:?} is over {} bytes; split it into smaller batches",
                        batch.id, self.limits.max_batch_bytes
                    ),
                ));
            }
            hasher.update(&self.line);
            hasher.update(b"\n");
            batch.lines.1 = n;
            match parsed {
                Line::Blank | Line::Batch(_) => {}
                Line::Person(p) => batch.persons.push((n, p)),
                Line::Card(c) => batch.cards.push((n, c)),
                Line::Record(r) => batch.records.push((n, r)),
            }
        }
        batch.digest = hasher.finalize().into();
        Ok(Some(batch))
    }

    /// Reads the next line into `self.line` without its line end (`\n` or `\r\n`) and returns
    /// its number, or `None` at the end of the file. Never buffers more than the longest line
    /// allowed (and a byte).
    fn read_line(&mut self) -> Result<Option<LineNo>, ParseError> {
        self.line.clear();
        let number = self.lines_read + 1;
        let max = self.limits.max_line_bytes;
        let too_long = || {
            error(
                number,
                format!("line is longer than {max} bytes (the format's limit is 64 KiB)"),
            )
        };
        let mut newline = false;
        let mut any = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(error(number, format!("reading the file: {e}"))),
            };
            if buf.is_empty() {
                break;
            }
            any = true;
            let (chunk, found) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            // One byte over the limit may be the `\r` of a `\r\n`.
            if self.line.len() + chunk.len() > max.saturating_add(1) {
                return Err(too_long());
            }
            self.line.extend_from_slice(chunk);
            let used = chunk.len() + usize::from(found);
            self.reader.consume(used);
            self.bytes_read += used as u64;
            if found {
                newline = true;
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        if newline && self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > max {
            return Err(too_long());
        }
        self.lines_read = number;
        Ok(Some(number))
    }
}

/// Longest problem reported, in characters: a message quoting a long line is cut.
const MAX_PROBLEM: usize = 300;

fn error(line: LineNo, mut problem: String) -> ParseError {
    if let Some((cut, _)) = problem.char_indices().nth(MAX_PROBLEM) {
        problem.truncate(cut);
        problem.push('…');
    }
    ParseError { line, problem }
}
