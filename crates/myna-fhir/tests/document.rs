#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The handoff document's own rules on the sample person and on a synthetic population. With
//! `MYNA_FHIR_OUT=dir`, the documents are also written there for the FHIR validators
//! (`scripts/fhir-validate`).

use chrono::NaiveDate;
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::alerts::AlertTable;
use myna_domain::incident::*;
use myna_domain::patient::PatientSecret;
use myna_domain::summary::{EmergencySummary, View, build_summary};
use myna_fhir::check::document_problems;
use myna_fhir::sample::{handed_off_incident, sample_bundle};
use serde_json::Value;

fn handed_off() -> Incident {
    handed_off_incident(&PatientSecret::from_bytes([1; 32]).patient("01AA00000042")).unwrap()
}

fn sample_summary() -> EmergencySummary {
    let set = myna_store::testsuite::sample_person(1, "01AA00000042");
    build_summary(
        &set.person,
        &set.records,
        View::Summary,
        myna_store::testsuite::today(),
        None,
        &AlertTable::builtin().unwrap(),
    )
}

fn bundle(log: &Incident, summary: &EmergencySummary, consent: Consent) -> Value {
    sample_bundle(log, summary, consent).unwrap()
}

fn resources<'a>(b: &'a Value, kind: &str) -> Vec<&'a Value> {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

fn write_out(name: &str, b: &Value) {
    if let Ok(dir) = std::env::var("MYNA_FHIR_OUT") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.json")),
            serde_json::to_vec_pretty(b).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn the_sample_handoff_keeps_the_document_rules_and_carries_what_the_crew_saw() {
    let log = handed_off();
    let b = bundle(&log, &sample_summary(), Consent::Obtained);
    write_out("sample", &b);
    assert_eq!(document_problems(&b), Vec::<String>::new());

    let flags = resources(&b, "Flag");
    assert!(
        flags
            .iter()
            .any(|f| f["code"]["coding"][0]["code"] == "doac"
                && f["code"]["text"].as_str().unwrap().contains("拮抗薬")),
        "the DOAC alert names its reversal agent: {flags:?}"
    );
    let meds = resources(&b, "MedicationStatement");
    assert!(meds.iter().any(|m| {
        m["medicationCodeableConcept"]["coding"][0]["code"] == "3339004F1029"
            && m["medicationCodeableConcept"]["coding"][0]["system"]
                == "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code"
    }));
    let obs = resources(&b, "Observation");
    assert_eq!(obs.len(), 7, "six signs, then a second pulse");
    let bp = obs
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == "85354-9")
        .unwrap();
    assert_eq!(bp["component"][0]["valueQuantity"]["value"], 182);
    assert_eq!(bp["component"][1]["valueQuantity"]["code"], "mm[Hg]");
    let temp = obs
        .iter()
        .find(|o| o["code"]["coding"][0]["code"] == "8310-5")
        .unwrap();
    assert_eq!(temp["valueQuantity"]["value"], 36.8);
    let patient = &resources(&b, "Patient")[0];
    assert_eq!(patient["name"][0]["family"], "川崎");
    assert_eq!(patient["name"][1]["extension"][0]["valueCode"], "SYL");
    let prov = &resources(&b, "Provenance")[0];
    assert_eq!(prov["policy"][0], "urn:myna-kyukyu:basis:consent");
    assert_eq!(prov["entity"][0]["what"]["identifier"]["value"], "77");
    let transport = resources(&b, "Encounter")
        .into_iter()
        .find(|e| e["class"]["code"] == "FLD")
        .unwrap();
    assert_eq!(transport["status"], "finished");
    assert_eq!(transport["reasonCode"][0]["text"], "外傷");
    let text = b.to_string();
    assert!(
        text.contains("&lt;頭部打撲&gt;"),
        "the narrative escapes the note"
    );
    assert!(text.contains("救急科 山田"));

    // Deterministic: the same handoff is the same document.
    assert_eq!(b, bundle(&log, &sample_summary(), Consent::Obtained));
    let exception = bundle(
        &log,
        &sample_summary(),
        Consent::Exception {
            reason: ExceptionReason::Unconscious,
        },
    );
    assert_eq!(
        resources(&exception, "Provenance")[0]["policy"][0],
        "urn:myna-kyukyu:basis:exception:unconscious"
    );
}

