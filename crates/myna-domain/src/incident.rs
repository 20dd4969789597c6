//! 救急事案 (incident): the append-only event log from the 119 call to hospital arrival, and
//! the rules the `ems` service enforces on it. Pure: the server's clock is an argument.
//!
//! An incident is the fold of its events. Every event carries the server's timestamp, the
//! device's own timestamp when it was queued offline, and an idempotency key, so a terminal's
//! outbox can resend without creating duplicates.

use crate::access::Consent;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The FDMA time phases of an ambulance call, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// 覚知 (the 119 call is received).
    Call,
    /// 出場指令 (a team is dispatched).
    Dispatch,
    /// 現場到着.
    Arrival,
    /// 傷病者接触.
    Contact,
    /// 車内収容.
    InVehicle,
    /// 現場出発.
    Departure,
    /// 病院到着.
    HospitalArrival,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Call,
        Phase::Dispatch,
        Phase::Arrival,
        Phase::Contact,
        Phase::InVehicle,
        Phase::Departure,
        Phase::HospitalArrival,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            Phase::Call => "覚知",
            Phase::Dispatch => "指令",
            Phase::Arrival => "現着",
            Phase::Contact => "接触",
            Phase::InVehicle => "車内収容",
            Phase::Departure => "現発",
            Phase::HospitalArrival => "病着",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Call => "call",
            Phase::Dispatch => "dispatch",
            Phase::Arrival => "arrival",
            Phase::Contact => "contact",
            Phase::InVehicle => "in_vehicle",
            Phase::Departure => "departure",
            Phase::HospitalArrival => "hospital_arrival",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// 主訴区分 (chief-complaint category), as the dispatcher records it from the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintCategory {
    CardiacArrest,
    Unconscious,
    StrokeSuspected,
    ChestPain,
    Dyspnea,
    AbdominalPain,
    Trauma,
    Fever,
    Other,
}

impl ComplaintCategory {
    pub const ALL: [ComplaintCategory; 9] = [
        ComplaintCategory::CardiacArrest,
        ComplaintCategory::Unconscious,
        ComplaintCategory::StrokeSuspected,
        ComplaintCategory::ChestPain,
        ComplaintCategory::Dyspnea,
        ComplaintCategory::AbdominalPain,
        ComplaintCategory::Trauma,
        ComplaintCategory::Fever,
        ComplaintCategory::Other,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            ComplaintCategory::CardiacArrest => "心肺停止",
            ComplaintCategory::Unconscious => "意識障害",
            ComplaintCategory::StrokeSuspected => "脳卒中疑い",
            ComplaintCategory::ChestPain => "胸痛",
            ComplaintCategory::Dyspnea => "呼吸困難",
            ComplaintCategory::AbdominalPain => "腹痛",
            ComplaintCategory::Trauma => "外傷",
            ComplaintCategory::Fever => "発熱",
            ComplaintCategory::Other => "その他",
        }
    }
}

/// How the マイナ救急 step of an incident ended: the FDMA funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MynaOutcome {
    /// The summary was viewed.
    Viewed,
    /// Not attempted: the patient's urgency did not allow it.
    NotAttemptedUrgency,
    /// Not attempted: the environment did not allow it (rain, traffic, crowd, …).
    NotAttemptedEnvironment,
    /// The patient had no card with them.
    NoCard,
    /// The card is not registered for health insurance (保険証利用登録なし).
    NotRegistered,
    ConsentRefused,
    /// The face did not match the card, or could not be checked.
    IdentityNotConfirmed,
    ReaderFailure,
    NetworkFailure,
    /// The service found no insured person for the card.
    PersonNotFound,
}

impl MynaOutcome {
    pub const ALL: [MynaOutcome; 10] = [
        MynaOutcome::Viewed,
        MynaOutcome::NotAttemptedUrgency,
        MynaOutcome::NotAttemptedEnvironment,
        MynaOutcome::NoCard,
        MynaOutcome::NotRegistered,
        MynaOutcome::ConsentRefused,
        MynaOutcome::IdentityNotConfirmed,
        MynaOutcome::ReaderFailure,
        MynaOutcome::NetworkFailure,
        MynaOutcome::PersonNotFound,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            MynaOutcome::Viewed => "閲覧",
            MynaOutcome::NotAttemptedUrgency => "未実施（緊急度）",
            MynaOutcome::NotAttemptedEnvironment => "未実施（現場環境）",
            MynaOutcome::NoCard => "カード不所持",
            MynaOutcome::NotRegistered => "保険証利用登録なし",
            MynaOutcome::ConsentRefused => "同意拒否",
            MynaOutcome::IdentityNotConfirmed => "本人確認不可",
            MynaOutcome::ReaderFailure => "カード読取不可",
            MynaOutcome::NetworkFailure => "通信不良",
            MynaOutcome::PersonNotFound => "該当者なし",
        }
    }
}

