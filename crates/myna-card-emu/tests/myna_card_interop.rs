#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The host library the terminal will use, `myna-card`, reading the emulated card in process.

use myna_card::ap::jpki::{JpkiAp, SignatureScheme};
use myna_card::pin::Pin;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use sha2::{Digest, Sha256};

mod common;

#[test]
fn myna_card_reads_the_certificate_checks_retries_and_signs() {
    let t = common::test_card("01C0FFEE0002");
    let mut emu = t.card().unwrap();
    let (auth_cert, keys) = (t.auth_cert, t.keys);
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
