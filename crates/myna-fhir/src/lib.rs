//! The handoff document: one patient of one incident as a FHIR R4 (4.0.1) `Bundle` of type
//! `document`, the shape of an International Patient Summary with the Japanese code systems of
//! JP Core 1.2.0.
//!
//! - The `Composition` comes first (LOINC 60591-5) with the IPS sections: medications
//!   (`MedicationStatement`, one per product, grouped as on the screens), allergies and
//!   problems (empty with a reason: claims do not carry them), procedures (`Procedure`),
//!   alerts (`Flag`, with the reversal agent), vital signs (`Observation`), the visit history
//!   (`Encounter`) and the transport itself (an `Encounter` with the chief complaint).
//! - `Provenance` names the sources: the bureau, the team and crew member, the provider's
//!   access-log entry that answered the crew, and the lawful basis passed on.
//!
//! Built with `serde_json` values from a few helpers, not a generated FHIR model: the
//! generated R4 crates are hundreds of thousands of lines (too heavy for a 2-core build), and
//! none knows JP Core. The tests check the output with real FHIR tooling instead (`fhir` on
//! npm and `fhir.resources` on PyPI, `scripts/fhir-validate`), and `check` holds the
//! document rules of our own. Pure: the caller passes the time.

pub mod check;
#[cfg(feature = "sample")]
pub mod sample;

use chrono::{DateTime, NaiveDate, Utc};
use myna_domain::access::Consent;
use myna_domain::codes::uri;
use myna_domain::hospitals::Hospital;
use myna_domain::incident::{ComplaintCategory, Incident, Phase};
use myna_domain::person::Sex;
use myna_domain::records::CareSetting;
use myna_domain::summary::{EmergencySummary, group_drugs, group_visits};
use myna_domain::vitals::{VitalSign, Vitals};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
/// The JP-CLINS identifier of an insured person: `保険者番号:記号:番号:枝番`.
const INSURANCE_MEMBER_ID: &str = "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID";
/// Our own systems, for what no published system names.
const ALERT_CLASS: &str = "urn:myna-kyukyu:alert-class";
const BUREAU_ID: &str = "urn:myna-kyukyu:bureau";
const HOSPITAL_ID: &str = "urn:myna-kyukyu:hospital";
const INCIDENT_ID: &str = "urn:myna-kyukyu:incident";
const PROVIDER_ACCESS: &str = "urn:myna-kyukyu:provider-access-log";
const VITAL_LOCAL: &str = "urn:myna-kyukyu:vital-sign";

/// The IPS sections every document has (LOINC), in order; `check` requires them.
pub const REQUIRED_SECTIONS: [&str; 3] = ["10160-0", "48765-2", "11450-4"];

/// What the handoff is made of.
pub struct HandoffInput<'a> {
    pub incident_number: &'a str,
    pub bureau_code: &'a str,
    pub bureau_name: &'a str,
    pub team: &'a str,
    /// The crew member who viewed the summary.
    pub crew_member: &'a str,
    pub hospital: &'a Hospital,
    pub log: &'a Incident,
    /// 傷病者N of the incident.
    pub patient_number: u32,
    /// The crew's basis for viewing, passed on.
    pub consent: Consent,
    /// The provider's access-log entry that answered the crew.
    pub provider_access_id: i64,
    pub summary: &'a EmergencySummary,
    pub generated_at: DateTime<Utc>,
}

