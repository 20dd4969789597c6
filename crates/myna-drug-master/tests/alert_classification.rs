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

/// The ids of the classes `yj` falls into, in table order.
fn class_ids<'t>(table: &'t AlertTable, yj: &myna_domain::codes::YjCode) -> Vec<&'t str> {
    table
        .classify(yj)
        .into_iter()
        .map(|c| c.id.as_str())
        .collect()
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
        for c in table.classes() {
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
    let systemic = [
        "doac",
        "systemic_steroid",
        "antineoplastic",
        "heparin",
        "insulin",
    ];
    // Rectal steroids are absorbed, and listed by name for that reason.
    let rectal_steroids = ["2454700", "2454701", "2456700"];
    for p in master.products() {
        let classes = class_ids(&table, &p.yj);
        if p.form == DosageForm::External && !rectal_steroids.contains(&p.yj.ingredient7()) {
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

/// The table's `routes` are the master's 剤形: the YJ ingredient range agrees with it for every
/// product (歯科用 products sit in the external range).
#[test]
fn the_yj_route_is_the_masters_dosage_form_for_every_product() {
    use myna_domain::codes::Route;
    let master = Master::shipped().unwrap();
    for p in master.products() {
        let expected = match p.form {
            DosageForm::Oral => Route::Oral,
            DosageForm::Injection => Route::Injection,
            DosageForm::External | DosageForm::Dental => Route::External,
        };
        assert_eq!(p.yj.route(), expected, "{} {}", p.yj.as_str(), p.name);
    }
}

/// The named false alarms and misses of issue 10, on every product of the master that carries
/// the ingredient, not only the catalogue's.
#[test]
fn the_named_misses_are_caught_on_every_product_of_their_ingredient() {
    let master = Master::shipped().unwrap();
    let table = AlertTable::builtin().unwrap();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for p in master.products() {
        let classes = class_ids(&table, &p.yj);
        let code = p.yj.as_str();
        let has = |c: &str| classes.contains(&c);
        let mut check = |what: &'static str, ok: bool| {
            assert!(ok, "{what}: {code} {} is {classes:?}", p.name);
            *seen.entry(what).or_default() += 1;
        };
        match p.yj.ingredient7() {
            // Buprenorphine patch, the opioid patch that is not fentanyl.
            "1149704" => check("ノルスパン is an opioid", has("opioid")),
            "3999005" | "3999022" | "3999002" => check(
                "azathioprine, everolimus, mizoribine",
                has("immunosuppressant"),
            ),
            // Hormone therapies under 42.
            "4291003" | "4291010" | "4291015" | "4291009" | "4291031" => check(
                "hormone therapy is not antineoplastic",
                !has("antineoplastic"),
            ),
            "1124701" | "1125700" => check(
                "a rescue suppository is antiepileptic and sedative",
                has("antiepileptic") && has("sedative_hypnotic"),
            ),
            "1124700" => check(
                "the bromazepam suppository is a sedative only",
                !has("antiepileptic") && has("sedative_hypnotic"),
            ),
            "2451402" if code.starts_with("2451402G1") => check(
                "the adrenaline syringe is not an auto-injector",
                !has("anaphylaxis"),
            ),
            "2451402" => check("エピペン raises anaphylaxis", has("anaphylaxis")),
            "1169101" => check("levodopa/carbidopa is antiparkinsonian", has("parkinson")),
            // Found by review of 2026.11-5.
            "2115001" | "2115002" | "2115400" | "2115404" => {
                check("aminophylline is theophylline", has("theophylline"))
            }
            "2492700" => check("nasal glucagon is not insulin", !has("insulin")),
            "3334402" | "3334404" => check(
                "lock flushes and dialysis heparins are not self-injected",
                !has("heparin"),
            ),
            "1179005" | "1179019" | "1179401" => {
                check("hydroxyzine is not a psychotropic", classes.is_empty())
            }
            "1179025" | "1179012" => check(
                "etizolam and clotiazepam are sedatives",
                has("sedative_hypnotic") && !has("psychotropic"),
            ),
            "1162001" | "1162400" | "1169001" => check(
                "anticholinergics are not flagged antiparkinsonian",
                !has("parkinson"),
            ),
            "4299405" => check("talc pleurodesis is not antineoplastic", classes.is_empty()),
            "2454700" | "2456700" => check("a rectal steroid is systemic", has("systemic_steroid")),
            "2242001" | "2229101" => check("codeine antitussives are opioids", has("opioid")),
            "6399424" | "3999064" | "3999020" | "6399413" => check(
                "complement inhibitors, leflunomide and ATG are immunosuppressants",
                has("immunosuppressant"),
            ),
            // Found by review of 2026.11-6.
            "2229102" | "2229114" | "2249105" => {
                check("dihydrocodeine syrups are opioids", has("opioid"))
            }
            "2900003" | "1319702" | "1319823" | "2129013" => check(
                "infant propranolol, β-blocker eye drops and sotalol are β-blockers",
                has("beta_blocker"),
            ),
            "1125003" | "1125004" | "1125402" | "1126001" => check(
                "phenobarbital and bromide are antiepileptics",
                has("antiepileptic"),
            ),
            "4299400" => check("OK-432 is a local treatment", !has("antineoplastic")),
            "1129008" | "1129400" => check(
                "tandospirone and dexmedetomidine are not sedatives here",
                classes.is_empty(),
            ),
            "3334400"
                if !["3334400A3", "3334400A8", "3334400G1"]
                    .iter()
                    .any(|p| code.starts_with(p)) =>
            {
                check("heparin calcium IV vials are hospital use", !has("heparin"))
            }
            _ => {}
        }
        if p.name.contains("エピペン") {
            check("every エピペン product", has("anaphylaxis"));
        }
    }
    // Each check ran on at least one real product, so none of them is vacuous.
    for what in [
        "ノルスパン is an opioid",
        "azathioprine, everolimus, mizoribine",
        "hormone therapy is not antineoplastic",
        "a rescue suppository is antiepileptic and sedative",
        "the bromazepam suppository is a sedative only",
        "the adrenaline syringe is not an auto-injector",
        "エピペン raises anaphylaxis",
        "levodopa/carbidopa is antiparkinsonian",
        "every エピペン product",
        "aminophylline is theophylline",
        "nasal glucagon is not insulin",
        "lock flushes and dialysis heparins are not self-injected",
        "hydroxyzine is not a psychotropic",
        "etizolam and clotiazepam are sedatives",
        "anticholinergics are not flagged antiparkinsonian",
        "talc pleurodesis is not antineoplastic",
        "a rectal steroid is systemic",
        "codeine antitussives are opioids",
        "complement inhibitors, leflunomide and ATG are immunosuppressants",
        "dihydrocodeine syrups are opioids",
        "infant propranolol, β-blocker eye drops and sotalol are β-blockers",
        "phenobarbital and bromide are antiepileptics",
        "OK-432 is a local treatment",
        "tandospirone and dexmedetomidine are not sedatives here",
        "heparin calcium IV vials are hospital use",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) > 0,
            "no product for {what:?}"
        );
    }
}

/// A drug rule that never fires is a mistake (a typo in a code, a prefix on an excluded
/// route): every drug class raises at least one code of the master.
#[test]
fn every_drug_class_raises_some_code_of_the_master() {
    let master = Master::shipped().unwrap();
    let table = AlertTable::builtin().unwrap();
    for c in table.classes() {
        if c.yj_prefixes.is_empty() && c.ingredients.is_empty() {
            continue;
        }
        assert!(
            master.products().any(|p| c.matches_drug(&p.yj)),
            "class {} raises no code of the master",
            c.id
        );
        for i in &c.ingredients {
            assert!(
                master.products().any(|p| p.yj.ingredient7() == i),
                "class {} lists ingredient {i}, which the master does not hold",
                c.id
            );
        }
    }
}
