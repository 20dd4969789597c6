#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use chrono::NaiveDate;
use myna_domain::alerts::AlertTable;
use myna_domain::summary::{View, build_summary};
use myna_synth::{Condition, Generator, cert_serial_for, claims_through, insurer_check_digit};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

fn digest(g: &Generator, n: u64) -> String {
    let mut h = Sha256::new();
    for i in 0..n {
        let p = g.person(i);
        h.update(serde_json::to_vec(&p.person).unwrap());
        h.update(serde_json::to_vec(&p.records).unwrap());
        h.update(p.cert_serial.as_bytes());
    }
    hex::encode(h.finalize())
}

#[test]
fn same_seed_same_population_different_seed_different() {
    let a = Generator::new(42, as_of()).unwrap();
    let b = Generator::new(42, as_of()).unwrap();
    let c = Generator::new(43, as_of()).unwrap();
    assert_eq!(digest(&a, 300), digest(&b, 300));
    assert_ne!(digest(&a, 300), digest(&c, 300));
    // Order of generation does not matter: person 250 alone equals person 250 in sequence.
    assert_eq!(a.person(250), b.person(250));
}

#[test]
fn serials_are_unique() {
    let mut seen = HashSet::new();
    for i in 0..200_000 {
        assert!(
            seen.insert(cert_serial_for(7, i)),
            "duplicate serial at {i}"
        );
    }
}

#[test]
fn population_is_japan_like_and_in_kawasaki() {
    let g = Generator::new(1, as_of()).unwrap();
    let n = 5_000;
    let mut over65 = 0;
    let mut female = 0;
    let mut wards = HashSet::new();
    for i in 0..n {
        let p = g.person(i).person;
        if p.age_on(as_of()) >= 65 {
            over65 += 1;
        }
        if p.sex == myna_domain::person::Sex::Female {
            female += 1;
        }
        assert_eq!(p.address.prefecture, "神奈川県");
        assert!(p.address.municipality.starts_with("川崎市"));
        wards.insert(p.address.municipality.clone());
        let ins = &p.coverage.insurer_number;
        let (body, check) = ins.split_at(ins.len() - 1);
        assert_eq!(check, insurer_check_digit(body).to_string(), "{ins}");
    }
    let share65 = over65 as f64 / n as f64;
    assert!((0.24..0.34).contains(&share65), "65+ share {share65}");
    let share_f = female as f64 / n as f64;
    assert!((0.48..0.54).contains(&share_f), "female share {share_f}");
    assert_eq!(wards.len(), 7);
}

/// Alert classes on today's summary, for flags that come from claimed procedures.
fn summary_alerts(p: &myna_synth::SyntheticPerson) -> HashSet<String> {
    let table = AlertTable::builtin().unwrap();
    build_summary(&p.person, &p.records, View::Summary, as_of(), None, &table)
        .alerts
        .into_iter()
        .map(|a| a.class)
        .collect()
}

/// Whether a claimed procedure whose code starts with `prefix` has reached the provider.
fn claim_arrived(p: &myna_synth::SyntheticPerson, prefix: &str) -> bool {
    p.records
        .procedures
        .iter()
        .any(|x| x.code.starts_with(prefix) && x.available_on <= as_of())
}

#[test]
fn conditions_drive_coherent_drugs_and_visits() {
    let g = Generator::new(3, as_of()).unwrap();
    let table = AlertTable::builtin().unwrap();
    let mut checked = HashMap::new();
    for i in 0..20_000 {
        let p = g.person(i);
        let classes: HashSet<String> = p
            .records
            .dispensings
            .iter()
            .flat_map(|d| table.classify(&d.drug.yj).into_iter().map(|c| c.id.clone()))
            .collect();
        for c in &p.conditions {
            let ok = match c {
                Condition::AtrialFibrillation => {
                    classes.contains("doac") || classes.contains("vka")
                }
                Condition::PostStroke => classes.contains("antiplatelet"),
                Condition::Epilepsy => classes.contains("antiepileptic"),
                Condition::DialysisCkd => !p.records.dialysis.is_empty(),
                Condition::Transplant => classes.contains("immunosuppressant"),
                Condition::Anaphylaxis => classes.contains("anaphylaxis"),
                Condition::Parkinson => classes.contains("parkinson"),
                Condition::FebrileSeizures => {
                    classes.contains("antiepileptic") && classes.contains("sedative_hypnotic")
                }
                // A claim inside the lag has not reached the provider yet: no flag is right.
                Condition::CardiacDevice if !claim_arrived(&p, "1130") => continue,
                Condition::CardiacDevice => summary_alerts(&p).contains("cardiac_device"),
                Condition::HomeOxygen | Condition::HomeVentilation
                    if !claim_arrived(&p, "1140") =>
                {
                    continue;
                }
                Condition::HomeOxygen | Condition::HomeVentilation => {
                    summary_alerts(&p).contains("home_respiratory")
                }
                _ => continue,
            };
            assert!(ok, "person {i} has {c:?} but classes {classes:?}");
            *checked.entry(format!("{c:?}")).or_insert(0) += 1;
        }
        // Every dispensing's prescriber was visited on the same day.
        for d in p
            .records
            .dispensings
            .iter()
            .filter(|d| d.source == myna_domain::records::Source::Claims)
        {
            assert!(
                p.records
                    .visits
                    .iter()
                    .any(|v| v.institution.code == d.prescriber.code
                        && v.service_date.format("%Y-%m").to_string()
                            == d.service_date.format("%Y-%m").to_string())
            );
        }
    }
    for c in [
        "AtrialFibrillation",
        "PostStroke",
        "Epilepsy",
        "DialysisCkd",
        "CardiacDevice",
        "HomeOxygen",
        "Anaphylaxis",
        "Parkinson",
        "FebrileSeizures",
    ] {
        assert!(
            checked.get(c).copied().unwrap_or(0) > 0,
            "no person with {c} in 20,000"
        );
    }
}

