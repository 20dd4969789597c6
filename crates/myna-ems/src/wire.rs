//! The terminal API's JSON lives in `myna_wire::terminal`; this module builds its views from
//! ems's records.

pub use myna_domain::hospitals::hospital_name;
use myna_domain::incident::{ComplaintCategory, EventKind, Incident, Phase};
use myna_store::ems::{IncidentRecord, Team};
pub use myna_wire::terminal::*;

/// An incident as the terminal and the desk see it. Patients are listed with what the assigned
/// team recorded for them.
pub fn incident_view(
    r: &IncidentRecord,
    teams: &[Team],
    now: chrono::DateTime<chrono::Utc>,
) -> IncidentView {
    let log: &Incident = &r.log;
    let (location, category, note, card_prep_requested) = log.call().map_or_else(
        || {
            (
                String::new(),
                ComplaintCategory::Other,
                String::new(),
                false,
            )
        },
        |c| {
            (
                c.location.to_owned(),
                c.category,
                c.note.to_owned(),
                c.card_prep_requested,
            )
        },
    );
    let team_id = log.assigned_team();
    let phases = log
        .events
        .iter()
        .filter_map(|e| {
            let phase = match e.kind {
                EventKind::Created { .. } => Phase::Call,
                EventKind::Assigned { .. } => Phase::Dispatch,
                EventKind::Phase { phase } => phase,
                _ => return None,
            };
            Some((phase, e))
        })
        .fold(Vec::<PhaseTime>::new(), |mut acc, (phase, e)| {
            if !acc.iter().any(|p| p.phase == phase) {
                acc.push(PhaseTime {
                    phase,
                    at_ms: e.device_at.unwrap_or(e.at).timestamp_millis(),
                    from_device: e.device_at.is_some(),
                });
            }
            acc
        });
    let patients = log
        .patients()
        .into_iter()
        .zip(1u32..)
        .map(|(key, number)| {
            let status = team_id
                .map(|t| log.patient_status(t, key))
                .unwrap_or_default();
            PatientView {
                number,
                identity_confirmed: status.identity_confirmed,
                consent: status.consent,
                withdrawn: status.withdrawn,
                refused: status.refused,
                viewed: status.viewed,
            }
        })
        .collect();
    IncidentView {
        id: r.id,
        number: r.number.clone(),
        location,
        category,
        category_ja: category.label_ja().to_owned(),
        note,
        card_prep_requested,
        team_id,
        team_name: team_id
            .and_then(|t| teams.iter().find(|x| x.id == t))
            .map(|t| t.name.clone()),
        phases,
        patients,
        outcome: log.outcome(),
        viewed: log.viewed(),
        inquiries: log
            .inquiries()
            .into_iter()
            .map(|i| InquiryView {
                hospital_name: hospital_name(&i.hospital),
                hospital: i.hospital,
                result: i.result,
                reason: i.reason,
                at_ms: i.at.timestamp_millis(),
            })
            .collect(),
        difficult_transport: log.difficult_transport(now),
        destination: log.destination().map(|h| DestinationView {
            hospital_name: hospital_name(&h),
            hospital: h,
            at_ms: log.destination_at().map_or(0, |t| t.timestamp_millis()),
            patients: log
                .destination_patients()
                .iter()
                .filter_map(|p| log.patient_number(p))
                .collect(),
        }),
        vitals: log.latest_vitals().map(|(at, vitals)| VitalsView {
            at_ms: at.timestamp_millis(),
            vitals,
            records: u32::try_from(log.vitals().len()).unwrap_or(u32::MAX),
        }),
        handoff: log.handoff().map(|(received_by, at)| HandoffView {
            received_by,
            at_ms: at.timestamp_millis(),
        }),
        closed: log.is_closed(),
        events: u32::try_from(log.events.len()).unwrap_or(u32::MAX),
    }
}