#[test]
fn the_checks_catch_a_broken_document() {
    let b = bundle(&handed_off(), &sample_summary(), Consent::Obtained);
    let mut swapped = b.clone();
    swapped["entry"].as_array_mut().unwrap().swap(0, 1);
    assert!(
        document_problems(&swapped)
            .iter()
            .any(|p| p.contains("first entry"))
    );
    let mut dangling = b.clone();
    dangling["entry"][1]["resource"]["managingOrganization"] =
        serde_json::json!({"reference": "urn:uuid:00000000-0000-8000-8000-000000000000"});
    assert!(
        document_problems(&dangling)
            .iter()
            .any(|p| p.contains("resolves to no entry"))
    );
    let mut no_allergies = b.clone();
    no_allergies["entry"][0]["resource"]["section"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["code"]["coding"][0]["code"] != "48765-2");
    assert!(
        document_problems(&no_allergies)
            .iter()
            .any(|p| p.contains("48765-2"))
    );
}

#[test]
fn every_synthetic_persons_handoff_keeps_the_document_rules() {
    let as_of = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
    let generator = myna_synth::Generator::new(42, as_of).unwrap();
    let table = AlertTable::builtin().unwrap();
    let log = handed_off();
    let mut with_alerts = 0;
    for i in 0..120 {
        let p = generator.person(i);
        let view = if i % 3 == 0 {
            View::Full
        } else {
            View::Summary
        };
        let sm = build_summary(&p.person, &p.records, view, as_of, None, &table);
        with_alerts += usize::from(!sm.alerts.is_empty());
        let b = bundle(&log, &sm, Consent::Obtained);
        assert_eq!(document_problems(&b), Vec::<String>::new(), "person {i}");
        if i < 40 {
            write_out(&format!("person-{i:03}"), &b);
        }
    }
    assert!(with_alerts > 10, "the population exercises the alerts");
}

#[test]
fn vitals_of_a_several_patient_incident_are_nobodys_observation_and_odd_text_is_cleaned() {
    let mut log = handed_off();
    let crew = Actor::Crew {
        account: 2,
        terminal: 3,
        team: 4,
    };
    let second = PatientSecret::from_bytes([1; 32]).patient("01AA00000043");
    let kind = EventKind::IdentityConfirmed { patient: second };
    log.check(&kind, &crew).unwrap();
    let mut last = log.events.last().unwrap().clone();
    last.seq += 1;
    last.kind = kind;
    last.actor = crew;
    last.idempotency_key = "second".into();
    log.events.push(last);
    let mut sm = sample_summary();
    sm.patient.name_kana = String::new();
    sm.patient.address = "川崎市\u{1}中原区".into();
    let b = bundle(&log, &sm, Consent::Obtained);
    assert_eq!(document_problems(&b), Vec::<String>::new());
    assert!(
        resources(&b, "Observation").is_empty(),
        "whose vitals they are is unknown"
    );
    assert!(b.to_string().contains("複数の傷病者"));
    let patient = &resources(&b, "Patient")[0];
    assert_eq!(
        patient["name"].as_array().unwrap().len(),
        1,
        "no empty kana name"
    );
    assert_eq!(patient["address"][0]["text"], "川崎市 中原区");
    assert!(!b.to_string().contains('\u{1}'));

    // The document's identifier follows its content; the Composition's stays.
    let one = bundle(&handed_off(), &sample_summary(), Consent::Obtained);
    assert_ne!(one["identifier"], b["identifier"]);
    assert_eq!(
        one["entry"][0]["resource"]["identifier"],
        b["entry"][0]["resource"]["identifier"]
    );
}
