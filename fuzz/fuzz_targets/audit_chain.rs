//! The audit-chain verifier on arbitrary chains: a chain built by `chain` from the input's
//! entries always verifies; the same chain with one byte of one link changed never does; and
//! nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_domain::access::{ChainVerifier, ChainedEntry, Linked, chain};

/// An entry whose fields are the fuzzer's bytes.
#[derive(Clone)]
struct Blob(Vec<Vec<u8>>);

impl Linked for Blob {
    const LOG: &'static [u8] = b"myna-kyukyu/fuzz/v1";
    fn feed(&self, field: &mut dyn FnMut(&[u8])) {
        for f in &self.0 {
            field(f);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&edit, rest)) = data.split_first() else {
        return;
    };
    // Entries separated by 0xff, fields by 0xfe.
    let entries: Vec<Blob> = rest
        .split(|b| *b == 0xff)
        .take(64)
        .map(|e| Blob(e.split(|b| *b == 0xfe).map(<[u8]>::to_vec).collect()))
        .collect();
    let mut links: Vec<ChainedEntry<Blob>> = Vec::new();
    for e in entries {
        let prev = links.last().map(|l| (l.seq, l.hash));
        links.push(chain(prev, e));
    }
    let mut v = ChainVerifier::default();
    for l in &links {
        assert!(v.push(l).is_ok(), "a chain built by chain() failed to verify");
    }
    if links.is_empty() {
        return;
    }
    // Change one thing of one link: its sequence, a hash byte, or a field byte.
    let n = usize::from(edit) % links.len();
    let link = &mut links[n];
    match edit % 4 {
        0 => link.seq = link.seq.wrapping_add(1 + i64::from(edit)),
        1 => link.hash[usize::from(edit) % 32] ^= 1 | edit,
        2 => link.prev_hash[usize::from(edit) % 32] ^= 1 | edit,
        _ => match link.entry.0.iter_mut().find(|f| !f.is_empty()) {
            Some(f) => f[0] ^= 1 | edit,
            None => return,
        },
    }
    let mut v = ChainVerifier::default();
    let broken = links.iter().any(|l| v.push(l).is_err());
    assert!(broken, "a changed link went unnoticed");
});
