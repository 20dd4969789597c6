//! Access to a person's summary: purpose, consent, viewer, and the hash-chained access log.
//!
//! Each log entry's hash covers its sequence number, its content and the previous entry's hash,
//! so editing, deleting or reordering any committed entry breaks verification from that point.

use crate::person::PersonId;
use crate::summary::View;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why the data is read. Only emergency care (v3-ActReason ETREAT) is lawful here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    EmergencyCare,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        "emergency_care"
    }
    pub fn parse(s: &str) -> Option<Self> {
        (s == "emergency_care").then_some(Purpose::EmergencyCare)
    }
}

/// Why consent could not be obtained. Viewing without consent is lawful only when the patient
/// cannot consent and viewing is needed to protect life or body (生命・身体の保護のため必要).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExceptionReason {
    /// 意識不明.
    Unconscious,
    /// 意識障害 (confused, cannot understand the question).
    AlteredConsciousness,
    /// 意思疎通困難 (cannot communicate, e.g. severe dyspnoea).
    UnableToCommunicate,
}

impl ExceptionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionReason::Unconscious => "unconscious",
            ExceptionReason::AlteredConsciousness => "altered_consciousness",
            ExceptionReason::UnableToCommunicate => "unable_to_communicate",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unconscious" => Some(ExceptionReason::Unconscious),
            "altered_consciousness" => Some(ExceptionReason::AlteredConsciousness),
            "unable_to_communicate" => Some(ExceptionReason::UnableToCommunicate),
            _ => None,
        }
    }
    pub fn label_ja(self) -> &'static str {
        match self {
            ExceptionReason::Unconscious => "意識不明",
            ExceptionReason::AlteredConsciousness => "意識障害",
            ExceptionReason::UnableToCommunicate => "意思疎通困難",
        }
    }
    pub fn label_en(self) -> &'static str {
        match self {
            ExceptionReason::Unconscious => "unconscious",
            ExceptionReason::AlteredConsciousness => "altered consciousness",
            ExceptionReason::UnableToCommunicate => "unable to communicate",
        }
    }
}

/// 同意 (oral consent) or the no-consent exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "ConsentWire")]
pub enum Consent {
    Obtained,
    Exception { reason: ExceptionReason },
}

impl Consent {
    pub fn kind_str(self) -> &'static str {
        match self {
            Consent::Obtained => "obtained",
            Consent::Exception { .. } => "exception",
        }
    }
    pub fn reason(self) -> Option<ExceptionReason> {
        match self {
            Consent::Obtained => None,
            Consent::Exception { reason } => Some(reason),
        }
    }
    pub fn from_parts(kind: &str, reason: Option<&str>) -> Option<Self> {
        match (kind, reason) {
            ("obtained", None) => Some(Consent::Obtained),
            ("exception", Some(r)) => {
                ExceptionReason::parse(r).map(|reason| Consent::Exception { reason })
            }
            _ => None,
        }
    }
}

/// The JSON form of `Consent`, read strictly: a reason with `obtained`, a missing reason with
/// `exception`, or any other field is refused rather than silently dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentWire {
    kind: String,
    reason: Option<String>,
}

impl TryFrom<ConsentWire> for Consent {
    type Error = String;
    fn try_from(w: ConsentWire) -> Result<Self, String> {
        Consent::from_parts(&w.kind, w.reason.as_deref()).ok_or_else(|| {
            "consent must be {\"kind\":\"obtained\"} or {\"kind\":\"exception\",\"reason\":R} with R \
             unconscious, altered_consciousness or unable_to_communicate"
                .to_owned()
        })
    }
}

/// Who looked: the calling organisation (authenticated), and the team and crew member it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub organisation: String,
    pub team: String,
    pub crew_member: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: &'static str,
}

/// Identifiers from callers: 1–64 characters, no control characters.
pub fn check_identifier(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError {
            field,
            problem: "must not be empty",
        });
    }
    if value.chars().count() > 64 {
        return Err(FieldError {
            field,
            problem: "must be at most 64 characters",
        });
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError {
            field,
            problem: "must not contain control characters",
        });
    }
    Ok(())
}

