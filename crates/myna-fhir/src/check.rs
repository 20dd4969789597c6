//! The document rules of our own, beside the FHIR validators the tests run: the Composition
//! first, every reference resolvable inside the Bundle, unique full URLs, the IPS sections
//! present, each section's entries of the type it holds, and a Provenance for the document.

use crate::REQUIRED_SECTIONS;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Which resource type a section of ours holds, by its LOINC code.
const SECTION_TYPES: [(&str, &str); 8] = [
    ("10160-0", "MedicationStatement"),
    ("104605-1", "Flag"),
    ("47519-4", "Procedure"),
    ("8716-3", "Observation"),
    ("46240-8", "Encounter"),
    ("42349-1", "Encounter"),
    ("48765-2", "AllergyIntolerance"),
    ("11450-4", "Condition"),
];

fn collect_references<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("reference", Value::String(r)) => out.push(r),
                    _ => collect_references(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_references(x, out)),
        _ => {}
    }
}

/// The section's LOINC code.
fn section_code(s: &Value) -> Option<&str> {
    (s["code"]["coding"][0]["system"] == "http://loinc.org")
        .then(|| s["code"]["coding"][0]["code"].as_str())
        .flatten()
}

/// Every broken rule, or none.
pub fn document_problems(bundle: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "document" {
        problems.push("not a document Bundle".to_owned());
    }
    if bundle["identifier"]["value"].as_str().is_none() {
        problems.push("a document Bundle has an identifier (bdl-9)".to_owned());
    }
    if bundle["timestamp"].as_str().is_none() {
        problems.push("a document Bundle has a timestamp (bdl-10)".to_owned());
    }
    let Some(entries) = bundle["entry"].as_array().filter(|e| !e.is_empty()) else {
        problems.push("no entries".to_owned());
        return problems;
    };
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut ids = HashSet::new();
    for e in entries {
        let (Some(url), Some(kind)) = (
            e["fullUrl"].as_str(),
            e["resource"]["resourceType"].as_str(),
        ) else {
            problems.push(format!("an entry without fullUrl or resourceType: {e}"));
            continue;
        };
        if types.insert(url, kind).is_some() {
            problems.push(format!("fullUrl {url} is used twice"));
        }
        let id = e["resource"]["id"].as_str().unwrap_or("");
        if id.is_empty() || url != format!("urn:uuid:{id}") || !ids.insert(id) {
            problems.push(format!(
                "{url}: its id {id:?} is missing, repeated or not its URL's"
            ));
        }
    }
    let composition = &bundle["entry"][0]["resource"];
    if composition["resourceType"] != "Composition" {
        problems.push("the first entry is not the Composition (bdl-11)".to_owned());
    }
    let mut refs = Vec::new();
    collect_references(bundle, &mut refs);
    for r in refs {
        if !types.contains_key(r) {
            problems.push(format!("reference {r} resolves to no entry"));
        }
    }
    let sections = composition["section"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for required in REQUIRED_SECTIONS {
        if !sections.iter().any(|s| section_code(s) == Some(required)) {
            problems.push(format!("the IPS section {required} is missing"));
        }
    }
    for s in &sections {
        let code = section_code(s).unwrap_or("?");
        let entries = s["entry"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() == s["emptyReason"].is_null() {
            problems.push(format!(
                "section {code} has entries and an empty reason, or neither"
            ));
        }
        if s["text"]["div"].as_str().is_none() || s["title"].as_str().is_none() {
            problems.push(format!("section {code} has no title or narrative"));
        }
        let expected = SECTION_TYPES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, t)| *t);
        for e in entries {
            let kind = e["reference"].as_str().and_then(|r| types.get(r)).copied();
            if expected.is_some() && kind != expected {
                problems.push(format!(
                    "section {code} holds a {kind:?}, not a {expected:?}"
                ));
            }
        }
    }
    // Every resource about a patient is about the document's patient.
    let subject = &composition["subject"]["reference"];
    for e in entries {
        let about = &e["resource"]["subject"]["reference"];
        if !about.is_null() && about != subject {
            problems.push(format!(
                "{} is about {about}, not the document's patient",
                e["fullUrl"]
            ));
        }
    }
    let composition_url = bundle["entry"][0]["fullUrl"].as_str().unwrap_or("");
    let provenance = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Provenance");
    match provenance {
        None => problems.push("no Provenance".to_owned()),
        Some(p) => {
            let targets = p["resource"]["target"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !targets.iter().any(|t| t["reference"] == composition_url) {
                problems.push("the Provenance does not name the Composition".to_owned());
            }
        }
    }
    problems
}