/// A UUID (version 8, name-based on SHA-256) for one resource of one handoff, so the same
/// handoff always has the same ids.
fn uuid(seed: &str, part: &str) -> String {
    let digest = Sha256::digest(format!("myna-kyukyu/fhir/v1\0{seed}\0{part}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Text as FHIR and XML allow it: control characters (which a typed note may carry) become
/// spaces.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn escape(s: &str) -> String {
    clean(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A generated narrative: one paragraph per line.
fn narrative(lines: &[String]) -> Value {
    let body: String = if lines.is_empty() {
        "<p>なし</p>".to_owned()
    } else {
        lines
            .iter()
            .map(|l| format!("<p>{}</p>", escape(l)))
            .collect()
    };
    json!({
        "status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{body}</div>"),
    })
}

fn loinc(code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": LOINC, "code": code, "display": display }] })
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A time as people in Japan read it, for the narratives (the data elements stay UTC).
fn jst(t: DateTime<Utc>) -> String {
    (t + chrono::Duration::hours(9))
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The document under construction: entries in order, and their references.
struct Doc {
    seed: String,
    entries: Vec<Value>,
}

impl Doc {
    fn full_url(&self, part: &str) -> String {
        format!("urn:uuid:{}", uuid(&self.seed, part))
    }

    /// Adds a resource with the id named by `part`; answers its reference.
    fn add(&mut self, part: &str, mut resource: Value) -> Value {
        let id = uuid(&self.seed, part);
        if let Some(obj) = resource.as_object_mut() {
            obj.insert("id".into(), Value::String(id.clone()));
        }
        let url = format!("urn:uuid:{id}");
        self.entries
            .push(json!({ "fullUrl": url.clone(), "resource": resource }));
        json!({ "reference": url })
    }
}

fn sex_code(s: Sex) -> &'static str {
    match s {
        Sex::Male => "male",
        Sex::Female => "female",
        Sex::NotApplicable => "other",
        Sex::Unknown => "unknown",
    }
}

/// A name as JP Core writes it: family and given split at the full-width space, the text
/// joined with a half-width one. None for an empty name (FHIR has no empty strings).
fn human_name(text: &str, representation: Option<&str>) -> Option<Value> {
    let text = clean(text);
    let mut parts = text.split(['\u{3000}', ' ']).filter(|p| !p.is_empty());
    let family = parts.next()?;
    let given: Vec<&str> = parts.collect();
    let joined = std::iter::once(family)
        .chain(given.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut name = json!({ "use": "official", "text": joined, "family": family });
    if !given.is_empty() {
        name["given"] = json!(given);
    }
    if let Some(r) = representation {
        name["extension"] = json!([{
            "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation",
            "valueCode": r,
        }]);
    }
    Some(name)
}

/// A string element, or none when it would be empty.
fn some_text(s: &str) -> Option<String> {
    let s = clean(s).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// A vital sign as an Observation's code and value.
fn vital_observation(sign: VitalSign, v: &Vitals) -> Option<(Value, Value)> {
    let quantity = |value: f64, unit: &str, code: &str| json!({ "valueQuantity": { "value": value, "unit": unit, "system": UCUM, "code": code } });
    Some(match sign {
        VitalSign::Jcs => (
            json!({
                "coding": [{ "system": VITAL_LOCAL, "code": "jcs", "display": "Japan Coma Scale" }],
                "text": "意識レベル（JCS）",
            }),
            json!({ "valueInteger": v.jcs?.score() }),
        ),
        VitalSign::RespiratoryRate => (
            loinc("9279-1", "Respiratory rate"),
            quantity(f64::from(v.respiratory_rate?), "/min", "/min"),
        ),
        VitalSign::Pulse => (
            loinc("8867-4", "Heart rate"),
            quantity(f64::from(v.pulse?), "/min", "/min"),
        ),
        // 2708-6 is the code the R4 oxygen-saturation profile requires; 59408-5 says how.
        VitalSign::Spo2 => (
            json!({ "coding": [
                { "system": LOINC, "code": "2708-6", "display": "Oxygen saturation in Arterial blood" },
                { "system": LOINC, "code": "59408-5", "display": "Oxygen saturation in Arterial blood by Pulse oximetry" },
            ] }),
            quantity(f64::from(v.spo2?), "%", "%"),
        ),
        VitalSign::Temperature => (
            loinc("8310-5", "Body temperature"),
            quantity(f64::from(v.temperature_tenths?) / 10.0, "Cel", "Cel"),
        ),
        VitalSign::BloodPressure => {
            let bp = v.blood_pressure?;
            let part = |code: &str, display: &str, value: u16| {
                json!({
                    "code": loinc(code, display),
                    "valueQuantity": { "value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]" },
                })
            };
            (
                loinc("85354-9", "Blood pressure panel with all children optional"),
                json!({ "component": [
                    part("8480-6", "Systolic blood pressure", bp.systolic),
                    part("8462-4", "Diastolic blood pressure", bp.diastolic),
                ] }),
            )
        }
    })
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// Why a section is empty: the claims were read and hold nothing (`nilknown`), or the
/// summary cannot carry such data at all (`unavailable`).
#[derive(Clone, Copy)]
enum Empty {
    NoneFound,
    NotInClaims,
}

fn section(title: &str, code: Value, lines: &[String], entries: Vec<Value>, empty: Empty) -> Value {
    let mut s = json!({ "title": title, "code": code, "text": narrative(lines) });
    if entries.is_empty() {
        let (code, display) = match empty {
            Empty::NoneFound => ("nilknown", "Nil Known"),
            Empty::NotInClaims => ("unavailable", "Unavailable"),
        };
        s["emptyReason"] = json!({ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
            "code": code,
            "display": display,
        }] });
    } else {
        s["entry"] = Value::Array(entries);
    }
    s
}

/// Builds the handoff document.
pub fn handoff_bundle(h: &HandoffInput<'_>) -> Value {
    let sm = h.summary;
    let mut doc = Doc {
        seed: format!(
            "{}/{}/{}/{}",
            h.bureau_code, h.incident_number, h.patient_number, h.provider_access_id
        ),
        entries: Vec::new(),
    };
    let composition_url = doc.full_url("composition");
    // The Composition is entry 0; it is filled in last, when every section's entries exist.
    doc.entries.push(Value::Null);

    let p = &sm.patient;
    let c = &p.coverage;
    let mut patient_resource = json!({
        "resourceType": "Patient",
        "identifier": [{
            "system": INSURANCE_MEMBER_ID,
            "value": format!("{}:{}:{}:{}", c.insurer_number, c.symbol, c.number, c.branch),
        }],
        "gender": sex_code(p.sex),
        "birthDate": date(p.birth_date),
    });
    let names: Vec<Value> = [
        human_name(&p.name, Some("IDE")),
        human_name(&p.name_kana, Some("SYL")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !names.is_empty() {
        patient_resource["name"] = Value::Array(names);
    }
    if let Some(a) = some_text(&p.address) {
        patient_resource["address"] = json!([{ "text": a }]);
    }
    let patient = doc.add("patient", patient_resource);
    let bureau = doc.add(
        "bureau",
        json!({
            "resourceType": "Organization",
            "identifier": [{ "system": BUREAU_ID, "value": h.bureau_code }],
            "name": h.bureau_name,
        }),
    );
    let hospital = doc.add(
        "hospital",
        json!({
            "resourceType": "Organization",
            "identifier": [{ "system": HOSPITAL_ID, "value": h.hospital.id }],
            "name": h.hospital.name,
            "address": [{ "district": h.hospital.ward, "city": "川崎市", "state": "神奈川県", "country": "JP" }],
        }),
    );

    // The transport: chief complaint, phases, destination.
    let (location, category, note) = h
        .log
        .call()
        .map_or(("", ComplaintCategory::Other, ""), |c| {
            (c.location, c.category, c.note)
        });
    let phases = h.log.phase_times();
    let at = |p: Phase| phases.iter().find(|(q, _)| *q == p).map(|(_, t)| *t);
    let mut transport_lines = vec![
        format!("主訴区分: {}", category.label_ja()),
        "時刻は日本時間".to_owned(),
    ];
    if !note.is_empty() {
        transport_lines.push(format!("通報内容: {note}"));
    }
    transport_lines.push(format!("発生場所: {location}"));
    transport_lines.push(format!("救急隊: {}（{}）", h.team, h.bureau_name));
    for (phase, t) in &phases {
        transport_lines.push(format!("{}: {}", phase.label_ja(), jst(*t)));
    }
    transport_lines.push(format!("搬送先: {}", h.hospital.name));
    if let Some((who, t)) = h.log.handoff() {
        transport_lines.push(format!("引継ぎ受領: {} {}", jst(t), who));
    }
    let mut period = json!({});
    if let Some(start) = at(Phase::Call) {
        period["start"] = json!(instant(start));
    }
    if let Some(end) = at(Phase::HospitalArrival) {
        period["end"] = json!(instant(end));
    }
    let transport = doc.add(
        "transport",
        json!({
            "resourceType": "Encounter",
            "identifier": [{ "system": INCIDENT_ID, "value": format!("{}/{}", h.bureau_code, h.incident_number) }],
            "status": if h.log.handoff().is_some() { "finished" } else { "in-progress" },
            "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "FLD", "display": "field" },
            "subject": patient.clone(),
            "period": period,
            "reasonCode": [{ "text": category.label_ja() }],
            "serviceProvider": bureau.clone(),
            "hospitalization": { "destination": hospital.clone() },
        }),
    );

    // Alerts.
    let mut alert_lines = Vec::new();
    let mut alert_refs = Vec::new();
    for (i, a) in sm.alerts.iter().enumerate() {
        let reversal: Vec<String> = a
            .evidence
            .iter()
            .filter_map(|e| e.reversal_ja.clone())
            .collect();
        let mut text = a.label_ja.clone();
        if !reversal.is_empty() {
            text.push_str(&format!("（拮抗薬: {}）", reversal.join("、")));
        }
        alert_lines.push(format!("{text}: {}", a.why_ja));
        alert_refs.push(doc.add(
            &format!("flag/{i}"),
            json!({
                "resourceType": "Flag",
                "status": "active",
                "category": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/flag-category",
                    "code": "clinical", "display": "Clinical",
                }] }],
                "code": {
                    "coding": [{ "system": ALERT_CLASS, "code": a.class, "display": a.label_en }],
                    "text": text,
                },
                "subject": patient.clone(),
            }),
        ));
    }

    // Medications, grouped by product as on the screens.
    let mut med_lines = Vec::new();
    let mut med_refs = Vec::new();
    for (i, g) in group_drugs(&sm.sections.dispensings, sm.as_of)
        .iter()
        .enumerate()
    {
        let mut coding =
            vec![json!({ "system": uri::YJ, "code": g.drug.yj.as_str(), "display": g.drug.name })];
        if let Some(rc) = &g.drug.receipt_code {
            coding.push(json!({ "system": uri::RECEIPT_DRUG, "code": rc.as_str() }));
        }
        med_lines.push(format!(
            "{}: {}（{}回処方、{}〜{}）",
            g.drug.name,
            if g.running { "服用中" } else { "終了" },
            g.dispensings,
            date(g.first),
            date(g.last)
        ));
        med_refs.push(doc.add(
            &format!("medication/{i}"),
            json!({
                "resourceType": "MedicationStatement",
                "status": if g.running { "active" } else { "completed" },
                "medicationCodeableConcept": { "coding": coding, "text": g.drug.name },
                "subject": patient.clone(),
                "effectivePeriod": { "start": date(g.first), "end": date(g.supplied_until) },
                "dateAsserted": instant(h.generated_at),
                "informationSource": bureau.clone(),
                "note": [{ "text": format!("{}回処方（レセプト・電子処方箋由来）", g.dispensings) }],
            }),
        ));
    }

    // Procedures: surgeries, claimed procedures, dialysis.
    let mut proc_lines = Vec::new();
    let mut proc_refs = Vec::new();
    for (i, pr) in sm
        .sections
        .surgeries
        .iter()
        .chain(&sm.sections.procedures)
        .enumerate()
    {
        proc_lines.push(format!(
            "{} {}（{}）",
            date(pr.service_date),
            pr.name,
            pr.institution.name
        ));
        proc_refs.push(doc.add(
            &format!("procedure/{i}"),
            json!({
                "resourceType": "Procedure",
                "status": "completed",
                "code": {
                    "coding": [{ "system": uri::RECEIPT_PROCEDURE, "code": pr.code, "display": pr.name }],
                    "text": pr.name,
                },
                "subject": patient.clone(),
                "performedDateTime": date(pr.service_date),
                "note": [{ "text": pr.institution.name }],
            }),
        ));
    }
    for (i, d) in sm.sections.dialysis.iter().enumerate() {
        proc_lines.push(format!(
            "{} 人工透析 {}回（{}）",
            date(d.service_date),
            d.sessions,
            d.institution.name
        ));
        proc_refs.push(doc.add(
            &format!("dialysis/{i}"),
            json!({
                "resourceType": "Procedure",
                "status": "completed",
                "code": { "text": "人工透析" },
                "subject": patient.clone(),
                "performedDateTime": date(d.service_date),
                "note": [{ "text": format!("{}回／月（{}）", d.sessions, d.institution.name) }],
            }),
        ));
    }

    // Vital signs, every record the crew took. They are the incident's (the tablet does not
    // say whose they are): with more than one patient they stay narrative, never another
    // patient's Observation.
    let mut vital_lines = Vec::new();
    let mut vital_refs = Vec::new();
    let single_patient = h.log.patients().len() <= 1;
    if !single_patient && !h.log.vitals().is_empty() {
        vital_lines.push(
            "この事案には複数の傷病者がいます。以下は事案全体の測定値で、どの傷病者のものかは記録されていません"
                .to_owned(),
        );
    }
    let mut vitals = h.log.vitals();
    vitals.sort_by_key(|(t, _)| *t);
    for (r, (t, v)) in vitals.iter().enumerate() {
        let mut shown = Vec::new();
        for sign in VitalSign::ALL {
            let Some((code, value)) = vital_observation(sign, v) else {
                continue;
            };
            shown.push(format!(
                "{} {}{}",
                sign.label_ja(),
                v.shown(sign).unwrap_or_default(),
                Vitals::unit(sign)
            ));
            let mut obs = json!({
                "resourceType": "Observation",
                "status": "final",
                "category": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs", "display": "Vital Signs",
                }] }],
                "code": code,
                "subject": patient.clone(),
                "encounter": transport.clone(),
                "effectiveDateTime": instant(*t),
                "performer": [bureau.clone()],
            });
            merge(&mut obs, value);
            if single_patient {
                vital_refs.push(doc.add(&format!("vital/{r}/{}", sign.as_str()), obs));
            }
        }
        vital_lines.push(format!("{} {}", jst(*t), shown.join("、")));
    }

    // Visit history: every visit, the narrative grouped as on the screens.
    let groups = group_visits(&sm.sections.visits, sm.as_of);
    let visit_lines: Vec<String> = groups
        .iter()
        .map(|g| {
            format!(
                "{}{} {}: {}回、最終 {}",
                if g.kakaritsuke {
                    "【かかりつけ】"
                } else {
                    ""
                },
                g.institution.name,
                g.department,
                g.visits,
                date(g.last)
            )
        })
        .collect();
    let mut visit_refs = Vec::new();
    for (i, v) in sm.sections.visits.iter().enumerate() {
        let (class, display) = match v.setting {
            CareSetting::Inpatient => ("IMP", "inpatient encounter"),
            CareSetting::Outpatient => ("AMB", "ambulatory"),
        };
        visit_refs.push(doc.add(
            &format!("visit/{i}"),
            json!({
                "resourceType": "Encounter",
                "status": "finished",
                "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class, "display": display },
                "serviceType": { "text": some_text(&v.department).unwrap_or_else(|| "診療科不明".to_owned()) },
                "subject": patient.clone(),
                "period": { "start": date(v.service_date), "end": date(v.service_date) },
                "serviceProvider": {
                    "identifier": { "system": uri::MEDICAL_INSTITUTION_NO, "value": v.institution.code },
                    "display": v.institution.name,
                },
            }),
        ));
    }

    let basis = match h.consent.reason() {
        None => "urn:myna-kyukyu:basis:consent".to_owned(),
        Some(r) => format!("urn:myna-kyukyu:basis:exception:{}", r.as_str()),
    };
    let basis_ja = match h.consent.reason() {
        None => "本人の同意".to_owned(),
        Some(r) => format!("同意なし閲覧（{}）", r.label_ja()),
    };
    let mut targets: Vec<Value> = vec![json!({ "reference": composition_url.clone() })];
    targets.push(patient.clone());
    targets.extend(
        alert_refs
            .iter()
            .chain(&med_refs)
            .chain(&proc_refs)
            .chain(&visit_refs)
            .cloned(),
    );
    doc.add(
        "provenance",
        json!({
            "resourceType": "Provenance",
            "target": targets,
            "recorded": instant(h.generated_at),
            "policy": [basis],
            "reason": [{ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                "code": "ETREAT", "display": "Emergency Treatment",
            }] }],
            "agent": [
                {
                    "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author", "display": "Author" }] },
                    "who": bureau.clone(),
                },
                {
                    "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "performer", "display": "Performer" }] },
                    "who": { "display": some_text(&format!("{} {}", h.team, h.crew_member)).unwrap_or_else(|| "救急隊".to_owned()) },
                    "onBehalfOf": bureau.clone(),
                },
            ],
            "entity": [{
                "role": "source",
                "what": {
                    "identifier": { "system": PROVIDER_ACCESS, "value": h.provider_access_id.to_string() },
                    "display": format!(
                        "救急用サマリー（{}、基準日 {}、警告表 {}、閲覧根拠: {basis_ja}）",
                        if sm.view.as_str() == "full" { "全量版" } else { "通常版" },
                        date(sm.as_of),
                        sm.alert_table_version
                    ),
                },
            }],
        }),
    );

    let sections = vec![
        section(
            "服薬（薬剤）",
            loinc("10160-0", "History of Medication use Narrative"),
            &med_lines,
            med_refs,
            Empty::NoneFound,
        ),
        section(
            "アレルギー",
            loinc("48765-2", "Allergies and adverse reactions Document"),
            &["レセプト由来の救急用サマリーにはアレルギー情報が含まれません".to_owned()],
            Vec::new(),
            Empty::NotInClaims,
        ),
        section(
            "傷病名",
            loinc("11450-4", "Problem list - Reported"),
            &["レセプト由来の救急用サマリーには傷病名が含まれません".to_owned()],
            Vec::new(),
            Empty::NotInClaims,
        ),
        section(
            "警告",
            loinc("104605-1", "Alert"),
            &alert_lines,
            alert_refs,
            Empty::NoneFound,
        ),
        section(
            "手術・処置・透析",
            loinc("47519-4", "History of Procedures Document"),
            &proc_lines,
            proc_refs,
            Empty::NoneFound,
        ),
        section(
            "バイタルサイン（救急隊測定）",
            loinc("8716-3", "Vital signs"),
            &vital_lines,
            vital_refs,
            Empty::NoneFound,
        ),
        section(
            "受診歴",
            loinc(
                "46240-8",
                "History of Hospitalizations+Outpatient visits Narrative",
            ),
            &visit_lines,
            visit_refs,
            Empty::NoneFound,
        ),
        section(
            "救急搬送（主訴・経過）",
            loinc("42349-1", "Reason for referral (narrative)"),
            &transport_lines,
            vec![transport],
            Empty::NoneFound,
        ),
    ];
    let mut event_period = json!({});
    if let Some(start) = at(Phase::Call) {
        event_period["start"] = json!(instant(start));
    }
    event_period["end"] = json!(instant(h.generated_at));
    let composition = json!({
        "resourceType": "Composition",
        "id": uuid(&doc.seed, "composition"),
        "identifier": { "system": "urn:ietf:rfc:3986", "value": composition_url.clone() },
        "status": "final",
        "type": loinc("60591-5", "Patient summary Document"),
        "subject": patient,
        "date": instant(h.generated_at),
        "author": [bureau.clone()],
        "title": format!("救急搬送 引継ぎサマリー（{} 傷病者{}）", h.incident_number, h.patient_number),
        "confidentiality": "R",
        "custodian": bureau,
        "event": [{ "period": event_period }],
        "section": sections,
    });
    if let Some(first) = doc.entries.first_mut() {
        *first = json!({ "fullUrl": composition_url, "resource": composition });
    }
    // A document's identifier changes with its content (vitals, the receipt); the
    // Composition's stays the handoff's.
    let content = serde_json::to_string(&doc.entries).unwrap_or_default();
    let version = hex::encode(Sha256::digest(content.as_bytes()));
    let bundle_id = uuid(&doc.seed, &format!("bundle/{version}"));
    json!({
        "resourceType": "Bundle",
        "id": bundle_id,
        "identifier": { "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{bundle_id}") },
        "type": "document",
        "timestamp": instant(h.generated_at),
        "entry": doc.entries,
    })
}