/// What happened. One variant per kind of event the log holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The dispatcher creates the incident from the 119 call (phase 覚知).
    Created {
        location: String,
        category: ComplaintCategory,
        note: String,
        /// The caller was asked to have the マイナ保険証 ready.
        card_prep_requested: bool,
    },
    /// A team is assigned (phase 指令).
    Assigned {
        team: i64,
    },
    /// A crew phase tap.
    Phase {
        phase: Phase,
    },
    /// The crew confirmed the face matches the card.
    IdentityConfirmed,
    /// Consent, or the no-consent exception with its reason.
    Consent {
        consent: Consent,
    },
    /// A summary was viewed through the provider (the serial identifies the card read).
    SummaryViewed {
        serial: String,
    },
    /// How the マイナ救急 step ended.
    Outcome {
        outcome: MynaOutcome,
    },
    Closed,
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Actor {
    Dispatcher { account: i64 },
    Crew { account: i64, terminal: i64 },
}

/// One event as committed: the server assigns `seq` and `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u32,
    pub kind: EventKind,
    /// Server time of commit.
    pub at: DateTime<Utc>,
    /// The device's time when the event was made, if it was queued offline.
    pub device_at: Option<DateTime<Utc>>,
    pub idempotency_key: String,
    pub actor: Actor,
}

/// Why an event or a summary request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    #[error("the incident is closed")]
    Closed,
    #[error("the first event must create the incident, and only once")]
    NotCreatedFirst,
    #[error("no team is assigned to the incident")]
    NotAssigned,
    #[error("the incident is assigned to another team")]
    WrongTeam,
    #[error("phase {0:?} was already recorded")]
    PhaseRepeated(Phase),
    #[error("phase {new:?} cannot follow {latest:?}")]
    PhaseOutOfOrder { latest: Phase, new: Phase },
    #[error("phase {0:?} is recorded by the dispatcher, not a crew tap")]
    NotACrewPhase(Phase),
    #[error("consent or the exception must be recorded before the summary is requested")]
    NoConsent,
    #[error("the face check must be confirmed before the summary is requested")]
    IdentityNotConfirmed,
    #[error("the incident's viewing window has passed")]
    WindowPassed,
    #[error("the outcome was already recorded")]
    OutcomeRepeated,
}

/// How long after the call a summary may be requested (covers long transports; a bureau may
/// configure its own).
pub const DEFAULT_VIEW_WINDOW: Duration = Duration::hours(6);

/// An incident: its events and the state they fold to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub events: Vec<Event>,
}

