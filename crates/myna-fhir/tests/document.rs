#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The handoff document's own rules on the sample person and on a synthetic population. With
//! `MYNA_FHIR_OUT=dir`, the documents are also written there for the FHIR validators
//! (`scripts/fhir-validate`).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use myna_domain::access::{Consent, ExceptionReason};
use myna_domain::alerts::AlertTable;
use myna_domain::hospitals::Registry;
use myna_domain::incident::*;
use myna_domain::patient::PatientSecret;
use myna_domain::summary::{EmergencySummary, View, build_summary};
use myna_domain::vitals::{BloodPressure, Jcs, Vitals};
use myna_fhir::check::document_problems;
use myna_fhir::{HandoffInput, handoff_bundle};
use serde_json::Value;

fn t0() -> DateTime<Utc> {
    "2026-11-24T01:00:00Z".parse().unwrap()
}

fn push(log: &mut Incident, kind: EventKind, actor: Actor) {
    log.check(&kind, &actor).unwrap();
    let seq = u32::try_from(log.events.len()).unwrap() + 1;
    log.events.push(Event {
        seq,
        kind,
        at: t0() + Duration::minutes(i64::from(seq)),
        device_at: None,
        idempotency_key: format!("k{seq}"),
        actor,
    });
}

/// An incident taken to hospital and handed off, with two vitals records.
fn handed_off() -> Incident {
    let desk = Actor::Dispatcher { account: 1 };
    let crew = Actor::Crew {
        account: 2,
        terminal: 3,
        team: 4,
    };
    let p = PatientSecret::from_bytes([1; 32]).patient("01AA00000042");
    let mut log = Incident::default();
    push(
        &mut log,
        EventKind::Created {
            location: "川崎市中原区小杉町3-600".into(),
            category: ComplaintCategory::Trauma,
            note: "階段から転落 <頭部打撲>".into(),
            card_prep_requested: true,
        },
        desk.clone(),
    );
    push(&mut log, EventKind::Assigned { team: 4 }, desk);
    for phase in [Phase::Arrival, Phase::Contact] {
        push(&mut log, EventKind::Phase { phase }, crew.clone());
    }
    push(
        &mut log,
        EventKind::IdentityConfirmed { patient: p.clone() },
        crew.clone(),
    );
    push(
        &mut log,
        EventKind::Consent {
            patient: p.clone(),
            consent: Consent::Obtained,
        },
        crew.clone(),
    );
    push(
        &mut log,
        EventKind::SummaryViewed {
            patient: p,
            view: View::Summary,
        },
        crew.clone(),
    );
    push(
        &mut log,
        EventKind::Vitals {
            vitals: Vitals {
                jcs: Jcs::new(10),
                pulse: Some(112),
                blood_pressure: Some(BloodPressure {
                    systolic: 182,
                    diastolic: 104,
                }),
                spo2: Some(94),
                respiratory_rate: Some(24),
                temperature_tenths: Some(368),
            },
        },
        crew.clone(),
    );
    push(
        &mut log,
        EventKind::Vitals {
            vitals: Vitals {
                pulse: Some(98),
                ..Vitals::default()
            },
        },
        crew.clone(),
    );
    push(
        &mut log,
        EventKind::Inquiry {
            hospital: "kawasaki-municipal".into(),
            result: InquiryResult::Accepted,
            reason: None,
        },
        crew.clone(),
    );
    push(
        &mut log,
        EventKind::Destination {
            hospital: "kawasaki-municipal".into(),
            patients: vec![PatientSecret::from_bytes([1; 32]).patient("01AA00000042")],
        },
        crew.clone(),
    );
    for phase in [Phase::InVehicle, Phase::Departure, Phase::HospitalArrival] {
        push(&mut log, EventKind::Phase { phase }, crew.clone());
    }
    push(
        &mut log,
        EventKind::Handoff {
            hospital: "kawasaki-municipal".into(),
            received_by: "救急科 山田".into(),
        },
        Actor::Hospital {
            account: 9,
            hospital: "kawasaki-municipal".into(),
        },
    );
    log
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
    let registry = Registry::shared().unwrap();
    handoff_bundle(&HandoffInput {
        incident_number: "20261124-0001",
        bureau_code: "kawasaki-fd",
        bureau_name: "川崎市消防局",
        team: "中原救急1",
        crew_member: "crew10",
        hospital: registry.get("kawasaki-municipal").unwrap(),
        log,
        patient_number: 1,
        consent,
        provider_access_id: 77,
        summary,
        generated_at: t0() + Duration::minutes(40),
    })
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
        .find(|e| e["class"]["code"] == "EMER")
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
