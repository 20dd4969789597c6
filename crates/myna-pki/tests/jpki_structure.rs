#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The test CA's certificates have the structure of a real JPKI test card's, field by field.
//! Ground truth: the certificates `myna-card` (a dependency of this workspace) ships as test
//! fixtures, read from a J-LIS test card (`O=JPKI-TEST`). They are read from the crate's
//! source in Cargo's registry, not copied into this repository.

use chrono::{Duration, Utc};
use der::{Decode, Encode, Tag, Tagged};
use myna_pki::{KeyPool, TestCa};
use std::path::PathBuf;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, IssuerAltName};
use x509_cert::name::Name;

fn fixture(name: &str) -> Vec<u8> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let src = cargo_home.join("registry/src");
    for index in std::fs::read_dir(&src).unwrap().flatten() {
        let mut versions: Vec<_> = std::fs::read_dir(index.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("myna-card-3."))
            .map(|e| e.path())
            .collect();
        versions.sort();
        if let Some(dir) = versions.last() {
            return std::fs::read(dir.join("tests/fixtures").join(name)).unwrap();
        }
    }
    panic!(
        "myna-card's source is not in {}: run `cargo fetch` (it is a workspace dependency)",
        src.display()
    );
}

/// The attribute types and value tags of a distinguished name, in order.
fn shape(name: &Name) -> Vec<(String, Tag)> {
    name.as_ref()
        .iter()
        .flat_map(|rdn| rdn.as_ref().iter())
        .map(|atv| (atv.oid.to_string(), atv.value.tag()))
        .collect()
}

fn extensions(c: &Certificate) -> Vec<(String, bool)> {
    c.tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .map(|e| (e.extn_id.to_string(), e.critical))
        .collect()
}

fn ext_value<'a>(c: &'a Certificate, oid: &str) -> &'a [u8] {
    c.tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
        .unwrap_or_else(|| panic!("no extension {oid}"))
        .extn_value
        .as_bytes()
}

fn ours() -> (Certificate, Certificate) {
    let now = Utc::now();
    let ca = TestCa::generate(now).unwrap();
    let keys = KeyPool::generate(1).unwrap();
    let der = ca
        .issue_auth_cert(
            "01C0FFEE0001",
            &keys.key(0).to_public_key(),
            now - Duration::days(1),
            now + Duration::days(1000),
        )
        .unwrap();
    (
        Certificate::from_der(&der).unwrap(),
        Certificate::from_der(ca.cert_der()).unwrap(),
    )
}

#[test]
fn the_auth_certificate_matches_a_real_test_cards_field_by_field() {
    let real = Certificate::from_der(&fixture("jpki-auth-cert.der")).unwrap();
    let (ours, _) = ours();
    let (r, o) = (real.tbs_certificate(), ours.tbs_certificate());

    assert_eq!(o.version(), r.version());
    assert_eq!(o.signature(), r.signature());
    assert_eq!(ours.signature_algorithm(), real.signature_algorithm());
    // Same issuer DN, byte for byte: the test CA takes the JPKI-TEST CA's name.
    assert_eq!(o.issuer().to_der().unwrap(), r.issuer().to_der().unwrap());
    assert_eq!(
        shape(o.subject()),
        shape(r.subject()),
        "C then an opaque CN"
    );
    assert_eq!(
        o.validity().not_before.to_der().unwrap()[0],
        r.validity().not_before.to_der().unwrap()[0],
        "UTCTime"
    );
    let (ro, oo) = (r.subject_public_key_info(), o.subject_public_key_info());
    assert_eq!(
        oo.algorithm, ro.algorithm,
        "rsaEncryption with NULL parameters"
    );
    assert_eq!(
        oo.subject_public_key.raw_bytes().len(),
        ro.subject_public_key.raw_bytes().len(),
        "RSA-2048 with e = 65537 encodes to the same length"
    );

    // Extensions: the same set, order and criticality; the same key usage and EKU.
    assert_eq!(extensions(&ours), extensions(&real));
    for oid in ["2.5.29.15", "2.5.29.37"] {
        assert_eq!(ext_value(&ours, oid), ext_value(&real, oid), "{oid}");
    }
    let ian = |c: &Certificate| {
        let IssuerAltName(names) = IssuerAltName::from_der(ext_value(c, "2.5.29.18")).unwrap();
        match names.as_slice() {
            [GeneralName::DirectoryName(n)] => n.to_der().unwrap(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(ian(&ours), ian(&real), "the issuer's Japanese names");
    let aki = |c: &Certificate| {
        let a = AuthorityKeyIdentifier::from_der(ext_value(c, "2.5.29.35")).unwrap();
        (
            a.key_identifier.map(|k| k.as_bytes().len()),
            a.authority_cert_issuer.map(|n| n.to_der().unwrap()),
            a.authority_cert_serial_number.is_some(),
        )
    };
    assert_eq!(aki(&ours), aki(&real), "key id, issuer DirName and serial");
}

#[test]
fn the_ca_certificate_matches_a_real_test_cards_ca_field_by_field() {
    let real = Certificate::from_der(&fixture("jpki-auth-ca-cert.der")).unwrap();
    let (_, ours) = ours();
    let (r, o) = (real.tbs_certificate(), ours.tbs_certificate());
    assert_eq!(o.subject().to_der().unwrap(), r.subject().to_der().unwrap());
    assert_eq!(o.issuer().to_der().unwrap(), r.issuer().to_der().unwrap());
    assert_eq!(extensions(&ours), extensions(&real));
    for oid in ["2.5.29.15", "2.5.29.17", "2.5.29.19", "2.5.29.31"] {
        assert_eq!(ext_value(&ours, oid), ext_value(&real, oid), "{oid}");
    }
}