/// The content of one access-log entry, before chaining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// Server time, milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    /// The authenticated calling organisation's id.
    pub organisation_id: String,
    pub viewer: Viewer,
    pub incident_ref: String,
    pub person_id: PersonId,
    /// Hex serial of the certificate presented.
    pub cert_serial: String,
    pub purpose: Purpose,
    pub consent: Consent,
    pub view: View,
    /// Set when the entry records a hospital's read of the crew's copy, which the bureau
    /// reported (`HospitalRead`); then `viewer.crew_member` is the hospital staff's login and
    /// the other fields are those of the crew's access whose copy was read.
    pub hospital_read: Option<HospitalRead>,
    /// The access's id where the store mints one apart from the entry's place (PostgreSQL,
    /// whose log is one chain per person); None where the id is the entry's `seq` (SQLite),
    /// which the hash covers already. Chained when present: the id is the crew's receipt and
    /// what a hospital's read points back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_id: Option<i64>,
}

/// 引き継ぎ閲覧 (a hospital's read of the handoff copy): the destination hospital's staff read
/// what the crew's access obtained, from the bureau's ems; the bureau reports it to the
/// provider so the patient's history names the hospital too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HospitalRead {
    /// The `access_id` of the crew's access whose copy was read.
    pub source_access_id: i64,
    /// The hospital's 医療機関番号, as the bureau's registry gives it.
    pub institution_code: String,
    /// The hospital's name, as the bureau's registry gives it.
    pub hospital_name: String,
    /// When the staff read it: the bureau's server time, milliseconds since the Unix epoch.
    pub read_at_ms: i64,
    /// The read's place in the bureau's own view log: one report, one entry.
    pub ems_view_seq: i64,
}

pub type Hash32 = [u8; 32];
pub const GENESIS: Hash32 = [0; 32];

/// A committed entry with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEntry<E = AccessEntry> {
    pub seq: i64,
    pub entry: E,
    pub prev_hash: Hash32,
    pub hash: Hash32,
}

/// Something a hash chain can hold: it names its log (so two logs' hashes never coincide) and
/// feeds its fields, in a fixed order, to the hasher.
pub trait Linked {
    const LOG: &'static [u8];
    fn feed(&self, field: &mut dyn FnMut(&[u8]));
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// The hash of entry `seq`, chained to `prev`. Fields are length-prefixed so no two different
/// entries encode alike.
pub fn link_hash<E: Linked>(seq: i64, entry: &E, prev: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    field(&mut h, E::LOG);
    field(&mut h, &seq.to_be_bytes());
    field(&mut h, prev);
    entry.feed(&mut |bytes| field(&mut h, bytes));
    h.finalize().into()
}

impl Linked for AccessEntry {
    const LOG: &'static [u8] = b"myna-kyukyu/access-log/v1";
    fn feed(&self, field: &mut dyn FnMut(&[u8])) {
        field(&self.at_ms.to_be_bytes());
        field(self.organisation_id.as_bytes());
        field(self.viewer.organisation.as_bytes());
        field(self.viewer.team.as_bytes());
        field(self.viewer.crew_member.as_bytes());
        field(self.incident_ref.as_bytes());
        field(&self.person_id.0.to_be_bytes());
        field(self.cert_serial.as_bytes());
        field(self.purpose.as_str().as_bytes());
        field(self.consent.kind_str().as_bytes());
        field(
            self.consent
                .reason()
                .map_or("", ExceptionReason::as_str)
                .as_bytes(),
        );
        field(self.view.as_str().as_bytes());
        // Fed only when present, so the crews' entries hash as they did before hospital reads
        // were logged; the tag keeps the two shapes apart.
        if let Some(r) = &self.hospital_read {
            field(b"hospital_read");
            field(&r.source_access_id.to_be_bytes());
            field(r.institution_code.as_bytes());
            field(r.hospital_name.as_bytes());
            field(&r.read_at_ms.to_be_bytes());
            field(&r.ems_view_seq.to_be_bytes());
        }
        // Likewise fed only when present: entries written before ids were chained verify.
        if let Some(id) = self.access_id {
            field(b"access_id");
            field(&id.to_be_bytes());
        }
    }
}

/// Chains `entry` after the entry with `prev_seq`/`prev_hash` (or after genesis).
pub fn chain<E: Linked>(prev: Option<(i64, Hash32)>, entry: E) -> ChainedEntry<E> {
    let (seq, prev_hash) = match prev {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS),
    };
    let hash = link_hash(seq, &entry, &prev_hash);
    ChainedEntry {
        seq,
        entry,
        prev_hash,
        hash,
    }
}

