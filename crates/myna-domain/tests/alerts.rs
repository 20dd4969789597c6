#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Pins every alert class to real catalogue drugs, including the documented caveats.

use myna_domain::alerts::AlertTable;
use myna_domain::codes::YjCode;
use myna_domain::drugs::Catalogue;

fn classes_of(table: &AlertTable, yj: &str) -> Vec<String> {
    let code = YjCode::parse(yj).unwrap();
    table
        .classify(&code)
        .into_iter()
        .map(|c| c.id.clone())
        .collect()
}

/// (class, drugs that must match, drugs that must not)
const PINS: &[(&str, &[&str], &[&str])] = &[
    ("vka", &["3332001F1083", "3332001D1023"], &["3339004F1029"]),
    (
        "doac",
        &[
            "3339004F1029",
            "3339003F1024",
            "3339002F2026",
            "3339001M1024",
        ],
        &["3332001F1083"],
    ),
    ("heparin", &["3334400A8024"], &[]),
    (
        "antiplatelet",
        &[
            "3399007H1021",
            "3399008F1025",
            "3399009F1020",
            "3399002F4027",
            "3399011F1027",
        ],
        // 3399 also holds icosapent ethyl, beraprost and sarpogrelate.
        &["3399004M1026", "3399005F1021", "3399006F2022"],
    ),
    (
        "insulin",
        &[
            "2492416G2024",
            "2492415G6025",
            "2492414G5024",
            "2492419G1021",
        ],
        &["2499422G1024"],
    ),
    (
        "sulfonylurea",
        &[
            "3961008F1020",
            "3961007F1115",
            "3961003F2024",
            "3969006F2026",
            "3969008F2025",
            "3969013F2026",
        ],
        &["3969010F2030", "3969023F1023", "3962002F2027"],
    ),
    ("dialysis", &["3410539D2026", "3420419A4040"], &[]),
    (
        "systemic_steroid",
        &["2456001F1310", "2454002F1183", "2456003F2030"],
        // Topical steroids are not systemic.
        &["2646713M1136", "2646730M1059", "2290801G2025"],
    ),
    (
        "immunosuppressant",
        &[
            "3999014M1022",
            "3999004M4028",
            "3999017M1026",
            "3999016M1021",
        ],
        // Alendronate shares the catch-all 3999.
        &["3999018F2028"],
    ),
    (
        "antineoplastic",
        &["4223005F1022", "4229101F1026"],
        // Hormone therapies (tamoxifen, anastrozole) do not cause febrile neutropenia.
        &["4291003F2054", "4291010F1031"],
    ),
    (
        "beta_blocker",
        // Split across 2123 (不整脈用剤) and 2149 (血圧降下剤).
        &[
            "2123016F1107",
            "2123008F1048",
            "2123011F1155",
            "2149032F1021",
            "2149010F1025",
        ],
        &["2149040F2022", "2129010F1022"],
    ),
    ("digoxin", &["2113003F3025", "2113004B1033"], &[]),
    (
        "antiarrhythmic",
        &[
            "2129010F1022",
            "2129009F1020",
            "2129008M2020",
            "2129007F2027",
        ],
        &["2123016F1107"],
    ),
    (
        "antiepileptic",
        &[
            "1139010F1024",
            "1139004F2173",
            "1139002F1062",
            "1139009F3024",
            "1132002F2041",
            "1139003F1040",
        ],
        &[],
    ),
    (
        "opioid",
        &[
            "8114004G1027",
            "8119002B2023",
            "8219700S5026",
            "1149038F1024",
            "1149117F1020",
        ],
        &["1149019F1560", "1141007F1063"],
    ),
    (
        "psychotropic",
        &[
            "1179017F1056",
            "1179002F1068",
            "1179046F1028",
            "1179042F1020",
            "1179044F2025",
        ],
        &["1190012F2022"],
    ),
    (
        "sedative_hypnotic",
        &["1129009F1025", "1124009F1223", "1124007F2026"],
        &[],
    ),
    ("biguanide", &["3962002F2027"], &[]),
    (
        "sglt2",
        &[
            "3969023F1023",
            "3969019F2023",
            "3969022F1029",
            "3969018F2029",
            "3969021F1032",
            "3969020F1020",
        ],
        &["3969010F2030", "3969014F1024", "3969006F2026"],
    ),
    ("theophylline", &["2251001F2115"], &[]),
    // The auto-injectors, not the hospital syringe of the same ingredient (not in the catalogue;
    // the whole-master test in myna-drug-master pins it).
    ("anaphylaxis", &["2451402G3026", "2451402G2020"], &[]),
    ("parkinson", &["1169101F1120", "1169700S2021"], &[]),
    // Seizure rescue suppositories: antiepileptic as well as sedative.
    ("antiepileptic", &["1124701J2029", "1125700J3028"], &[]),
    ("sedative_hypnotic", &["1124701J2029", "1125700J3028"], &[]),
    ("opioid", &["1149704S1020", "8219700S5026"], &[]),
    ("immunosuppressant", &["3999005F1016"], &[]),
];

