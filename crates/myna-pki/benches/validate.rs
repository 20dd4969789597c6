//! Time to validate one card's authentication certificate against the trust anchor, as the
//! provider does on every summary request: `cargo bench -p myna-pki --bench validate`.

use myna_pki::{KeyPool, TestCa, TrustAnchor};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = chrono::Utc::now();
    let ca = TestCa::generate(now)?;
    let holder = KeyPool::generate(1)?.key(0).to_public_key();
    let der = ca.issue_auth_cert(
        "01AB",
        &holder,
        now - chrono::Days::new(1),
        now + chrono::Days::new(30),
    )?;
    let anchor = TrustAnchor::from_der(ca.cert_der())?;
    for _ in 0..1_000 {
        anchor.validate_auth_cert(&der, now)?;
    }
    let runs = 20_000;
    let started = Instant::now();
    for _ in 0..runs {
        anchor.validate_auth_cert(&der, now)?;
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
    println!("validate_auth_cert: {micros:.2} µs per certificate ({runs} runs)");
    Ok(())
}
