//! The JSON the terminal and `ems` exchange. The terminal depends on these types, so a change
//! here is a change of both sides at once.

use myna_domain::access::Consent;
use myna_domain::incident::{EventKind, Incident, MynaOutcome, Phase};
use myna_store::ems::{IncidentRecord, Team};
use serde::{Deserialize, Serialize};

/// Header carrying the signed-in crew member's session on terminal requests (the terminal's
/// own credential is the bearer token).
pub const CREW_SESSION_HEADER: &str = "x-crew-session";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    pub login: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub session: String,
    pub crew_login: String,
    pub crew_name: String,
    pub expires_ms: i64,
    pub terminal: TerminalInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TerminalInfo {
    pub terminal_id: i64,
    pub label: String,
    pub bureau: String,
    pub team_id: i64,
    pub team_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseTime {
    pub phase: Phase,
    pub at_ms: i64,
    /// Set when the time is the device's (an event queued offline).
    pub from_device: bool,
}

/// An incident as the terminal and the dispatcher see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: i64,
    pub number: String,
    pub location: String,
    pub category: String,
    pub category_ja: String,
    pub note: String,
    pub card_prep_requested: bool,
    pub team_id: Option<i64>,
    pub team_name: Option<String>,
    pub phases: Vec<PhaseTime>,
    pub identity_confirmed: bool,
    pub consent: Option<Consent>,
    pub outcome: Option<MynaOutcome>,
    pub viewed: bool,
    pub closed: bool,
    pub events: u32,
}

impl IncidentView {
    pub fn new(r: &IncidentRecord, teams: &[Team]) -> Self {
        let log: &Incident = &r.log;
        let (location, category, note, card_prep_requested) = match log.events.first() {
            Some(e) => match &e.kind {
                EventKind::Created {
                    location,
                    category,
                    note,
                    card_prep_requested,
                } => (
                    location.clone(),
                    *category,
                    note.clone(),
                    *card_prep_requested,
                ),
                _ => (
                    String::new(),
                    myna_domain::incident::ComplaintCategory::Other,
                    String::new(),
                    false,
                ),
            },
            None => (
                String::new(),
                myna_domain::incident::ComplaintCategory::Other,
                String::new(),
                false,
            ),
        };
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
        IncidentView {
            id: r.id,
            number: r.number.clone(),
            location,
            category: serde_json::to_value(category)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            category_ja: category.label_ja().to_owned(),
            note,
            card_prep_requested,
            team_id,
            team_name: team_id
                .and_then(|t| teams.iter().find(|x| x.id == t))
                .map(|t| t.name.clone()),
            phases,
            identity_confirmed: log
                .events
                .iter()
                .any(|e| e.kind == EventKind::IdentityConfirmed),
            consent: log.consent(),
            outcome: log.outcome(),
            viewed: log
                .events
                .iter()
                .any(|e| matches!(e.kind, EventKind::SummaryViewed { .. })),
            closed: log.is_closed(),
            events: u32::try_from(log.events.len()).unwrap_or(u32::MAX),
        }
    }

    pub fn phase_at(&self, phase: Phase) -> Option<&PhaseTime> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

/// A crew event sent by a terminal; replays with the same key are answered, not appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    pub idempotency_key: String,
    /// The device's clock when the crew tapped, in ms since the epoch. Kept beside the server's
    /// time of arrival unless it is ahead of the server's clock (a wrong tablet clock).
    pub device_at_ms: Option<i64>,
    pub event: EventKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventAck {
    pub seq: u32,
    pub at_ms: i64,
    pub duplicate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryBody {
    /// DER of the card's JPKI user-authentication certificate, standard base64.
    pub certificate: String,
    /// `summary` (default) or `full`.
    #[serde(default)]
    pub view: Option<String>,
}