/// The first link that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq}: expected sequence number {expected} (an entry is missing or reordered)")]
    Sequence { seq: i64, expected: i64 },
    #[error("entry {seq}: previous-hash field does not match entry {}'s hash (an entry was removed or replaced)", seq - 1)]
    PrevHash { seq: i64 },
    #[error("entry {seq}: content does not match its hash (the entry was altered)")]
    Content { seq: i64 },
    #[error("entry {seq}: stored data is unreadable: {problem}")]
    Unreadable { seq: i64, problem: String },
    #[error("entry {seq}, recorded earlier as a head, is gone (the newest entries were removed)")]
    Truncated { seq: i64 },
    #[error("entry {seq} differs from the head recorded earlier (the log was rewritten)")]
    Rewritten { seq: i64 },
}

impl ChainBreak {
    pub fn seq(&self) -> i64 {
        match self {
            ChainBreak::Sequence { seq, .. }
            | ChainBreak::PrevHash { seq }
            | ChainBreak::Content { seq }
            | ChainBreak::Unreadable { seq, .. }
            | ChainBreak::Truncated { seq }
            | ChainBreak::Rewritten { seq } => *seq,
        }
    }
}

/// A head `(seq, hash)` recorded earlier, outside the database. A chain that verifies and still
/// holds this entry with this hash is unchanged up to it; without such a record, removing the
/// newest entries would leave a shorter chain that verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Hash32,
}

impl Checkpoint {
    /// Parses `SEQ:HEX`, the form `audit verify` prints.
    pub fn parse(s: &str) -> Option<Self> {
        let (seq, hash) = s.trim().split_once(':')?;
        let bytes = hex::decode(hash).ok()?;
        Some(Checkpoint {
            seq: seq.parse().ok().filter(|n: &i64| *n > 0)?,
            hash: bytes.try_into().ok()?,
        })
    }

    /// Checks the hash the verified chain holds at `self.seq` (None if it has no such entry).
    pub fn check(&self, found: Option<Hash32>) -> Result<(), ChainBreak> {
        match found {
            None => Err(ChainBreak::Truncated { seq: self.seq }),
            Some(h) if h != self.hash => Err(ChainBreak::Rewritten { seq: self.seq }),
            Some(_) => Ok(()),
        }
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(self.hash))
    }
}

/// One chain's head (its last place and hash), as a checkpoint of a log of several chains
/// records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionHead {
    pub partition: i64,
    pub seq: i64,
    pub hash: Hash32,
}

/// The digest a checkpoint of a log of several chains signs: the previous checkpoint's digest,
/// then the heads that moved since, in partition order. Chained, so a checkpoint dropped from
/// the middle of the record (or a moved head edited) breaks every digest after it.
pub fn heads_digest(previous: &Hash32, moved: &[PartitionHead]) -> Hash32 {
    digest_of_heads(b"myna-kyukyu/chain-heads/v2", previous, moved)
}

/// The digest a base checkpoint signs (`v3`): every chain's head, in partition order, chained
/// to nothing. The record of the checkpoints before it is then no longer needed to replay the
/// heads, which is what lets `LOG.heads` be compacted.
pub fn heads_base_digest(all: &[PartitionHead]) -> Hash32 {
    digest_of_heads(b"myna-kyukyu/chain-heads/base/v3", &[0; 32], all)
}

fn digest_of_heads(tag: &[u8], previous: &Hash32, heads: &[PartitionHead]) -> Hash32 {
    let mut h = Sha256::new();
    field(&mut h, tag);
    field(&mut h, previous);
    field(&mut h, &(heads.len() as u64).to_be_bytes());
    for m in heads {
        field(&mut h, &m.partition.to_be_bytes());
        field(&mut h, &m.seq.to_be_bytes());
        field(&mut h, &m.hash);
    }
    h.finalize().into()
}

