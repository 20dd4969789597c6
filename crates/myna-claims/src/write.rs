//! The writer: persons and their records into the format.

use crate::{FORMAT, MAX_BATCH_LINES, MAX_LINE_BYTES, check_batch_id, check_serial};
use myna_domain::person::PersonId;
use myna_store::PersonRecordSet;
use serde::Serialize;
use std::io::{self, Write};

/// Writes an import file: [`begin_batch`](Self::begin_batch), then
/// [`person_set`](Self::person_set) for each person, again for every batch, then
/// [`finish`](Self::finish). Lines end in `\n`.
///
/// The writer refuses (with `InvalidInput`, before writing any of its lines) what the reader
/// would refuse: a bad batch id, a person set outside a batch or one that would take the
/// batch over [`MAX_BATCH_LINES`], an invalid serial or record, a line over
/// [`MAX_LINE_BYTES`].
pub struct BatchWriter<W: Write> {
    out: W,
    /// Lines of the current batch so far; `None` before the first batch.
    batch_lines: Option<u64>,
    line: Vec<u8>,
    pending: Vec<u8>,
}

impl<W: Write> BatchWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            batch_lines: None,
            line: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Starts a batch (ending the previous one).
    pub fn begin_batch(&mut self, id: &str) -> io::Result<()> {
        check_batch_id(id).map_err(invalid)?;
        self.pending.clear();
        self.line.clear();
        write!(
            self.line,
            "{{\"type\":\"batch\",\"format\":{FORMAT},\"id\":"
        )?;
        serde_json::to_writer(&mut self.line, id).map_err(io::Error::other)?;
        self.line.push(b'}');
        self.push_line()?;
        self.out.write_all(&self.pending)?;
        self.batch_lines = Some(1);
        Ok(())
    }

    /// Lines the current batch holds so far (its `batch` line included), to decide when to
    /// begin the next; `None` before the first batch.
    pub fn batch_lines(&self) -> Option<u64> {
        self.batch_lines
    }

    /// Writes a person line, the card line, then every record, each kind in its list's order
    /// with `seq` its index in that list (as a load numbers them).
    pub fn person_set(&mut self, set: &PersonRecordSet) -> io::Result<()> {
        let Some(lines) = self.batch_lines else {
            return Err(invalid("a person set before the first batch".into()));
        };
        let id = set.person.id;
        if id.0 <= 0 {
            return Err(invalid(format!(
                "person id must be positive (got {})",
                id.0
            )));
        }
        check_serial(&set.cert_serial).map_err(invalid)?;
        let r = &set.records;
        r.check()
            .map_err(|e| invalid(format!("person {}: {e}", id.0)))?;
        let finite = r
            .dispensings
            .iter()
            .map(|d| d.daily_quantity)
            .chain(r.health_checks.iter().flat_map(|h| {
                [
                    Some(h.height_cm),
                    Some(h.weight_kg),
                    h.hba1c_percent,
                    h.egfr,
                ]
                .into_iter()
                .flatten()
            }))
            .all(f64::is_finite);
        if !finite {
            return Err(invalid(format!(
                "person {}: a number is not finite (JSON cannot hold it)",
                id.0
            )));
        }
        let count = 2
            + r.visits.len()
            + r.dispensings.len()
            + r.procedures.len()
            + r.dialysis.len()
            + r.health_checks.len();
        if lines + count as u64 > MAX_BATCH_LINES {
            return Err(invalid(format!(
                "person {}: {count} lines would take the batch over {MAX_BATCH_LINES} lines; begin a new batch",
                id.0
            )));
        }

        self.pending.clear();
        self.object_line("{\"type\":\"person\",", &set.person)?;
        self.line.clear();
        self.line
            .extend_from_slice(b"{\"type\":\"card\",\"serial\":");
        serde_json::to_writer(&mut self.line, &set.cert_serial).map_err(io::Error::other)?;
        write!(self.line, ",\"person\":{}}}", id.0)?;
        self.push_line()?;
        self.records("visit", id, &r.visits)?;
        self.records("dispensing", id, &r.dispensings)?;
        self.records("procedure", id, &r.procedures)?;
        self.records("dialysis", id, &r.dialysis)?;
        self.records("health_check", id, &r.health_checks)?;
        self.out.write_all(&self.pending)?;
        self.batch_lines = Some(lines + count as u64);
        Ok(())
    }

    /// Flushes and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    fn records<T: Serialize>(
        &mut self,
        kind: &str,
        person: PersonId,
        list: &[T],
    ) -> io::Result<()> {
        for (seq, rec) in list.iter().enumerate() {
            let head = format!(
                "{{\"type\":\"{kind}\",\"person\":{},\"seq\":{seq},",
                person.0
            );
            self.object_line(&head, rec)?;
        }
        Ok(())
    }

    /// `head` (`{` and the line's own fields, with a trailing comma), then the fields of
    /// `value`, a struct serialized as an object.
    fn object_line<T: Serialize>(&mut self, head: &str, value: &T) -> io::Result<()> {
        self.line.clear();
        self.line.extend_from_slice(head.as_bytes());
        let start = self.line.len();
        serde_json::to_writer(&mut self.line, value).map_err(io::Error::other)?;
        match self.line.get(start..) {
            Some(b"{}") => {
                self.line.truncate(start - 1);
                self.line.push(b'}');
            }
            Some([b'{', ..]) => {
                self.line.remove(start);
            }
            _ => return Err(io::Error::other("a record did not serialize as an object")),
        }
        self.push_line()
    }

    /// Moves the line into the person set's pending output.
    fn push_line(&mut self) -> io::Result<()> {
        if self.line.len() > MAX_LINE_BYTES {
            return Err(invalid(format!(
                "a line of {} bytes; at most {MAX_LINE_BYTES} allowed",
                self.line.len()
            )));
        }
        self.pending.extend_from_slice(&self.line);
        self.pending.push(b'\n');
        Ok(())
    }
}

fn invalid(problem: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, problem)
}