impl Incident {
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.events.first().map(|e| e.at)
    }

    pub fn assigned_team(&self) -> Option<i64> {
        self.events.iter().rev().find_map(|e| match e.kind {
            EventKind::Assigned { team } => Some(team),
            _ => None,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.events.iter().any(|e| e.kind == EventKind::Closed)
    }

    /// When each phase was recorded (server time; 覚知 is creation, 指令 the first assignment).
    pub fn phase_times(&self) -> Vec<(Phase, DateTime<Utc>)> {
        let mut out: Vec<(Phase, DateTime<Utc>)> = Vec::new();
        for e in &self.events {
            let phase = match e.kind {
                EventKind::Created { .. } => Some(Phase::Call),
                EventKind::Assigned { .. } => Some(Phase::Dispatch),
                EventKind::Phase { phase } => Some(phase),
                _ => None,
            };
            if let Some(p) = phase
                && !out.iter().any(|(q, _)| *q == p)
            {
                out.push((p, e.device_at.unwrap_or(e.at)));
            }
        }
        out
    }

    fn latest_phase(&self) -> Option<Phase> {
        self.phase_times().iter().map(|(p, _)| *p).max()
    }

    pub fn consent(&self) -> Option<Consent> {
        self.events.iter().rev().find_map(|e| match e.kind {
            EventKind::Consent { consent } => Some(consent),
            _ => None,
        })
    }

    pub fn outcome(&self) -> Option<MynaOutcome> {
        self.events.iter().find_map(|e| match e.kind {
            EventKind::Outcome { outcome } => Some(outcome),
            _ => None,
        })
    }

    fn identity_confirmed(&self) -> bool {
        self.events
            .iter()
            .any(|e| e.kind == EventKind::IdentityConfirmed)
    }

    /// The event with this idempotency key, if it was committed already: a resend answers it
    /// again instead of appending a duplicate.
    pub fn by_key(&self, key: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.idempotency_key == key)
    }

    /// Checks that `kind` may be appended now. Does not append: the store commits, then the
    /// caller pushes the committed event.
    pub fn check(&self, kind: &EventKind) -> Result<(), IncidentError> {
        let created = !self.events.is_empty();
        match kind {
            EventKind::Created { .. } if created => return Err(IncidentError::NotCreatedFirst),
            EventKind::Created { .. } => return Ok(()),
            _ if !created => return Err(IncidentError::NotCreatedFirst),
            _ => {}
        }
        if self.is_closed() {
            return Err(IncidentError::Closed);
        }
        match kind {
            EventKind::Phase { phase } => {
                if matches!(phase, Phase::Call | Phase::Dispatch) {
                    return Err(IncidentError::NotACrewPhase(*phase));
                }
                if self.assigned_team().is_none() {
                    return Err(IncidentError::NotAssigned);
                }
                if self.phase_times().iter().any(|(p, _)| p == phase) {
                    return Err(IncidentError::PhaseRepeated(*phase));
                }
                if let Some(latest) = self.latest_phase()
                    && *phase < latest
                {
                    return Err(IncidentError::PhaseOutOfOrder {
                        latest,
                        new: *phase,
                    });
                }
                Ok(())
            }
            EventKind::Outcome { .. } if self.outcome().is_some() => {
                Err(IncidentError::OutcomeRepeated)
            }
            _ => Ok(()),
        }
    }

    /// Whether the crew of `team` may request the summary now: the incident is open, assigned
    /// to that team, within its window, the face was checked and consent or the exception is
    /// recorded.
    pub fn may_view(
        &self,
        team: i64,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<Consent, IncidentError> {
        let created = self.created_at().ok_or(IncidentError::NotCreatedFirst)?;
        if self.is_closed() {
            return Err(IncidentError::Closed);
        }
        match self.assigned_team() {
            None => return Err(IncidentError::NotAssigned),
            Some(t) if t != team => return Err(IncidentError::WrongTeam),
            Some(_) => {}
        }
        if now > created + window {
            return Err(IncidentError::WindowPassed);
        }
        if !self.identity_confirmed() {
            return Err(IncidentError::IdentityNotConfirmed);
        }
        self.consent().ok_or(IncidentError::NoConsent)
    }
}

/// 閲覧記録 (view record): one entry of the `ems` service's own audit of summary views, kept
/// in a hash chain beside the provider's access log. It names who looked, for which incident,
/// on what legal basis, and the provider's access-log entry that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// Server time, milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    pub bureau: String,
    pub incident_number: String,
    pub team: String,
    /// The signed-in crew member's login.
    pub crew_member: String,
    pub terminal: i64,
    /// Hex serial of the card's authentication certificate.
    pub cert_serial: String,
    pub consent: Consent,
    pub view: crate::summary::View,
    /// The provider's access-log sequence number for this view.
    pub provider_access_id: i64,
}