/// The heads of every chain of a partitioned log as its checkpoints recorded them, rebuilt by
/// applying each checkpoint's moved heads in order; a log's entries are the sum of its heads'
/// places, since every chain starts at 1.
#[derive(Debug, Default, Clone)]
pub struct RecordedHeads {
    heads: std::collections::BTreeMap<i64, (i64, Hash32)>,
    digest: Hash32,
    entries: i64,
}

/// What the store must still show for the recorded heads to hold, and what moved since.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeadsDelta {
    /// Heads that are new or further on than recorded, in partition order: the next
    /// checkpoint's record.
    pub moved: Vec<PartitionHead>,
    /// Recorded heads whose chain has grown: the store must still hold each at its place,
    /// with its hash (a head still in place was compared whole already).
    pub to_check: Vec<PartitionHead>,
}

impl RecordedHeads {
    /// The heads a base checkpoint records: every chain's, in partition order, with the digest
    /// and entry count it signed. Refused if out of order, or if the digest or count differs.
    pub fn base(all: &[PartitionHead], digest: &Hash32, entries: i64) -> Result<Self, String> {
        if heads_base_digest(all) != *digest {
            return Err("the recorded heads do not match the signed base digest".into());
        }
        let mut recorded = RecordedHeads::default();
        recorded.add(all, entries)?;
        recorded.digest = *digest;
        Ok(recorded)
    }

    /// Applies the next checkpoint: its moved heads, the digest it signed and the entries it
    /// counted. Refused if the heads are out of order or go back, or the digest or count
    /// differs: the record was edited, or a checkpoint removed.
    pub fn apply(
        &mut self,
        moved: &[PartitionHead],
        digest: &Hash32,
        entries: i64,
    ) -> Result<(), String> {
        if heads_digest(&self.digest, moved) != *digest {
            return Err("the recorded heads do not match the signed digest".into());
        }
        self.add(moved, entries)?;
        self.digest = *digest;
        Ok(())
    }

    /// Moves the recorded heads on to `moved` (in partition order, each beyond its earlier
    /// head), which must bring the count to `entries`. Nothing changes if refused.
    fn add(&mut self, moved: &[PartitionHead], entries: i64) -> Result<(), String> {
        let mut last = None;
        let mut counted = self.entries;
        for m in moved {
            if last.is_some_and(|p| m.partition <= p) {
                return Err(format!("chain {} recorded out of order", m.partition));
            }
            last = Some(m.partition);
            let before = self.heads.get(&m.partition).map_or(0, |(s, _)| *s);
            if m.seq < 1 || m.seq <= before {
                return Err(format!(
                    "chain {} recorded at entry {}, not beyond its earlier head",
                    m.partition, m.seq
                ));
            }
            counted = counted.saturating_add(m.seq - before);
        }
        if counted != entries {
            return Err(format!(
                "the recorded heads add up to {counted} entries, the checkpoint says {entries}"
            ));
        }
        for m in moved {
            self.heads.insert(m.partition, (m.seq, m.hash));
        }
        self.entries = entries;
        Ok(())
    }

    /// Each recorded chain's place, for the walk to report the hash found there.
    pub fn places(&self) -> std::collections::BTreeMap<i64, i64> {
        self.heads.iter().map(|(p, (seq, _))| (*p, *seq)).collect()
    }

    /// Compares the recorded heads with the store's heads now (any order). A chain that is
    /// gone or shorter, or whose head at the recorded place has another hash, is an error
    /// naming the chain (partition).
    pub fn delta(&self, now: &[PartitionHead]) -> Result<HeadsDelta, (i64, ChainBreak)> {
        let now: std::collections::BTreeMap<i64, (i64, Hash32)> =
            now.iter().map(|h| (h.partition, (h.seq, h.hash))).collect();
        let mut delta = HeadsDelta::default();
        for (partition, (seq, hash)) in &self.heads {
            match now.get(partition) {
                None => return Err((*partition, ChainBreak::Truncated { seq: *seq })),
                Some((s, _)) if s < seq => {
                    return Err((*partition, ChainBreak::Truncated { seq: *seq }));
                }
                Some((s, h)) if s == seq && h != hash => {
                    return Err((*partition, ChainBreak::Rewritten { seq: *seq }));
                }
                Some((s, _)) if s == seq => {}
                Some(_) => delta.to_check.push(PartitionHead {
                    partition: *partition,
                    seq: *seq,
                    hash: *hash,
                }),
            }
        }
        for (partition, (seq, hash)) in now {
            if self.heads.get(&partition).is_none_or(|(s, _)| seq > *s) {
                delta.moved.push(PartitionHead {
                    partition,
                    seq,
                    hash,
                });
            }
        }
        Ok(delta)
    }