#[test]
fn every_alert_class_occurs_in_a_modest_population() {
    // The demo deck needs one card per alert class from a population of 10,000.
    let g = Generator::new(2026, as_of()).unwrap();
    let table = AlertTable::builtin().unwrap();
    let mut seen = HashSet::new();
    for i in 0..10_000 {
        let p = g.person(i);
        let s = build_summary(&p.person, &p.records, View::Summary, as_of(), None, &table);
        seen.extend(s.alerts.into_iter().map(|a| a.class));
    }
    let missing: Vec<_> = table
        .classes()
        .iter()
        .filter(|c| !seen.contains(&c.id))
        .map(|c| c.id.clone())
        .collect();
    assert!(
        missing.is_empty(),
        "alert classes never raised: {missing:?}"
    );
}

#[test]
fn claims_through_respects_the_lag() {
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    // October's claims arrive 25 days after October ends.
    assert_eq!(claims_through(d("2026-11-25")), d("2026-10-31"));
    assert_eq!(claims_through(d("2026-11-24")), d("2026-09-30"));
}

#[test]
fn claims_name_drugs_of_the_whole_master_not_only_the_catalogue() {
    let g = Generator::new(11, as_of()).unwrap();
    let master = myna_drug_master::Master::shared().unwrap();
    let mut beyond = HashSet::new();
    for i in 0..2_000 {
        for d in g.person(i).records.dispensings {
            if g.catalogue().by_yj(d.drug.yj.as_str()).is_some() {
                continue;
            }
            // Named as the master names the product its claim carries.
            let code = d.drug.receipt_code.as_ref().unwrap();
            let product = master.by_receipt(code.as_str()).unwrap();
            assert_eq!(d.drug.name, product.name);
            assert_eq!(d.drug.yj, product.yj);
            beyond.insert(d.drug.yj.as_str().to_owned());
        }
    }
    assert!(
        beyond.len() > 100,
        "only {} distinct codes outside the catalogue",
        beyond.len()
    );
}

#[test]
fn no_care_before_birth_and_doses_fit_the_age() {
    let g = Generator::new(7, as_of()).unwrap();
    let mut pens = 0;
    let mut rescue = 0;
    for i in 0..20_000 {
        let p = g.person(i);
        let born = p.person.birth_date;
        let dates = p
            .records
            .visits
            .iter()
            .map(|v| v.service_date)
            .chain(p.records.dispensings.iter().map(|d| d.service_date))
            .chain(p.records.procedures.iter().map(|x| x.service_date))
            .chain(p.records.dialysis.iter().map(|x| x.service_date));
        for d in dates {
            assert!(d >= born, "person {i} born {born} has care on {d}");
        }
        p.records.check().unwrap();
        for d in &p.records.dispensings {
            let age = p.person.age_on(d.service_date);
            match d.drug.yj.as_str() {
                // エピペン 0.15 mg for small children, 0.3 mg above about 30 kg.
                "2451402G2020" => {
                    assert!(age <= 9, "0.15 mg pen at {age}");
                    pens += 1;
                }
                "2451402G3026" => {
                    assert!(age >= 5, "0.3 mg pen at {age}");
                    pens += 1;
                }
                // ダイアップ 6 mg is too much for an infant.
                "1124701J2029" => {
                    assert!(age >= 1, "6 mg diazepam at {age}");
                    rescue += 1;
                }
                "1124701J1022" => rescue += 1,
                _ => {}
            }
        }
    }
    assert!(pens > 0 && rescue > 0, "pens {pens}, rescue {rescue}");
}

#[test]
fn every_hospital_a_patient_visits_is_in_the_selection_registry() {
    let g = Generator::new(5, as_of()).unwrap();
    let registry = myna_domain::hospitals::Registry::kawasaki().unwrap();
    let mut hospital_visits = 0;
    for i in 0..2_000 {
        for v in g.person(i).records.visits {
            if v.institution.kind == myna_domain::records::InstitutionKind::Hospital {
                let h = registry
                    .by_institution_code(&v.institution.code)
                    .unwrap_or_else(|| panic!("{} is not in the registry", v.institution.name));
                assert_eq!(h.name, v.institution.name);
                hospital_visits += 1;
            }
        }
    }
    assert!(hospital_visits > 100, "{hospital_visits}");
}
