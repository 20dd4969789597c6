//! A checkpoint log line, as `audit verify` reads one from a file anybody could have edited:
//! parsing never panics, and a parsed line prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_pki::checkpoint::SignedCheckpoint;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cp) = SignedCheckpoint::parse_line(line) {
        let again = SignedCheckpoint::parse_line(&cp.to_line());
        assert_eq!(again.as_ref(), Ok(&cp));
        // A signature check with any 32 bytes as the key answers, never panics.
        let _ = cp.verify(&[7u8; 32]);
    }
});
