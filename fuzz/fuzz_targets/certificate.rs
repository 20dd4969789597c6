//! Certificate validation on arbitrary bytes: must return an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_pki::{TestCa, TrustAnchor};
use std::sync::OnceLock;

fn anchor() -> Option<&'static TrustAnchor> {
    static A: OnceLock<Option<TrustAnchor>> = OnceLock::new();
    A.get_or_init(|| {
        let ca = TestCa::generate(chrono::Utc::now()).ok()?;
        TrustAnchor::from_der(ca.cert_der()).ok()
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    if let Some(a) = anchor() {
        let _ = a.validate_auth_cert(data, chrono::Utc::now());
    }
    let _ = TrustAnchor::from_der(data);
});
