#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, Utc};
use der::Decode;
use myna_pki::{AUTH_POLICY_OID, CertError, CertShape, KeyPool, TestCa, TrustAnchor, parse_serial};
use proptest::prelude::*;
use std::sync::OnceLock;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};

struct Fixture {
    ca: TestCa,
    other_ca: TestCa,
    pool: KeyPool,
    now: DateTime<Utc>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let now = "2026-11-24T03:00:00Z".parse().unwrap();
        Fixture {
            ca: TestCa::generate(now).unwrap(),
            other_ca: TestCa::generate(now).unwrap(),
            pool: KeyPool::generate(1).unwrap(),
            now,
        }
    })
}

fn issue(ca: &TestCa, serial: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<u8> {
    let f = fixture();
    ca.issue_auth_cert(serial, &f.pool.key(0).to_public_key(), from, to)
        .unwrap()
}

fn valid_cert() -> Vec<u8> {
    let f = fixture();
    issue(
        &f.ca,
        "01A1B2C3D4E5F6",
        f.now - Duration::days(30),
        f.now + Duration::days(1800),
    )
}

fn anchor() -> TrustAnchor {
    TrustAnchor::from_der(fixture().ca.cert_der()).unwrap()
}

#[test]
fn issued_certificate_validates_and_reports_its_serial() {
    let v = anchor()
        .validate_auth_cert(&valid_cert(), fixture().now)
        .unwrap();
    assert_eq!(v.serial_hex, "01A1B2C3D4E5F6");
}

#[test]
fn certificate_is_shaped_like_jpki_user_authentication() {
    let cert = Certificate::from_der(&valid_cert()).unwrap();
    let tbs = cert.tbs_certificate();
    let issuer = tbs.issuer().to_string();
    assert!(
        issuer.contains("OU=JPKI for user authentication"),
        "{issuer}"
    );
    assert!(issuer.contains("O=JPKI-TEST"), "{issuer}");
    assert!(
        tbs.subject().to_string().starts_with("C=JP") || tbs.subject().to_string().contains("C=JP")
    );
    let (critical, ku) = tbs.get_extension::<KeyUsage>().unwrap().unwrap();
    assert!(critical);
    assert!(ku.0.contains(KeyUsages::DigitalSignature) && !ku.0.contains(KeyUsages::KeyCertSign));
    let (_, eku) = tbs.get_extension::<ExtendedKeyUsage>().unwrap().unwrap();
    assert_eq!(eku.0[0].to_string(), "1.3.6.1.5.5.7.3.2");
    let policy = tbs
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.32")
        .unwrap();
    assert!(
        policy.critical,
        "JPKI marks the certificate policy critical"
    );
    assert!(
        AUTH_POLICY_OID
            .to_string()
            .starts_with("1.2.392.200149.8.5")
    );
    assert_eq!(
        cert.signature_algorithm().oid.to_string(),
        "1.2.840.113549.1.1.11"
    );
}

#[test]
fn expired_and_not_yet_valid_are_distinct_errors() {
    let f = fixture();
    let expired = issue(
        &f.ca,
        "0102",
        f.now - Duration::days(2000),
        f.now - Duration::days(1),
    );
    assert!(matches!(
        anchor().validate_auth_cert(&expired, f.now),
        Err(CertError::Expired(_))
    ));
    let future = issue(
        &f.ca,
        "0103",
        f.now + Duration::days(1),
        f.now + Duration::days(100),
    );
    assert!(matches!(
        anchor().validate_auth_cert(&future, f.now),
        Err(CertError::NotYetValid(_))
    ));
}

#[test]
fn certificate_from_another_ca_with_the_same_name_is_untrusted() {
    let f = fixture();
    let forged = issue(
        &f.other_ca,
        "01A1B2C3D4E5F6",
        f.now - Duration::days(1),
        f.now + Duration::days(100),
    );
    assert!(matches!(
        anchor().validate_auth_cert(&forged, f.now),
        Err(CertError::Untrusted(_))
    ));
}

#[test]
fn ca_certificate_is_not_accepted_as_a_card_certificate() {
    let f = fixture();
    assert!(matches!(
        anchor().validate_auth_cert(f.ca.cert_der(), f.now),
        Err(CertError::WrongKeyUsage(_))
    ));
}

#[test]
fn near_misses_from_the_trusted_ca_are_refused() {
    let f = fixture();
    let shaped = |shape| {
        f.ca.issue_shaped(
            "0104",
            &f.pool.key(0).to_public_key(),
            f.now - Duration::days(1),
            f.now + Duration::days(10),
            shape,
        )
        .unwrap()
    };
    assert!(
        anchor()
            .validate_auth_cert(&shaped(CertShape::JpkiAuth), f.now)
            .is_ok()
    );
    assert!(matches!(
        anchor().validate_auth_cert(&shaped(CertShape::SigningLike), f.now),
        Err(CertError::WrongKeyUsage(m)) if m.contains("digitalSignature only")
    ));
    assert!(matches!(
        anchor().validate_auth_cert(&shaped(CertShape::NoPolicy), f.now),
        Err(CertError::WrongKeyUsage(m)) if m.contains("policy")
    ));
    assert!(matches!(
        anchor().validate_auth_cert(&shaped(CertShape::UnknownCriticalExtension), f.now),
        Err(CertError::Unsupported(m)) if m.contains("1.2.3.4.5.6.7")
    ));
}

#[test]
fn serials_are_normalised_or_refused() {
    for (input, expected) in [
        ("01ab00000002", "01AB00000002"),
        ("01:ab:00:00:00:02", "01AB00000002"),
        ("0x01AB00000002", "01AB00000002"),
        ("0001AB00000002", "01AB00000002"),
        ("1AB00000002", "01AB00000002"),
    ] {
        assert_eq!(parse_serial(input).unwrap(), expected, "{input}");
    }
    for bad in ["", "zz", "01 AB", "0x", &"0".repeat(50)] {
        assert!(parse_serial(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn malformed_input_is_rejected() {
    let now = fixture().now;
    for bad in [&b""[..], b"\x30\x03\x02\x01", b"not a certificate"] {
        assert!(matches!(
            anchor().validate_auth_cert(bad, now),
            Err(CertError::Malformed(_))
        ));
    }
    let mut trailing = valid_cert();
    trailing.push(0);
    assert!(matches!(
        anchor().validate_auth_cert(&trailing, now),
        Err(CertError::Malformed(_))
    ));
    let truncated = &valid_cert()[..100];
    assert!(matches!(
        anchor().validate_auth_cert(truncated, now),
        Err(CertError::Malformed(_))
    ));
}

#[test]
fn ca_round_trips_through_its_stored_parts() {
    let f = fixture();
    let restored = TestCa::from_parts(&f.ca.key_pkcs8_der().unwrap(), f.ca.cert_der()).unwrap();
    let cert = issue(
        &restored,
        "0199",
        f.now - Duration::days(1),
        f.now + Duration::days(10),
    );
    assert!(anchor().validate_auth_cert(&cert, f.now).is_ok());
    assert!(TestCa::from_parts(&f.other_ca.key_pkcs8_der().unwrap(), f.ca.cert_der()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = anchor().validate_auth_cert(&bytes, fixture().now);
    }

}

/// Every single-bit corruption of a valid certificate, in signed or unsigned parts, is refused.
#[test]
fn every_single_bit_flip_is_rejected() {
    let cert = valid_cert();
    let a = anchor();
    for i in 0..cert.len() {
        for bit in 0..8 {
            let mut c = cert.clone();
            c[i] ^= 1 << bit;
            assert!(
                a.validate_auth_cert(&c, fixture().now).is_err(),
                "flip at byte {i} bit {bit} accepted"
            );
        }
    }
}

/// The card's signature for the patient portal: its key pads a SHA-256 DigestInfo (PKCS#1
/// v1.5) and signs it raw; the certificate's key verifies it as sha256WithRSAEncryption.
#[test]
fn a_card_signature_over_a_digest_info_verifies_with_the_certificate_key_only() {
    use rsa::pkcs1v15::Pkcs1v15Sign;
    use sha2::Digest;
    let f = fixture();
    let cert = anchor().validate_auth_cert(&valid_cert(), f.now).unwrap();
    let message = b"sign-in challenge";
    let mut digest_info = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    digest_info.extend_from_slice(&sha2::Sha256::digest(message));
    let signature = f
        .pool
        .key(0)
        .sign(Pkcs1v15Sign::new_unprefixed(), &digest_info)
        .unwrap();
    assert_eq!(cert.verify_sha256_signature(message, &signature), Ok(()));
    assert!(
        cert.verify_sha256_signature(b"another challenge", &signature)
            .is_err()
    );
    let mut bent = signature.clone();
    bent[100] ^= 1;
    assert!(cert.verify_sha256_signature(message, &bent).is_err());
    // Another key's signature over the same message.
    let other = KeyPool::generate(1).unwrap();
    let foreign = other
        .key(0)
        .sign(Pkcs1v15Sign::new_unprefixed(), &digest_info)
        .unwrap();
    assert!(cert.verify_sha256_signature(message, &foreign).is_err());
}

/// One TLV of a DER certificate, for the test below: a tag and either children or bytes.
enum Tlv {
    Constructed(u8, Vec<Tlv>),
    Primitive(u8, Vec<u8>),
}

fn parse_tlvs(bytes: &[u8]) -> Vec<Tlv> {
    use der::Reader;
    let mut reader = der::SliceReader::new(bytes).unwrap();
    let mut out = Vec::new();
    while !reader.is_finished() {
        let tlv = reader.tlv_bytes().unwrap();
        let mut inner = der::SliceReader::new(tlv).unwrap();
        let header = der::Header::decode(&mut inner).unwrap();
        let content = inner.read_slice(header.length()).unwrap();
        out.push(if header.tag().is_constructed() {
            Tlv::Constructed(tlv[0], parse_tlvs(content))
        } else {
            Tlv::Primitive(tlv[0], content.to_vec())
        });
    }
    out
}

fn encode_tlv(t: &Tlv) -> Vec<u8> {
    use der::Encode;
    let (tag, content) = match t {
        Tlv::Constructed(tag, children) => (*tag, children.iter().flat_map(encode_tlv).collect()),
        Tlv::Primitive(tag, bytes) => (*tag, bytes.clone()),
    };
    let mut out = vec![tag];
    out.extend(
        der::Length::try_from(content.len())
            .unwrap()
            .to_der()
            .unwrap(),
    );
    out.extend(content);
    out
}

/// A certificate the trusted CA really signed, whose tbsCertificate writes out a DEFAULT value
/// (`critical FALSE`), which DER forbids. The decoder reads it as the DER form; the validator
/// refuses it as malformed, whatever the signature says.
#[test]
fn a_ca_signed_certificate_whose_tbs_is_not_der_is_malformed() {
    use rsa::pkcs1v15::Pkcs1v15Sign;
    use sha2::Digest;
    let f = fixture();
    let keys = KeyPool::generate(1).unwrap();
    let ca = TestCa::with_key(keys.key(0).clone(), f.now).unwrap();
    let anchor = TrustAnchor::from_der(ca.cert_der()).unwrap();
    let issued = issue(
        &ca,
        "0177",
        f.now - Duration::days(1),
        f.now + Duration::days(10),
    );
    let sign = |tbs: &[u8]| {
        let mut digest_info = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        digest_info.extend_from_slice(&sha2::Sha256::digest(tbs));
        keys.key(0)
            .sign(Pkcs1v15Sign::new_unprefixed(), &digest_info)
            .unwrap()
    };
    // The certificate over `tbs`, signed by the CA, with the issued one's algorithm.
    let certificate_over = |tbs: Tlv| {
        let [Tlv::Constructed(0x30, parts)] = &parse_tlvs(&issued)[..] else {
            panic!("not a certificate")
        };
        let tbs = encode_tlv(&tbs);
        let mut bits = vec![0];
        bits.extend(sign(&tbs));
        let mut content = tbs;
        content.extend(encode_tlv(&parts[1]));
        content.extend(encode_tlv(&Tlv::Primitive(0x03, bits)));
        encode_tlv(&Tlv::Constructed(0x30, parse_tlvs(&content)))
    };
    let tbs = || match parse_tlvs(&issued).into_iter().next() {
        Some(Tlv::Constructed(0x30, parts)) => parts.into_iter().next().unwrap(),
        _ => panic!("not a certificate"),
    };

    // Re-signing the tbsCertificate unchanged gives a certificate the validator accepts, so
    // what is refused below is refused for its encoding alone.
    let resigned = certificate_over(tbs());
    assert_eq!(resigned, issued);
    assert!(anchor.validate_auth_cert(&resigned, f.now).is_ok());

    // issuerAltName (2.5.29.18) is not critical: write its `critical FALSE` out.
    let mut written_out = tbs();
    let Tlv::Constructed(_, fields) = &mut written_out else {
        panic!("tbsCertificate is not constructed")
    };
    let Some(Tlv::Constructed(0xa3, wrapper)) = fields.last_mut() else {
        panic!("no extensions")
    };
    let [Tlv::Constructed(0x30, extensions)] = &mut wrapper[..] else {
        panic!("extensions are not one SEQUENCE")
    };
    let issuer_alt_name = [0x55, 0x1d, 0x12];
    let extension = extensions
        .iter_mut()
        .find_map(|e| match e {
            Tlv::Constructed(_, parts)
                if matches!(parts.first(), Some(Tlv::Primitive(0x06, oid)) if *oid == issuer_alt_name) =>
            {
                Some(parts)
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(extension.len(), 2, "issuerAltName is not critical");
    extension.insert(1, Tlv::Primitive(0x01, vec![0x00]));
    let not_der = certificate_over(written_out);
    assert_eq!(not_der.len(), issued.len() + 3);
    let refused_as_not_der = |cert: &[u8]| match anchor.validate_auth_cert(cert, f.now) {
        Err(CertError::Malformed(why)) => assert_eq!(why, "tbsCertificate is not DER"),
        other => panic!("{:?}", other.map(|c| c.serial_hex)),
    };
    refused_as_not_der(&not_der);

    // The subject's last RDN made two-valued, its SET OF out of DER's order: an O="AA"
    // (`30 09 …`) after the CN, whose encoding is longer and so sorts after it.
    let mut unsorted = tbs();
    let Tlv::Constructed(_, fields) = &mut unsorted else {
        panic!("tbsCertificate is not constructed")
    };
    // version, serialNumber, signature, issuer, validity, subject.
    let Tlv::Constructed(0x30, subject) = &mut fields[5] else {
        panic!("no subject")
    };
    let Some(Tlv::Constructed(0x31, last_rdn)) = subject.last_mut() else {
        panic!("no RDN")
    };
    assert_eq!(last_rdn.len(), 1);
    let organisation = parse_tlvs(b"\x30\x09\x06\x03\x55\x04\x0a\x0c\x02AA")
        .pop()
        .unwrap();
    assert!(encode_tlv(&organisation) < encode_tlv(&last_rdn[0]));
    last_rdn.push(organisation);
    refused_as_not_der(&certificate_over(unsorted));
}