impl crate::access::Linked for ViewRecord {
    const LOG: &'static [u8] = b"myna-kyukyu/ems-view-log/v1";
    fn feed(&self, field: &mut dyn FnMut(&[u8])) {
        field(&self.at_ms.to_be_bytes());
        field(self.bureau.as_bytes());
        field(self.incident_number.as_bytes());
        field(self.team.as_bytes());
        field(self.crew_member.as_bytes());
        field(&self.terminal.to_be_bytes());
        field(self.cert_serial.as_bytes());
        field(self.consent.kind_str().as_bytes());
        field(
            self.consent
                .reason()
                .map_or("", crate::access::ExceptionReason::as_str)
                .as_bytes(),
        );
        field(self.view.as_str().as_bytes());
        field(&self.provider_access_id.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::access::ExceptionReason;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    struct Log(Incident);

    impl Log {
        fn push(&mut self, kind: EventKind, minutes: i64) -> Result<(), IncidentError> {
            self.0.check(&kind)?;
            let seq = u32::try_from(self.0.events.len()).unwrap() + 1;
            self.0.events.push(Event {
                seq,
                kind,
                at: t0() + Duration::minutes(minutes),
                device_at: None,
                idempotency_key: format!("k{seq}"),
                actor: Actor::Dispatcher { account: 1 },
            });
            Ok(())
        }
    }

    fn created() -> Log {
        let mut log = Log(Incident::default());
        log.push(
            EventKind::Created {
                location: "川崎市中原区小杉町3-1".into(),
                category: ComplaintCategory::ChestPain,
                note: "70代男性 胸痛".into(),
                card_prep_requested: true,
            },
            0,
        )
        .unwrap();
        log
    }

    #[test]
    fn phases_follow_the_fdma_order_once_each() {
        let mut log = created();
        assert_eq!(
            log.push(
                EventKind::Phase {
                    phase: Phase::Arrival
                },
                1
            ),
            Err(IncidentError::NotAssigned)
        );
        log.push(EventKind::Assigned { team: 7 }, 1).unwrap();
        log.push(
            EventKind::Phase {
                phase: Phase::Arrival,
            },
            8,
        )
        .unwrap();
        assert_eq!(
            log.push(
                EventKind::Phase {
                    phase: Phase::Arrival
                },
                9
            ),
            Err(IncidentError::PhaseRepeated(Phase::Arrival))
        );
        // Skipping is allowed (contact can be implicit), going back is not.
        log.push(
            EventKind::Phase {
                phase: Phase::InVehicle,
            },
            12,
        )
        .unwrap();
        assert_eq!(
            log.push(
                EventKind::Phase {
                    phase: Phase::Contact
                },
                13
            ),
            Err(IncidentError::PhaseOutOfOrder {
                latest: Phase::InVehicle,
                new: Phase::Contact
            })
        );
        assert_eq!(
            log.push(
                EventKind::Phase {
                    phase: Phase::Dispatch
                },
                13
            ),
            Err(IncidentError::NotACrewPhase(Phase::Dispatch))
        );
        let phases: Vec<Phase> = log.0.phase_times().iter().map(|(p, _)| *p).collect();
        assert_eq!(
            phases,
            [
                Phase::Call,
                Phase::Dispatch,
                Phase::Arrival,
                Phase::InVehicle
            ]
        );
    }

    #[test]
    fn a_summary_needs_the_right_team_the_face_check_and_consent_within_the_window() {
        let mut log = created();
        let now = t0() + Duration::minutes(15);
        assert_eq!(
            log.0.may_view(7, now, DEFAULT_VIEW_WINDOW),
            Err(IncidentError::NotAssigned)
        );
        log.push(EventKind::Assigned { team: 7 }, 1).unwrap();
        assert_eq!(
            log.0.may_view(8, now, DEFAULT_VIEW_WINDOW),
            Err(IncidentError::WrongTeam)
        );
        assert_eq!(
            log.0.may_view(7, now, DEFAULT_VIEW_WINDOW),
            Err(IncidentError::IdentityNotConfirmed)
        );
        log.push(EventKind::IdentityConfirmed, 10).unwrap();
        assert_eq!(
            log.0.may_view(7, now, DEFAULT_VIEW_WINDOW),
            Err(IncidentError::NoConsent)
        );
        let exception = Consent::Exception {
            reason: ExceptionReason::Unconscious,
        };
        log.push(EventKind::Consent { consent: exception }, 11)
            .unwrap();
        assert_eq!(log.0.may_view(7, now, DEFAULT_VIEW_WINDOW), Ok(exception));
        assert_eq!(
            log.0
                .may_view(7, t0() + Duration::hours(7), DEFAULT_VIEW_WINDOW),
            Err(IncidentError::WindowPassed)
        );
        log.push(EventKind::Closed, 60).unwrap();
        assert_eq!(
            log.0.may_view(7, now, DEFAULT_VIEW_WINDOW),
            Err(IncidentError::Closed)
        );
        assert_eq!(
            log.push(
                EventKind::Phase {
                    phase: Phase::Departure
                },
                61
            ),
            Err(IncidentError::Closed)
        );
    }

    #[test]
    fn the_first_event_creates_and_the_outcome_is_recorded_once() {
        let mut empty = Log(Incident::default());
        assert_eq!(
            empty.push(EventKind::Closed, 0),
            Err(IncidentError::NotCreatedFirst)
        );
        let mut log = created();
        let again = log.0.events[0].kind.clone();
        assert_eq!(log.push(again, 1), Err(IncidentError::NotCreatedFirst));
        log.push(
            EventKind::Outcome {
                outcome: MynaOutcome::NoCard,
            },
            5,
        )
        .unwrap();
        assert_eq!(
            log.push(
                EventKind::Outcome {
                    outcome: MynaOutcome::Viewed
                },
                6
            ),
            Err(IncidentError::OutcomeRepeated)
        );
    }

    #[test]
    fn labels_and_codes_round_trip() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
            assert!(!p.label_ja().is_ascii());
        }
        for o in MynaOutcome::ALL {
            assert!(!o.label_ja().is_ascii());
        }
        for c in ComplaintCategory::ALL {
            assert!(!c.label_ja().is_ascii());
        }
    }
}
