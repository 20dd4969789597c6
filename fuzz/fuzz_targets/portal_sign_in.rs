//! The patient portal's sign-in on arbitrary bytes: the request body, the challenge check and
//! the card-signature check must refuse, never panic, and no made-up signature may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use myna_domain::portal::signed_message;
use myna_pki::{KeyPool, TestCa, TrustAnchor, ValidatedAuthCert};
use myna_provider::portal::Challenges;
use myna_wire::provider::AccessHistoryRequest;
use std::sync::OnceLock;

struct Fixture {
    challenges: Challenges,
    card: ValidatedAuthCert,
}

fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let now = chrono::Utc::now();
        let ca = TestCa::generate(now).ok()?;
        let keys = KeyPool::generate(1).ok()?;
        let der = ca
            .issue_auth_cert(
                "01AF00000001",
                &keys.key(0).to_public_key(),
                now - chrono::Duration::days(1),
                now + chrono::Duration::days(30),
            )
            .ok()?;
        let card = TrustAnchor::from_der(ca.cert_der())
            .ok()?
            .validate_auth_cert(&der, now)
            .ok()?;
        Some(Fixture {
            challenges: Challenges::new(),
            card,
        })
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<AccessHistoryRequest>(data);
    if let Some(f) = fixture() {
        assert!(f.challenges.check(data, 0).is_err(), "a made-up challenge passed");
        assert!(
            f.card
                .verify_sha256_signature(&signed_message(data), data)
                .is_err(),
            "a made-up signature verified"
        );
    }
});
