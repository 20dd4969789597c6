#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The 券面事項入力補助AP and 券面事項確認AP, read with `myna-card`'s own parsers and
//! signature checks, and their access rules (reference §2.2, §2.3, §3).

use myna_card::ap::surface::SurfaceAp;
use myna_card::ap::text::{IntegrityRecord, TextAp};
use myna_card::data::{RsaPublicKey, Sex};
use myna_card::pin::Pin;
use myna_card::{Card as Host, Error};
use myna_card_emu::card::{Card, TEXT_AID};
use myna_card_emu::profile::{card_public_key, text_ef};
use std::sync::OnceLock;

mod common;

fn fixture() -> &'static common::TestCard {
    static F: OnceLock<common::TestCard> = OnceLock::new();
    F.get_or_init(|| common::test_card("01C0FFEE0010"))
}

fn cvc_ca_key() -> RsaPublicKey {
    RsaPublicKey::parse(&card_public_key(&fixture().profile.keys.cvc_ca)).unwrap()
}

#[test]
fn the_text_ap_pin_opens_my_number_and_the_four_attributes_and_they_verify() {
    let mut emu: Card = fixture().card().unwrap();
    let mut host = Host::new(&mut emu);
    let mut text = TextAp::select(&mut host).unwrap();
    text.verify_pin(&Pin::new("5678").unwrap()).unwrap();
    let number = text.read_my_number().unwrap();
    assert_eq!(number.as_str(), "123456789018");
    let attrs = text.read_attributes().unwrap();
    assert_eq!(attrs.name, "川崎\u{3000}花子");
    assert_eq!(attrs.address, "神奈川県川崎市川崎区宮本町１番地");
    assert_eq!(attrs.birth_date.to_string(), "1980-02-17");
    assert_eq!(attrs.sex, Sex::Female);

    // The integrity record vouches for both files, under the key the CVC certifies.
    let cvc = text.read_certificate().unwrap();
    cvc.verify_with(&cvc_ca_key()).unwrap();
    let record: IntegrityRecord = text.read_integrity_record().unwrap();
    record.verify(&cvc.public_key).unwrap();
    let raw_attrs = text.read_ef(text_ef::ATTRIBUTES).unwrap();
    assert!(record.matches_attributes_file(&raw_attrs).unwrap());
    text.card().select_ef(text_ef::MY_NUMBER).unwrap();
    let physical = text.card().read_binary_physical().unwrap();
    assert_eq!(physical.len(), 17, "15-byte object and two bytes of filler");
    assert!(record.matches_my_number_file(&physical));
}

#[test]
fn code_a_opens_only_my_number_and_code_b_only_the_attributes() {
    let mut emu = fixture().card().unwrap();
    let mut host = Host::new(&mut emu);
    let mut text = TextAp::select(&mut host).unwrap();
    assert!(matches!(
        text.read_my_number(),
        Err(Error::Status(sw)) if sw.value() == 0x6982
    ));
    text.verify_code_a(&Pin::new("123456789018").unwrap())
        .unwrap();
    assert_eq!(text.read_my_number().unwrap().as_str(), "123456789018");
    assert!(matches!(
        text.read_attributes(),
        Err(Error::Status(sw)) if sw.value() == 0x6982
    ));

    let mut emu = fixture().card().unwrap();
    let mut host = Host::new(&mut emu);
    let mut text = TextAp::select(&mut host).unwrap();
    // 照合番号B uses the 和暦 birth date: 1980-02-17 is 昭和55 → 550217.
    text.verify_code_b(&Pin::new("55021720352285").unwrap())
        .unwrap();
    assert_eq!(text.read_attributes().unwrap().name, "川崎\u{3000}花子");
    assert!(matches!(
        text.read_my_number(),
        Err(Error::Status(sw)) if sw.value() == 0x6982
    ));
}

#[test]
fn a_gregorian_code_b_is_refused_and_counts_down() {
    let mut emu = fixture().card().unwrap();
    {
        let mut host = Host::new(&mut emu);
        let mut text = TextAp::select(&mut host).unwrap();
        let err = text
            .verify_code_b(&Pin::new("19800217203522").unwrap())
            .unwrap_err();
        assert!(
            matches!(err, Error::PinIncorrect { retries: Some(9) }),
            "{err:?}"
        );
    }
    assert_eq!(emu.tries_left(&TEXT_AID, text_ef::CODE_B), Some(9));
}

#[test]
fn the_surface_ap_opens_the_card_face_with_code_b_and_the_signature_verifies() {
    let mut emu = fixture().card().unwrap();
    let mut host = Host::new(&mut emu);
    let mut surface = SurfaceAp::select(&mut host).unwrap();
    let cvc = surface.read_certificate().unwrap();
    cvc.verify_with(&cvc_ca_key()).unwrap();
    surface
        .verify_code_b(&Pin::new("55021720352285").unwrap())
        .unwrap();
    let face = surface.read_card_face().unwrap();
    assert_eq!(face.birth_date.to_string(), "1980-02-17");
    assert_eq!(face.expiry.to_string(), "2035-02-17");
    assert_eq!(face.sex, Sex::Female);
    face.verify(&cvc.public_key).unwrap();
    // Code B does not open the rendered 個人番号; code A does.
    assert!(surface.read_my_number_image().is_err());
    surface
        .verify_code_a(&Pin::new("123456789018").unwrap())
        .unwrap();
    let image = surface.read_my_number_image().unwrap();
    image.verify(&cvc.public_key).unwrap();
}

#[test]
fn the_birth_date_key_opens_the_age_record() {
    let mut emu = fixture().card().unwrap();
    let mut host = Host::new(&mut emu);
    let mut surface = SurfaceAp::select(&mut host).unwrap();
    assert!(surface.read_age_record().is_err());
    surface
        .verify_birth_date(&Pin::new("550217").unwrap())
        .unwrap();
    let age = surface.read_age_record().unwrap();
    assert_eq!(age.birth_date.to_string(), "1980-02-17");
    let cvc = surface.read_certificate().unwrap();
    age.verify(&cvc.public_key).unwrap();
}

#[test]
fn selecting_another_application_clears_the_security_status() {
    let mut emu = fixture().card().unwrap();
    let mut host = Host::new(&mut emu);
    {
        let mut text = TextAp::select(&mut host).unwrap();
        text.verify_pin(&Pin::new("5678").unwrap()).unwrap();
        assert!(text.read_my_number().is_ok());
    }
    SurfaceAp::select(&mut host).unwrap();
    let mut text = TextAp::select(&mut host).unwrap();
    assert!(matches!(
        text.read_my_number(),
        Err(Error::Status(sw)) if sw.value() == 0x6982
    ));
}