    pub fn digest(&self) -> Hash32 {
        self.digest
    }

    pub fn entries(&self) -> i64 {
        self.entries
    }

    /// Chains recorded.
    pub fn chains(&self) -> usize {
        self.heads.len()
    }

    /// The recorded head of `partition`, if any.
    pub fn head(&self, partition: i64) -> Option<(i64, Hash32)> {
        self.heads.get(&partition).copied()
    }
}

/// Incremental verifier: feed entries in sequence order.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    last: Option<(i64, Hash32)>,
    count: u64,
}

impl ChainVerifier {
    pub fn push<E: Linked>(&mut self, e: &ChainedEntry<E>) -> Result<(), ChainBreak> {
        let (expected_seq, expected_prev) = match self.last {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS),
        };
        if e.seq != expected_seq {
            return Err(ChainBreak::Sequence {
                seq: e.seq,
                expected: expected_seq,
            });
        }
        if e.prev_hash != expected_prev {
            return Err(ChainBreak::PrevHash { seq: e.seq });
        }
        if link_hash(e.seq, &e.entry, &e.prev_hash) != e.hash {
            return Err(ChainBreak::Content { seq: e.seq });
        }
        self.last = Some((e.seq, e.hash));
        self.count += 1;
        Ok(())
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn head(&self) -> Option<(i64, Hash32)> {
        self.last
    }
}

/// Incremental verifier of a log kept as several chains (one per partition, each from seq 1):
/// feed entries in (partition, seq) order, calling `begins` with each entry's partition before
/// `push`. Each chain is checked as `ChainVerifier` checks one; partitions must come in
/// increasing order, so no chain can be walked twice.
#[derive(Debug, Default)]
pub struct PartitionedVerifier {
    current: Option<(i64, ChainVerifier)>,
    entries: u64,
    partitions: u64,
    /// Kept for a checkpoint of the heads: each finished chain's head, and the hash at the
    /// place asked for in each watched chain.
    keep_heads: bool,
    heads: Vec<PartitionHead>,
    watch: std::collections::BTreeMap<i64, i64>,
    found: std::collections::BTreeMap<i64, Hash32>,
}

/// A chain the walk has finished: its partition and its head (last seq, hash).
pub type ChainHead = (i64, (i64, Hash32));

impl PartitionedVerifier {
    /// A verifier that also keeps every chain's head, and the hash at `watch[partition]` of
    /// each chain named there: what a checkpoint of the heads needs, from the walk itself.
    pub fn keeping_heads(watch: std::collections::BTreeMap<i64, i64>) -> Self {
        PartitionedVerifier {
            keep_heads: true,
            watch,
            ..Default::default()
        }
    }

    /// The heads of every chain walked, in the order walked, and the hashes found at the
    /// watched places, once every entry was fed.
    pub fn into_heads(mut self) -> (Vec<PartitionHead>, std::collections::BTreeMap<i64, Hash32>) {
        if let Some((p, (seq, hash))) = self.last() {
            self.heads.push(PartitionHead {
                partition: p,
                seq,
                hash,
            });
        }
        (self.heads, self.found)
    }

    /// The next entry is of `partition`: if that starts a new chain, the one before ends here
    /// and is returned (to be checked against a head kept elsewhere, before the new entry
    /// counts). `seq` is the entry's, for the message if the partition comes out of order.
    pub fn begins(&mut self, partition: i64, seq: i64) -> Result<Option<ChainHead>, ChainBreak> {
        match &self.current {
            Some((p, _)) if *p == partition => return Ok(None),
            Some((p, _)) if *p > partition => {
                return Err(ChainBreak::Unreadable {
                    seq,
                    problem: format!("partition {partition} comes after partition {p}"),
                });
            }
            _ => {}
        }
        let ended = self
            .current
            .take()
            .and_then(|(p, v)| v.head().map(|h| (p, h)));
        if self.keep_heads
            && let Some((p, (seq, hash))) = ended
        {
            self.heads.push(PartitionHead {
                partition: p,
                seq,
                hash,
            });
        }
        self.partitions += 1;
        self.current = Some((partition, ChainVerifier::default()));
        Ok(ended)
    }