#[test]
fn every_alert_class_is_pinned_to_real_drugs() {
    let table = AlertTable::builtin().unwrap();
    let catalogue = Catalogue::builtin().unwrap();
    for (class, yes, no) in PINS {
        assert!(
            table.class(class).is_some(),
            "class {class} missing from the table"
        );
        for yj in *yes {
            assert!(
                catalogue.by_yj(yj).is_some(),
                "{yj} is not in the catalogue"
            );
            assert!(
                classes_of(&table, yj).contains(&class.to_string()),
                "{yj} should be {class}"
            );
        }
        for yj in *no {
            assert!(
                catalogue.by_yj(yj).is_some(),
                "{yj} is not in the catalogue"
            );
            assert!(
                !classes_of(&table, yj).contains(&class.to_string()),
                "{yj} must not be {class}"
            );
        }
    }
    // Every class in the table is pinned here, or is record-driven and tested in summary tests.
    for c in table.classes() {
        let pinned = PINS.iter().any(|(id, _, _)| *id == c.id);
        assert!(
            pinned || c.surgery_within_days.is_some() || !c.procedure_codes.is_empty(),
            "class {} is not pinned",
            c.id
        );
    }
}

#[test]
fn common_chronic_drugs_raise_no_alert() {
    let table = AlertTable::builtin().unwrap();
    for yj in [
        "2171022F2025", // amlodipine
        "2149040F2022", // candesartan
        "2189017F1022", // rosuvastatin
        "2329023F1020", // lansoprazole
        "3969010F2030", // sitagliptin
        "2590008F2022", // tamsulosin
        "3949003F2020", // febuxostat
    ] {
        assert!(
            classes_of(&table, yj).is_empty(),
            "{yj} raised {:?}",
            classes_of(&table, yj)
        );
    }
}

#[test]
fn malformed_tables_are_rejected() {
    let base = "version = \"t\"\nsource = \"t\"\nclaims_drug_window_months = 3\ne_prescription_window_days = 45\n";
    let no_trigger = format!(
        "{base}[[class]]\nid = \"x\"\nlabel_ja = \"x\"\nlabel_en = \"x\"\nwhy_ja = \"x\"\nwhy_en = \"x\"\nsource = \"x\"\n"
    );
    assert!(AlertTable::from_toml(&no_trigger).is_err());
    let bad_ingredient = format!("{no_trigger}ingredients = [\"339900\"]\n");
    assert!(AlertTable::from_toml(&bad_ingredient).is_err());
    let ok = format!("{no_trigger}yj_prefixes = [\"3332\"]\n");
    let dup = format!(
        "{ok}[[class]]\nid = \"x\"\nlabel_ja = \"x\"\nlabel_en = \"x\"\nwhy_ja = \"x\"\nwhy_en = \"x\"\nsource = \"x\"\nyj_prefixes = [\"1\"]\n"
    );
    assert!(AlertTable::from_toml(&ok).is_ok());
    assert!(AlertTable::from_toml(&dup).is_err());
    assert!(AlertTable::from_toml("version = ").is_err());
    // A reversal or a kept window for an ingredient the class never raises would never fire.
    let excluded = format!(
        "{ok}exclude = [\"3332001\"]\nreversal = [{{ ingredients = [\"3332001\"], agent_ja = \"x\", agent_en = \"x\" }}]\n"
    );
    assert!(AlertTable::from_toml(&excluded).is_err());
    let elsewhere = format!("{ok}kept = [{{ ingredients = [\"1124701\"], months = 12 }}]\n");
    assert!(AlertTable::from_toml(&elsewhere).is_err());
    let too_long = format!("{ok}kept = [{{ ingredients = [\"3332001\"], months = 13 }}]\n");
    assert!(AlertTable::from_toml(&too_long).is_err());
    let fine = format!("{ok}kept = [{{ ingredients = [\"3332001\"], months = 12 }}]\n");
    assert!(AlertTable::from_toml(&fine).is_ok());
    let procedure_without_window = format!("{no_trigger}procedure_codes = [\"113030210\"]\n");
    assert!(AlertTable::from_toml(&procedure_without_window).is_err());
    // Tables that pass a naive check yet could never fire.
    let lower_case = format!("{no_trigger}yj_prefixes = [\"2451402g2\"]\n");
    assert!(AlertTable::from_toml(&lower_case).is_err());
    let wrong_route = format!("{no_trigger}yj_prefixes = [\"2451402G2\"]\nroutes = [\"oral\"]\n");
    assert!(AlertTable::from_toml(&wrong_route).is_err());
    let listed_and_excluded =
        format!("{no_trigger}ingredients = [\"3332001\"]\nexclude = [\"3332\"]\n");
    assert!(AlertTable::from_toml(&listed_and_excluded).is_err());
    let no_window = ok.replace(
        "claims_drug_window_months = 3",
        "claims_drug_window_months = 0",
    );
    assert!(AlertTable::from_toml(&no_window).is_err());
}
