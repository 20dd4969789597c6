//! A whole incident handed off, for the tests and the benchmarks of the documents built on it
//! (feature `sample`): called, assigned, on scene, patient checked, consented and viewed, two
//! vitals records, accepted by 川崎市立川崎病院, taken there and signed for.

use crate::{HandoffInput, handoff_bundle};
use chrono::{DateTime, Duration, Utc};
use myna_domain::access::Consent;
use myna_domain::hospitals::Registry;
use myna_domain::incident::{
    Actor, ComplaintCategory, Event, EventKind, Incident, IncidentError, InquiryResult, Phase,
};
use myna_domain::patient::PatientKey;
use myna_domain::summary::{EmergencySummary, View};
use myna_domain::vitals::{BloodPressure, Jcs, Vitals};
use serde_json::Value;

/// The sample's call time.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_482_000, 0).unwrap_or_default()
}

pub const HOSPITAL: &str = "kawasaki-municipal";

fn push(log: &mut Incident, kind: EventKind, actor: Actor) -> Result<(), IncidentError> {
    log.check(&kind, &actor)?;
    let seq = u32::try_from(log.events.len()).unwrap_or(u32::MAX) + 1;
    log.events.push(Event {
        seq,
        kind,
        at: t0() + Duration::minutes(i64::from(seq)),
        device_at: None,
        idempotency_key: format!("k{seq}"),
        actor,
    });
    Ok(())
}

/// The incident of `patient`, from the call to the signed handoff.
pub fn handed_off_incident(patient: &PatientKey) -> Result<Incident, IncidentError> {
    let desk = Actor::Dispatcher { account: 1 };
    let crew = Actor::Crew {
        account: 2,
        terminal: 3,
        team: 4,
    };
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
    )?;
    push(&mut log, EventKind::Assigned { team: 4 }, desk)?;
    for phase in [Phase::Arrival, Phase::Contact] {
        push(&mut log, EventKind::Phase { phase }, crew.clone())?;
    }
    let p = patient.clone();
    push(
        &mut log,
        EventKind::IdentityConfirmed { patient: p.clone() },
        crew.clone(),
    )?;
    push(
        &mut log,
        EventKind::Consent {
            patient: p.clone(),
            consent: Consent::Obtained,
        },
        crew.clone(),
    )?;
    push(
        &mut log,
        EventKind::SummaryViewed {
            patient: p.clone(),
            view: View::Summary,
        },
        crew.clone(),
    )?;
    let first = Vitals {
        jcs: Jcs::new(10),
        pulse: Some(112),
        blood_pressure: Some(BloodPressure {
            systolic: 182,
            diastolic: 104,
        }),
        spo2: Some(94),
        respiratory_rate: Some(24),
        temperature_tenths: Some(368),
    };
    let second = Vitals {
        pulse: Some(98),
        ..Vitals::default()
    };
    for vitals in [first, second] {
        push(&mut log, EventKind::Vitals { vitals }, crew.clone())?;
    }
    push(
        &mut log,
        EventKind::Inquiry {
            hospital: HOSPITAL.into(),
            result: InquiryResult::Accepted,
            reason: None,
        },
        crew.clone(),
    )?;
    push(
        &mut log,
        EventKind::Destination {
            hospital: HOSPITAL.into(),
            patients: vec![p],
        },
        crew.clone(),
    )?;
    for phase in [Phase::InVehicle, Phase::Departure, Phase::HospitalArrival] {
        push(&mut log, EventKind::Phase { phase }, crew.clone())?;
    }
    push(
        &mut log,
        EventKind::Handoff {
            hospital: HOSPITAL.into(),
            received_by: "救急科 山田".into(),
        },
        Actor::Hospital {
            account: 9,
            hospital: HOSPITAL.into(),
        },
    )?;
    Ok(log)
}

/// The handoff document of the sample incident for `summary`.
pub fn sample_bundle(
    log: &Incident,
    summary: &EmergencySummary,
    consent: Consent,
) -> Result<Value, String> {
    let registry = Registry::shared().map_err(|e| e.to_string())?;
    let hospital = registry
        .get(HOSPITAL)
        .ok_or_else(|| format!("{HOSPITAL} is not in the registry"))?;
    Ok(handoff_bundle(&HandoffInput {
        incident_number: "20261124-0001",
        bureau_code: "kawasaki-fd",
        bureau_name: "川崎市消防局",
        team: "中原救急1",
        crew_member: "crew10",
        hospital,
        log,
        patient_number: 1,
        consent,
        provider_access_id: 77,
        summary,
        generated_at: t0() + Duration::minutes(40),
    }))
}
