#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The alert table over its whole domain: every distinct YJ code of the national master,
//! classified, against the reviewed golden file `crates/myna-domain/data/alert-classification.csv`.
//! A rule change shows its whole effect as a diff of that file. To accept a change, review the
//! diff and run `UPDATE_GOLDEN=1 cargo test -p myna-drug-master --test alert_classification`.

use myna_domain::alerts::AlertTable;
use myna_drug_master::{DosageForm, Master};
use std::collections::BTreeMap;
use std::fmt::Write;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../myna-domain/data/alert-classification.csv"
);

fn form(f: DosageForm) -> &'static str {
    match f {
        DosageForm::Oral => "内用",
        DosageForm::External => "外用",
        DosageForm::Injection => "注射",
        DosageForm::Dental => "歯科用",
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// One row per distinct YJ code: the master's form and first product name (for review), the
/// classes and the rule that fired for each.
fn classification() -> (String, BTreeMap<String, usize>) {
    let master = Master::shipped().unwrap();
    let table = AlertTable::builtin().unwrap();
    let mut first: BTreeMap<&str, (&str, DosageForm)> = BTreeMap::new();
    for p in master.products() {
        first
            .entry(p.yj.as_str())
            .or_insert((p.name.as_str(), p.form));
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = format!(
        "# alert table {}\nyj_code,form,name,classes,rules\n",
        table.version
    );
    for yj in master.yj_codes() {
        let (name, f) = first.get(yj.as_str()).copied().unwrap();
        let mut classes = Vec::new();
        let mut rules = Vec::new();
        for c in &table.classes {
            if let Some(rule) = c.matched_rule(yj) {
                classes.push(c.id.as_str());
                rules.push(format!("{}: {rule}", c.id));
                *counts.entry(c.id.clone()).or_default() += 1;
            }
        }
        writeln!(
            out,
            "{},{},{},{},{}",
            yj.as_str(),
            form(f),
            quote(name),
            classes.join(";"),
            quote(&rules.join("; "))
        )
        .unwrap();
    }
    (out, counts)
}

#[test]
fn every_code_in_the_master_is_classified_as_the_reviewed_golden_file_says() {
    let (now, counts) = classification();
    for (class, n) in &counts {
        println!("{class}: {n}");
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &now).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    if golden != now {
        let old: Vec<&str> = golden.lines().collect();
        let new: Vec<&str> = now.lines().collect();
        let gone: Vec<&&str> = old.iter().filter(|l| !new.contains(l)).take(20).collect();
        let came: Vec<&&str> = new.iter().filter(|l| !old.contains(l)).take(20).collect();
        panic!(
            "the classification changed; review and accept with UPDATE_GOLDEN=1.\n\
             - was (first 20):\n{}\n+ now (first 20):\n{}",
            gone.iter()
                .map(|l| format!("- {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            came.iter()
                .map(|l| format!("+ {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
}

/// Properties the table must keep over the whole master, whatever the golden file says.
#[test]
fn no_moisturiser_adrenaline_or_ointment_raises_a_systemic_alert() {
    let master = Master::shipped().unwrap();
    let table = AlertTable::builtin().unwrap();
    let systemic = ["doac", "systemic_steroid", "antineoplastic", "heparin"];
    for p in master.products() {
        let classes: Vec<&str> = table
            .classify(&p.yj)
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        if p.form == DosageForm::External {
            for c in systemic {
                assert!(!classes.contains(&c), "{} {} is {c}", p.yj.as_str(), p.name);
            }
        }
        if p.yj.as_str().starts_with("2451") {
            assert!(!classes.contains(&"systemic_steroid"), "{}", p.name);
        }
        // Every oral DOAC ingredient is still a DOAC.
        if ["3339001", "3339002", "3339003", "3339004"].contains(&p.yj.ingredient7()) {
            assert_eq!(classes, ["doac"], "{}", p.name);
        }
    }
}
