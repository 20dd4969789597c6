#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The procedure rules over their whole domain: every row of the 診療行為 master that names an
//! implanted cardiac device, home oxygen or home ventilation
//! (`data/procedure-master-extract.csv`, made by `scripts/extract-procedure-codes.py` from the
//! 支払基金 s_ files) is either raised by its class or on the list of rows that are not flags.
//! A code that a later master adds shows up here as unclassified.

use myna_domain::alerts::AlertTable;
use std::collections::BTreeMap;

const EXTRACT: &str = include_str!("../data/procedure-master-extract.csv");

/// Rows of the extract that raise no class, with the reason.
const NOT_FLAGS: &[(&str, &str)] = &[
    (
        "140051410",
        "J047 countershock with an AED: a treatment, not a device",
    ),
    ("114040710", "C107-2 CPAP for sleep apnoea, not ventilation"),
    ("114040810", "C107-2 CPAP"),
    ("114041210", "C165 ASV/CPAP device addition"),
    ("114041310", "C165 CPAP device addition"),
    ("114041710", "C171-2 CPAP materials"),
    ("114045670", "C107-2 CPAP remote monitoring"),
    ("114741710", "C107-2 CPAP by telemedicine"),
    (
        "150444590",
        "reprocessed single-use EP catheter (coronary sinus), not an implant",
    ),
    (
        "150444690",
        "reprocessed single-use EP catheter (atrioventricular annulus), not an implant",
    ),
    (
        "150106210",
        "K386 the tracheostomy operation: may be temporary",
    ),
    ("150108410", "K396 closing a tracheostomy"),
    (
        "150266110",
        "K603 extracorporeal assist device: never leaves hospital",
    ),
    ("150266210", "K603"),
    ("150301810", "K603"),
    (
        "150382650",
        "K603-2 paediatric extracorporeal assist device",
    ),
    ("150382750", "K603-2"),
    ("150382850", "K603-2"),
];

struct Row<'a> {
    kubun: &'a str,
    name: &'a str,
}

fn extract() -> BTreeMap<&'static str, Row<'static>> {
    let mut rows = BTreeMap::new();
    for line in EXTRACT.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5, "{line}");
        rows.insert(
            f[0],
            Row {
                kubun: f[1],
                name: f[2],
            },
        );
    }
    rows
}

#[test]
fn every_device_and_home_respiratory_code_of_the_master_is_classified_or_excluded() {
    let table = AlertTable::builtin().unwrap();
    let rows = extract();
    assert!(rows.len() > 50, "the extract has only {} rows", rows.len());
    let class_of = |code: &str| -> Vec<&str> {
        table
            .classes()
            .iter()
            .filter(|c| c.procedure_codes.iter().any(|p| p == code))
            .map(|c| c.id.as_str())
            .collect()
    };
    for (code, row) in &rows {
        let classes = class_of(code);
        let excluded = NOT_FLAGS.iter().any(|(c, _)| c == code);
        assert!(
            classes.len() + usize::from(excluded) == 1,
            "{code} {} {}: classes {classes:?}, excluded {excluded}",
            row.kubun,
            row.name
        );
        // The class follows the 区分: K597–K599-4, K604-2, B001 and C116 are cardiac devices,
        // the other C1xx home respiratory.
        if let [class] = classes[..] {
            let device = ["K59", "K604", "B", "C116"];
            let expected = if device.iter().any(|k| row.kubun.starts_with(k)) {
                "cardiac_device"
            } else {
                "home_respiratory"
            };
            assert_eq!(class, expected, "{code} {} {}", row.kubun, row.name);
        }
    }
    // And every code the table names is a real row of the master.
    for c in table.classes() {
        for code in &c.procedure_codes {
            assert!(
                rows.contains_key(code.as_str()),
                "{} names {code}, which the master extract lacks",
                c.id
            );
        }
    }
}
