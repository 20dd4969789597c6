#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shipped master, built from the full file and the deltas, over every row.

use chrono::NaiveDate;
use myna_domain::codes::{YjCode, yj_check_digit};
use myna_domain::drugs::Catalogue;
use myna_drug_master::{DosageForm, Master};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[test]
fn every_row_of_the_full_file_and_every_delta_parses_and_every_yj_code_has_its_check_digit() {
    // Parsing already refuses a YJ code with a wrong check digit; this counts what was read.
    let master = Master::shipped().unwrap();
    let codes = master.yj_codes();
    assert!(
        codes.len() > 12_900,
        "only {} distinct YJ codes",
        codes.len()
    );
    assert!(master.products().count() > 19_000);
    assert_eq!(master.as_of, Some(d("2025-08-13")));
    for yj in &codes {
        let b = yj.as_str().as_bytes();
        assert_eq!(
            yj_check_digit(&b[..11]),
            Some(b[11] - b'0'),
            "{}",
            yj.as_str()
        );
        // Any other last digit is refused.
        for wrong in (b'0'..=b'9').filter(|c| *c != b[11]) {
            let mut s = yj.as_str().to_owned();
            s.pop();
            s.push(char::from(wrong));
            assert!(YjCode::parse(&s).is_err(), "{s} accepted");
        }
    }
}

#[test]
fn deltas_apply_in_date_order_adding_changing_and_abolishing() {
    let before = Master::shipped_as_of(d("2024-03-31")).unwrap();
    let after = Master::shipped().unwrap();
    assert_eq!(before.as_of, Some(d("2024-03-21")));
    assert!(
        after.products().count() > before.products().count(),
        "products were added"
    );
    // y_20240925 abolishes 657 products: they stay (old claims carry them), with the date.
    let abolished = after
        .products()
        .filter(|p| p.abolished_on.is_some_and(|a| a <= d("2025-08-13")))
        .count();
    assert!(abolished >= 657, "{abolished} abolished");
    let at_start = before
        .products()
        .filter(|p| p.abolished_on.is_some_and(|a| a <= d("2024-03-21")))
        .count();
    assert!(abolished > at_start);
    // A product added by a delta is absent before it.
    let added = after
        .products()
        .find(|p| before.by_receipt(p.receipt.as_str()).is_none())
        .expect("a product added after 2024-03-21");
    assert!(
        added.changed_on.is_some_and(|c| c > d("2024-03-21")),
        "{added:?}"
    );
}

#[test]
fn the_hand_checked_catalogue_agrees_with_the_master() {
    let master = Master::shipped().unwrap();
    let catalogue = Catalogue::builtin().unwrap();
    let mut checked = 0;
    let mut shared = 0;
    for drug in catalogue.drugs() {
        let Some(code) = &drug.receipt_code else {
            continue;
        };
        let product = master.by_receipt(code.as_str()).unwrap_or_else(|| {
            panic!("{} {} not in the master", code.as_str(), drug.brand_name_ja)
        });
        // For products under a 統一名 the master's column holds the shared code, which differs
        // from the product's own YJ code only after the ingredient and dosage-form letter.
        assert_eq!(
            &product.yj.as_str()[..8],
            &drug.yj_code.as_str()[..8],
            "{}",
            drug.brand_name_ja
        );
        if product.yj.as_str() != drug.yj_code.as_str() {
            shared += 1;
        }
        let form = match drug.yj_code.route() {
            myna_domain::codes::Route::Oral => DosageForm::Oral,
            myna_domain::codes::Route::Injection => DosageForm::Injection,
            myna_domain::codes::Route::External => DosageForm::External,
        };
        assert_eq!(product.form, form, "{}", drug.brand_name_ja);
        checked += 1;
    }
    assert!(
        checked > 150,
        "only {checked} catalogue rows carry a レセ電 code"
    );
    assert!(
        shared < checked / 4,
        "{shared} of {checked} differ beyond the form letter"
    );
}