    /// Checks `e` (or the reason it could not be read) as the next entry of the partition
    /// `begins` named.
    pub fn push<E: Linked>(
        &mut self,
        e: Result<&ChainedEntry<E>, ChainBreak>,
    ) -> Result<(), ChainBreak> {
        let e = e?;
        match &mut self.current {
            Some((p, v)) => {
                v.push(e)?;
                if self.watch.get(p) == Some(&e.seq) {
                    self.found.insert(*p, e.hash);
                }
            }
            None => {
                return Err(ChainBreak::Unreadable {
                    seq: e.seq,
                    problem: "an entry of no partition".into(),
                });
            }
        }
        self.entries += 1;
        Ok(())
    }

    /// The last chain's head, once every entry was fed.
    pub fn last(&self) -> Option<ChainHead> {
        self.current
            .as_ref()
            .and_then(|(p, v)| v.head().map(|h| (*p, h)))
    }

    /// Entries verified so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Chains (partitions with at least one entry) seen so far.
    pub fn partitions(&self) -> u64 {
        self.partitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(partition: i64, seq: i64, byte: u8) -> PartitionHead {
        PartitionHead {
            partition,
            seq,
            hash: [byte; 32],
        }
    }

    #[test]
    fn recorded_heads_replay_only_as_signed() {
        let first = [head(1, 3, 1), head(7, 1, 2)];
        let d1 = heads_digest(&[0; 32], &first);
        let mut r = RecordedHeads::default();
        r.apply(&first, &d1, 4).unwrap();
        let second = [head(7, 5, 3), head(9, 2, 4)];
        let d2 = heads_digest(&d1, &second);
        // A count, a digest, an order or a place that does not add up is refused.
        assert!(r.clone().apply(&second, &d2, 9).is_err());
        assert!(r.clone().apply(&second, &d1, 10).is_err());
        assert!(
            r.clone()
                .apply(&[head(9, 2, 4), head(7, 5, 3)], &d2, 10)
                .is_err()
        );
        let back = [head(1, 3, 9)];
        assert!(
            r.clone()
                .apply(&back, &heads_digest(&d1, &back), 4)
                .is_err()
        );
        // The second checkpoint replayed without the first does not match its digest.
        assert!(RecordedHeads::default().apply(&second, &d2, 7).is_err());
        r.apply(&second, &d2, 10).unwrap();
        assert_eq!((r.entries(), r.chains(), r.digest()), (10, 3, d2));
        assert_eq!(r.head(7), Some((5, [3; 32])));
    }

    #[test]
    fn a_base_records_every_head_alone_and_later_checkpoints_chain_from_it() {
        let all = [head(1, 3, 1), head(7, 5, 3), head(9, 2, 4)];
        let base = heads_base_digest(&all);
        assert_ne!(
            base,
            heads_digest(&[0; 32], &all),
            "a base is not a first v2 checkpoint"
        );
        let mut r = RecordedHeads::base(&all, &base, 10).unwrap();
        assert_eq!((r.entries(), r.chains(), r.digest()), (10, 3, base));
        // A head left out, a count, or an order that does not add up is refused.
        assert!(RecordedHeads::base(&all[..2], &base, 8).is_err());
        assert!(RecordedHeads::base(&all, &base, 11).is_err());
        assert!(RecordedHeads::base(&[all[1], all[0], all[2]], &base, 10).is_err());
        let next = [head(9, 4, 5)];
        let d = heads_digest(&base, &next);
        r.apply(&next, &d, 12).unwrap();
        assert_eq!(r.head(9), Some((4, [5; 32])));
    }

    #[test]
    fn the_delta_names_what_moved_and_what_the_store_must_still_hold() {
        let mut r = RecordedHeads::default();
        let first = [head(1, 3, 1), head(7, 1, 2)];
        r.apply(&first, &heads_digest(&[0; 32], &first), 4).unwrap();
        let delta = r
            .delta(&[head(7, 1, 2), head(1, 5, 5), head(2, 1, 6)])
            .unwrap();
        assert_eq!(delta.moved, vec![head(1, 5, 5), head(2, 1, 6)]);
        assert_eq!(delta.to_check, vec![head(1, 3, 1)]);
        assert_eq!(
            r.delta(&[head(1, 3, 1)]),
            Err((7, ChainBreak::Truncated { seq: 1 })),
            "a chain gone"
        );
        assert_eq!(
            r.delta(&[head(1, 2, 1), head(7, 1, 2)]),
            Err((1, ChainBreak::Truncated { seq: 3 })),
            "a chain cut short"
        );
        assert_eq!(
            r.delta(&[head(1, 3, 8), head(7, 1, 2)]),
            Err((1, ChainBreak::Rewritten { seq: 3 })),
            "a head rewritten in place"
        );
        assert_eq!(r.delta(&first).unwrap(), HeadsDelta::default());
    }

    fn entry(i: i64) -> AccessEntry {
        AccessEntry {
            at_ms: 1_700_000_000_000 + i,
            organisation_id: "kawasaki".into(),
            viewer: Viewer {
                organisation: "川崎市消防局".into(),
                team: "中原1".into(),
                crew_member: "crew-7".into(),
            },
            incident_ref: format!("INC-{i}"),
            person_id: PersonId(i),
            cert_serial: "012D57CA".into(),
            purpose: Purpose::EmergencyCare,
            consent: if i % 2 == 0 {
                Consent::Obtained
            } else {
                Consent::Exception {
                    reason: ExceptionReason::Unconscious,
                }
            },
            view: View::Summary,
            hospital_read: None,
            access_id: None,
        }
    }

    #[test]
    fn a_crews_entry_hashes_as_before_hospital_reads_were_logged() {
        // Pinned from the code before `hospital_read` existed: committed logs still verify.
        assert_eq!(
            hex::encode(chain(None, entry(1)).hash),
            "c6209ab51006c2c98fc5495eb0f3b2afb906a88e7924cffa8bebb3127e2a6ca9"
        );
    }

    #[test]
    fn an_access_id_is_in_the_hash_and_no_id_hashes_as_before() {
        let with = |id| AccessEntry {
            access_id: Some(id),
            ..entry(1)
        };
        let bare = link_hash(1, &entry(1), &GENESIS);
        let one = link_hash(1, &with(7), &GENESIS);
        assert_ne!(one, bare);
        assert_ne!(one, link_hash(1, &with(8), &GENESIS));
        // The tag keeps an id apart from a hospital read's fields at the same place.
        let read = AccessEntry {
            hospital_read: Some(HospitalRead {
                source_access_id: 7,
                institution_code: String::new(),
                hospital_name: String::new(),
                read_at_ms: 0,
                ems_view_seq: 0,
            }),
            ..entry(1)
        };
        assert_ne!(one, link_hash(1, &read, &GENESIS));
    }

    #[test]
    fn every_field_of_a_hospital_read_is_in_the_hash() {
        let read = HospitalRead {
            source_access_id: 7,
            institution_code: "1410000001".into(),
            hospital_name: "川崎市立川崎病院".into(),
            read_at_ms: 1_700_000_100_000,
            ems_view_seq: 3,
        };
        let with = |r: HospitalRead| AccessEntry {
            hospital_read: Some(r),
            ..entry(1)
        };
        let base = link_hash(1, &with(read.clone()), &GENESIS);
        assert_ne!(base, link_hash(1, &entry(1), &GENESIS));
        let variants = [
            HospitalRead {
                source_access_id: 8,
                ..read.clone()
            },
            HospitalRead {
                institution_code: "1410000002".into(),
                ..read.clone()
            },
            HospitalRead {
                hospital_name: "他の病院".into(),
                ..read.clone()
            },
            HospitalRead {
                read_at_ms: read.read_at_ms + 1,
                ..read.clone()
            },
            HospitalRead {
                ems_view_seq: 4,
                ..read.clone()
            },
        ];
        for v in variants {
            assert_ne!(link_hash(1, &with(v.clone()), &GENESIS), base, "{v:?}");
        }
    }

    fn build(n: i64) -> Vec<ChainedEntry> {
        let mut out: Vec<ChainedEntry> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash));
            out.push(chain(prev, entry(i)));
        }
        out
    }

    fn verify(entries: &[ChainedEntry]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::default();
        for e in entries {
            v.push(e)?;
        }
        Ok(v.count())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&build(10)), Ok(10));
    }

    #[test]
    fn partitioned_chains_verify_each_on_its_own_and_report_their_heads() {
        let (a, b) = (build(3), build(2));
        let feed = |v: &mut PartitionedVerifier, p: i64, e: &ChainedEntry| {
            let ended = v.begins(p, e.seq)?;
            v.push(Ok(e))?;
            Ok::<_, ChainBreak>(ended)
        };
        let mut v = PartitionedVerifier::default();
        let mut ended = Vec::new();
        for (p, chain) in [(7, &a), (9, &b)] {
            for e in chain.iter() {
                ended.extend(feed(&mut v, p, e).unwrap());
            }
        }
        assert_eq!(ended, vec![(7, (3, a[2].hash))]);
        assert_eq!(v.last(), Some((9, (2, b[1].hash))));
        assert_eq!((v.entries(), v.partitions()), (5, 2));

        // A partition that comes back after another began is refused, even from seq 1.
        let mut v = PartitionedVerifier::default();
        feed(&mut v, 7, &a[0]).unwrap();
        feed(&mut v, 9, &b[0]).unwrap();
        assert!(matches!(
            feed(&mut v, 7, &a[0]),
            Err(ChainBreak::Unreadable { seq: 1, .. })
        ));
        assert_eq!(v.entries(), 2, "the refused entry is not counted");
        // A gap inside one partition, and an unreadable entry, are breaks too.
        let mut v = PartitionedVerifier::default();
        feed(&mut v, 7, &a[0]).unwrap();
        assert!(feed(&mut v, 7, &a[2]).is_err());
        let unreadable = ChainBreak::Unreadable {
            seq: 1,
            problem: "x".into(),
        };
        let mut v = PartitionedVerifier::default();
        v.begins(1, 1).unwrap();
        assert_eq!(
            v.push::<AccessEntry>(Err(unreadable.clone())),
            Err(unreadable)
        );
    }

    #[test]
    fn altered_content_is_found_at_its_entry() {
        let mut c = build(10);
        c[4].entry.viewer.team = "麻生1".into();
        assert_eq!(verify(&c), Err(ChainBreak::Content { seq: 5 }));
    }

    #[test]
    fn deleted_entry_is_found() {
        let mut c = build(10);
        c.remove(6);
        assert_eq!(
            verify(&c),
            Err(ChainBreak::Sequence {
                seq: 8,
                expected: 7
            })
        );
    }

    #[test]
    fn rehashed_forgery_breaks_the_next_link() {
        let mut c = build(10);
        // Entry 4 was an exception view; a forger relabels it as consented and rehashes it.
        assert_ne!(c[3].entry.consent, Consent::Obtained);
        c[3].entry.consent = Consent::Obtained;
        c[3].hash = link_hash(c[3].seq, &c[3].entry, &c[3].prev_hash);
        assert_eq!(verify(&c), Err(ChainBreak::PrevHash { seq: 5 }));
    }

    #[test]
    fn checkpoints_catch_truncation_and_rewrites() {
        let c = build(5);
        let cp = Checkpoint {
            seq: 5,
            hash: c[4].hash,
        };
        assert_eq!(Checkpoint::parse(&cp.to_string()), Some(cp));
        assert_eq!(Checkpoint::parse("0:00"), None);
        assert_eq!(Checkpoint::parse("5:zz"), None);
        assert_eq!(cp.check(Some(c[4].hash)), Ok(()));
        assert_eq!(cp.check(None), Err(ChainBreak::Truncated { seq: 5 }));
        assert_eq!(
            cp.check(Some(c[3].hash)),
            Err(ChainBreak::Rewritten { seq: 5 })
        );
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(check_identifier("team", "中原1").is_ok());
        assert!(check_identifier("team", " ").is_err());
        assert!(check_identifier("team", &"x".repeat(65)).is_err());
        assert!(check_identifier("team", "a\nb").is_err());
    }
}
