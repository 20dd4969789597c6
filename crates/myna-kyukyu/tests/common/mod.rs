//! Helpers the CLI test binaries share.

use std::process::Output;

/// The command failed, and its error names `needle`.
pub fn refused_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(err.contains(needle), "{err}");
}
