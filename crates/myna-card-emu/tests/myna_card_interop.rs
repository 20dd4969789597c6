#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The host library the terminal will use, `myna-card`, reading the emulated card in process.

use myna_card::ap::jpki::{JpkiAp, SignatureScheme};
use myna_card::pin::Pin;
use myna_card_emu::card::{Card, JpkiProfile};
use myna_pki::{KeyPool, TestCa};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[test]
fn myna_card_reads_the_certificate_checks_retries_and_signs() {
    let now = chrono::Utc::now();
    let ca = TestCa::generate(now).unwrap();
    let keys = KeyPool::generate(2).unwrap();
    let auth_cert = ca
        .issue_auth_cert(
            "01C0FFEE0002",
            &keys.key(0).to_public_key(),
            now - chrono::Duration::days(1),
            now + chrono::Duration::days(100),
        )
        .unwrap();
    let mut emu = Card::new(JpkiProfile {
        auth_cert: auth_cert.clone(),
        auth_ca: ca.cert_der().to_vec(),
        sign_cert: ca.cert_der().to_vec(),
        sign_ca: ca.cert_der().to_vec(),
        auth_key: keys.key(0).clone(),
        sign_key: keys.key(1).clone(),
        auth_pin: Zeroizing::new(b"1234".to_vec()),
        sign_password: Zeroizing::new(b"ABC123".to_vec()),
        token_label: "JPKIAPICCTOKEN2".into(),
    });
    let mut card = myna_card::card::Card::new(&mut emu);
    let mut jpki = JpkiAp::select(&mut card).unwrap();
    assert_eq!(
        jpki.read_auth_certificate_der().unwrap(),
        auth_cert,
        "byte-identical"
    );
    assert_eq!(
        format!("{:?}", jpki.auth_pin_retries().unwrap()),
        "Remaining(3)"
    );
    jpki.verify_auth_pin(&Pin::new("1234").unwrap()).unwrap();
    let message = b"OQS challenge";
    let mut digest_info = vec![
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    digest_info.extend_from_slice(&Sha256::digest(message));
    let sig = jpki
        .sign_with_auth_key(SignatureScheme::Verbatim, &digest_info)
        .unwrap();
    let sig = Signature::try_from(sig.as_slice()).unwrap();
    VerifyingKey::<Sha256>::new(keys.key(0).to_public_key())
        .verify(message, &sig)
        .unwrap();
}
