//! 救急事案 (incident): the append-only event log from the 119 call to hospital arrival, and
//! the rules the `ems` service enforces on it. Pure: the server's clock is an argument.
//!
//! An incident is the fold of its events. Every event carries the server's timestamp, the
//! device's own timestamp when it was queued offline, and an idempotency key, so a terminal's
//! outbox can resend without creating duplicates.

use crate::access::Consent;
use crate::patient::PatientKey;
use crate::summary::View;
use crate::vitals::{Vitals, VitalsError};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The FDMA time phases of an ambulance call, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

    pub fn as_str(self) -> &'static str {
        match self {
            MynaOutcome::Viewed => "viewed",
            MynaOutcome::NotAttemptedUrgency => "not_attempted_urgency",
            MynaOutcome::NotAttemptedEnvironment => "not_attempted_environment",
            MynaOutcome::NoCard => "no_card",
            MynaOutcome::NotRegistered => "not_registered",
            MynaOutcome::ConsentRefused => "consent_refused",
            MynaOutcome::IdentityNotConfirmed => "identity_not_confirmed",
            MynaOutcome::ReaderFailure => "reader_failure",
            MynaOutcome::NetworkFailure => "network_failure",
            MynaOutcome::PersonNotFound => "person_not_found",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        MynaOutcome::ALL.into_iter().find(|o| o.as_str() == s)
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
    /// The crew confirmed that this patient's face matches the card it read.
    IdentityConfirmed {
        patient: PatientKey,
    },
    /// This patient's consent, or the no-consent exception with its reason.
    Consent {
        patient: PatientKey,
        consent: Consent,
    },
    /// 同意撤回: the patient withdrew consent. No view of them follows in this incident.
    ConsentWithdrawn {
        patient: PatientKey,
    },
    /// 同意拒否: asked after the face check, the patient refused. Like a withdrawal, it bars
    /// every later consent, exception and view of them in this incident.
    ConsentRefused {
        patient: PatientKey,
    },
    /// ems viewed this patient's summary through the provider (recorded by ems, never posted).
    SummaryViewed {
        patient: PatientKey,
        view: View,
    },
    /// How the マイナ救急 step ended.
    Outcome {
        outcome: MynaOutcome,
    },
    /// 照会: the crew phoned a hospital (a registry id) and got this answer.
    Inquiry {
        hospital: String,
        result: InquiryResult,
        /// Why it declined; only for a decline.
        reason: Option<DeclineReason>,
    },
    /// バイタルサイン: what the crew measured together.
    Vitals {
        vitals: Vitals,
    },
    /// 搬送先決定: the crew takes these patients to this registry hospital, which accepted on
    /// the phone. A later one replaces it until the handoff; a later decline by the hospital
    /// undoes it.
    Destination {
        hospital: String,
        /// The patients (read cards) transported; the hospital sees only their copies.
        #[serde(default)]
        patients: Vec<PatientKey>,
    },
    /// 引継ぎ: the destination hospital's doctor signed for the patient after 病着.
    Handoff {
        hospital: String,
        /// The doctor who received the patient, as they signed.
        received_by: String,
    },
    Closed,
}

/// 照会結果: the hospital's answer to the crew's inquiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InquiryResult {
    Accepted,
    Declined,
}

impl InquiryResult {
    pub fn label_ja(self) -> &'static str {
        match self {
            InquiryResult::Accepted => "受入可",
            InquiryResult::Declined => "受入不可",
        }
    }
}

/// 受入に至らなかった理由: why a hospital declined, in FDMA's survey categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    /// 手術中・患者対応中.
    Busy,
    /// ベッド満床.
    BedsFull,
    /// 処置困難.
    TreatmentDifficult,
    /// 専門外.
    NotSpecialty,
    /// 医師不在.
    NoDoctor,
    /// 初診（かかりつけ医なし）.
    NotOurPatient,
    /// 理由不明・その他.
    Other,
}

impl DeclineReason {
    pub const ALL: [DeclineReason; 7] = [
        DeclineReason::Busy,
        DeclineReason::BedsFull,
        DeclineReason::TreatmentDifficult,
        DeclineReason::NotSpecialty,
        DeclineReason::NoDoctor,
        DeclineReason::NotOurPatient,
        DeclineReason::Other,
    ];

    pub fn label_ja(self) -> &'static str {
        match self {
            DeclineReason::Busy => "手術中・患者対応中",
            DeclineReason::BedsFull => "ベッド満床",
            DeclineReason::TreatmentDifficult => "処置困難",
            DeclineReason::NotSpecialty => "専門外",
            DeclineReason::NoDoctor => "医師不在",
            DeclineReason::NotOurPatient => "初診（かかりつけ医なし）",
            DeclineReason::Other => "理由不明・その他",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeclineReason::Busy => "busy",
            DeclineReason::BedsFull => "beds_full",
            DeclineReason::TreatmentDifficult => "treatment_difficult",
            DeclineReason::NotSpecialty => "not_specialty",
            DeclineReason::NoDoctor => "no_doctor",
            DeclineReason::NotOurPatient => "not_our_patient",
            DeclineReason::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        DeclineReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// FDMA's 搬送困難事案 (重症以上傷病者の搬送事案における医療機関の受入れ状況等実態調査): four
/// or more inquiries and thirty or more minutes on scene.
pub const DIFFICULT_TRANSPORT_INQUIRIES: usize = 4;
pub const DIFFICULT_TRANSPORT_ON_SCENE_MINUTES: i64 = 30;

/// The 119 call as the dispatcher recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    pub location: &'a str,
    pub category: ComplaintCategory,
    pub note: &'a str,
    pub card_prep_requested: bool,
}

/// One recorded inquiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inquiry {
    pub hospital: String,
    pub result: InquiryResult,
    pub reason: Option<DeclineReason>,
    pub at: DateTime<Utc>,
}

impl EventKind {
    /// The patient an event is about, if it is about one.
    pub fn patient(&self) -> Option<&PatientKey> {
        match self {
            EventKind::IdentityConfirmed { patient }
            | EventKind::Consent { patient, .. }
            | EventKind::ConsentWithdrawn { patient }
            | EventKind::ConsentRefused { patient }
            | EventKind::SummaryViewed { patient, .. } => Some(patient),
            _ => None,
        }
    }
}

/// 隊の状況 (team status), derived from the phases of the open incident a team is assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamStatus {
    /// 待機: no open incident.
    Available,
    /// 出場: assigned, not yet on scene.
    Dispatched,
    /// 現場: arrived, in contact or loading the patient.
    OnScene,
    /// 搬送中: left the scene.
    Transporting,
    /// 病院: at the hospital until the incident is closed.
    AtHospital,
}

impl TeamStatus {
    pub fn label_ja(self) -> &'static str {
        match self {
            TeamStatus::Available => "待機",
            TeamStatus::Dispatched => "出場",
            TeamStatus::OnScene => "現場活動",
            TeamStatus::Transporting => "搬送中",
            TeamStatus::AtHospital => "病院",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TeamStatus::Available => "available",
            TeamStatus::Dispatched => "dispatched",
            TeamStatus::OnScene => "on_scene",
            TeamStatus::Transporting => "transporting",
            TeamStatus::AtHospital => "at_hospital",
        }
    }
}

/// Who caused an event. A crew event names the team it was recorded for, because consent is
/// given to a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Actor {
    Dispatcher {
        account: i64,
    },
    Crew {
        account: i64,
        terminal: i64,
        team: i64,
    },
    /// Staff of a registry hospital, signed in on the hospital screen.
    Hospital {
        account: i64,
        hospital: String,
    },
}

impl Actor {
    pub fn team(&self) -> Option<i64> {
        match self {
            Actor::Dispatcher { .. } | Actor::Hospital { .. } => None,
            Actor::Crew { team, .. } => Some(*team),
        }
    }

    pub fn terminal(&self) -> Option<i64> {
        match self {
            Actor::Dispatcher { .. } | Actor::Hospital { .. } => None,
            Actor::Crew { terminal, .. } => Some(*terminal),
        }
    }
}

/// One event as committed: the server assigns `seq` and `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u32,
    pub kind: EventKind,
    /// Server time of commit.
    pub at: DateTime<Utc>,
    /// The device's time when the crew tapped (it differs from `at` when the tap was queued
    /// offline).
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
    #[error("only a crew records a patient's face check, consent or withdrawal")]
    NotACrewEvent,
    #[error(
        "consent or the exception must be recorded for this patient before the summary is requested"
    )]
    NoConsent,
    #[error("this team has not confirmed this patient's face against the card")]
    IdentityNotConfirmed,
    #[error("the face check and consent this team recorded are for another card")]
    ConsentNotForThisCard,
    #[error("the patient withdrew consent; their summary may not be viewed in this incident")]
    ConsentWithdrawn,
    #[error("the patient refused consent; their summary may not be viewed in this incident")]
    ConsentRefused,
    #[error("no patient of this incident has that card")]
    UnknownPatient,
    #[error("the incident's viewing window has passed")]
    WindowPassed,
    #[error("the outcome was already recorded")]
    OutcomeRepeated,
    #[error("the device time is after the server received the event")]
    DeviceTimeAhead,
    #[error("the device time is before the incident was created")]
    DeviceTimeBeforeCreation,
    #[error("the device time is before this terminal's previous event")]
    DeviceTimeBeforePrevious,
    #[error("a declined inquiry needs its reason, and an accepted one has none")]
    InquiryReason,
    #[error("not a hospital of the bureau's registry")]
    UnknownHospital,
    #[error("vital signs: {0}")]
    Vitals(VitalsError),
    #[error("the hospital's latest answer in this incident is not an acceptance")]
    DestinationNotAccepted,
    #[error("the destination is fixed once the hospital signed the handoff")]
    DestinationAfterHandoff,
    #[error("this hospital is not the incident's destination")]
    NotDestination,
    #[error("the handoff is signed after hospital arrival (病着)")]
    NotArrived,
    #[error("the handoff was already signed")]
    HandoffRepeated,
    #[error("the handoff is signed by hospital staff, who record nothing else")]
    NotAHospitalEvent,
    #[error("the receiving doctor's name is 1–100 characters")]
    ReceiverName,
    #[error("only the dispatcher creates and assigns an incident")]
    DispatcherOnly,
}

/// How long after the call a summary may be requested (covers long transports; a bureau may
/// configure its own).
pub const DEFAULT_VIEW_WINDOW: Duration = Duration::hours(6);

/// How far a tablet's clock may differ from the server's before its times are refused. Tablets
/// keep network time; this absorbs the rest without letting a tap be back- or forward-dated by
/// more.
pub const DEVICE_CLOCK_TOLERANCE: Duration = Duration::seconds(5);

/// What one team has recorded for one patient since the incident was last assigned to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatientStatus {
    pub identity_confirmed: bool,
    pub consent: Option<Consent>,
    pub withdrawn: bool,
    pub refused: bool,
    pub viewed: bool,
}

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

    /// How the マイナ救急 step of the incident ended (FDMA's funnel counts incidents): viewed if
    /// any patient was viewed, else the first outcome the crew recorded, else consent refused
    /// if a patient refused. "Viewed" and "refused" are derived from patient events, so one
    /// patient's refusal does not hide another's view.
    pub fn outcome(&self) -> Option<MynaOutcome> {
        if self.viewed() {
            return Some(MynaOutcome::Viewed);
        }
        let recorded = self.events.iter().find_map(|e| match e.kind {
            EventKind::Outcome { outcome } => Some(outcome),
            _ => None,
        });
        let refused = self
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ConsentRefused { .. }));
        recorded.or(refused.then_some(MynaOutcome::ConsentRefused))
    }

    /// The incident's patients in the order the crew first read their cards: 傷病者1, 傷病者2, …
    pub fn patients(&self) -> Vec<&PatientKey> {
        let mut out: Vec<&PatientKey> = Vec::new();
        for p in self.events.iter().filter_map(|e| e.kind.patient()) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// 傷病者N's key: the patient whose card was read `n`th (from 1).
    pub fn patient_by_number(&self, n: u32) -> Option<PatientKey> {
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        self.patients().get(i).map(|k| (*k).clone())
    }

    /// What the dispatcher recorded from the 119 call (the `Created` event).
    pub fn call(&self) -> Option<Call<'_>> {
        match self.events.first().map(|e| &e.kind) {
            Some(EventKind::Created {
                location,
                category,
                note,
                card_prep_requested,
            }) => Some(Call {
                location,
                category: *category,
                note,
                card_prep_requested: *card_prep_requested,
            }),
            _ => None,
        }
    }

    /// The patient's place in the incident, from 1.
    pub fn patient_number(&self, patient: &PatientKey) -> Option<u32> {
        let i = self.patients().iter().position(|p| *p == patient)?;
        u32::try_from(i + 1).ok()
    }

    /// The events of the current assignment to `team`: everything after the latest
    /// `Assigned`, if that assignment is to `team`. A team that takes over starts empty.
    fn current_assignment(&self, team: i64) -> &[Event] {
        let start = self
            .events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::Assigned { .. }));
        match start {
            Some(i) if self.events[i].kind == (EventKind::Assigned { team }) => {
                self.events.get(i + 1..).unwrap_or(&[])
            }
            _ => &[],
        }
    }

    /// What `team` recorded for `patient` in its current assignment. A withdrawal or a
    /// refusal counts whoever recorded it: after either, no team may view.
    pub fn patient_status(&self, team: i64, patient: &PatientKey) -> PatientStatus {
        let mut status = PatientStatus {
            withdrawn: self.events.iter().any(
                |e| matches!(&e.kind, EventKind::ConsentWithdrawn { patient: p } if p == patient),
            ),
            refused: self.events.iter().any(
                |e| matches!(&e.kind, EventKind::ConsentRefused { patient: p } if p == patient),
            ),
            ..PatientStatus::default()
        };
        for e in self.current_assignment(team) {
            if e.actor.team() != Some(team) || e.kind.patient() != Some(patient) {
                continue;
            }
            match e.kind {
                EventKind::IdentityConfirmed { .. } => status.identity_confirmed = true,
                EventKind::Consent { consent, .. } => status.consent = Some(consent),
                EventKind::SummaryViewed { .. } => status.viewed = true,
                _ => {}
            }
        }
        status
    }

    /// Whether `team` recorded a face check or consent for any other patient in its current
    /// assignment (then a request for this card is a swapped card, not a forgotten tap).
    fn team_acted_for_another(&self, team: i64, patient: &PatientKey) -> bool {
        self.current_assignment(team).iter().any(|e| {
            e.actor.team() == Some(team)
                && matches!(
                    &e.kind,
                    EventKind::IdentityConfirmed { patient: p } | EventKind::Consent { patient: p, .. }
                        if p != patient
                )
        })
    }

    /// Whether any summary was viewed in this incident.
    pub fn viewed(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::SummaryViewed { .. }))
    }

    /// The event with this idempotency key, if it was committed already: a resend answers it
    /// again instead of appending a duplicate.
    pub fn by_key(&self, key: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.idempotency_key == key)
    }

    /// Checks that `kind`, caused by `actor`, may be appended now. Does not append: the store
    /// commits, then the caller pushes the committed event.
    pub fn check(&self, kind: &EventKind, actor: &Actor) -> Result<(), IncidentError> {
        let created = !self.events.is_empty();
        match kind {
            EventKind::Created { .. } | EventKind::Assigned { .. }
                if !matches!(actor, Actor::Dispatcher { .. }) =>
            {
                return Err(IncidentError::DispatcherOnly);
            }
            EventKind::Created { .. } if created => return Err(IncidentError::NotCreatedFirst),
            EventKind::Created { .. } => return Ok(()),
            _ if !created => return Err(IncidentError::NotCreatedFirst),
            _ => {}
        }
        if self.is_closed() {
            return Err(IncidentError::Closed);
        }
        if matches!(actor, Actor::Hospital { .. }) != matches!(kind, EventKind::Handoff { .. }) {
            return Err(IncidentError::NotAHospitalEvent);
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
            EventKind::IdentityConfirmed { patient }
            | EventKind::Consent { patient, .. }
            | EventKind::ConsentWithdrawn { patient }
            | EventKind::ConsentRefused { patient }
            | EventKind::SummaryViewed { patient, .. } => {
                let team = actor.team().ok_or(IncidentError::NotACrewEvent)?;
                match self.assigned_team() {
                    None => return Err(IncidentError::NotAssigned),
                    Some(t) if t != team => return Err(IncidentError::WrongTeam),
                    Some(_) => {}
                }
                let status = self.patient_status(team, patient);
                match kind {
                    EventKind::ConsentWithdrawn { .. } if status.withdrawn => Ok(()),
                    EventKind::ConsentWithdrawn { .. } => self
                        .patient_number(patient)
                        .map(|_| ())
                        .ok_or(IncidentError::UnknownPatient),
                    _ if status.withdrawn => Err(IncidentError::ConsentWithdrawn),
                    _ if status.refused => Err(IncidentError::ConsentRefused),
                    EventKind::Consent { .. } | EventKind::ConsentRefused { .. }
                        if !status.identity_confirmed =>
                    {
                        Err(IncidentError::IdentityNotConfirmed)
                    }
                    // The view's own record holds it to the same rule at commit (a reassignment
                    // while the provider answered is caught here), except for the clock.
                    EventKind::SummaryViewed { .. } if !status.identity_confirmed => {
                        Err(IncidentError::IdentityNotConfirmed)
                    }
                    EventKind::SummaryViewed { .. } if status.consent.is_none() => {
                        Err(IncidentError::NoConsent)
                    }
                    _ => Ok(()),
                }
            }
            EventKind::Outcome { .. } if self.outcome().is_some() => {
                Err(IncidentError::OutcomeRepeated)
            }
            EventKind::Inquiry {
                hospital,
                result,
                reason,
            } => {
                self.assigned_crew(actor)?;
                let id_ok = !hospital.is_empty()
                    && hospital.len() <= 64
                    && hospital
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !id_ok {
                    return Err(IncidentError::UnknownHospital);
                }
                match (result, reason) {
                    (InquiryResult::Declined, Some(_)) | (InquiryResult::Accepted, None) => Ok(()),
                    _ => Err(IncidentError::InquiryReason),
                }
            }
            EventKind::Vitals { vitals } => {
                self.assigned_crew(actor)?;
                vitals.check().map_err(IncidentError::Vitals)
            }
            EventKind::Destination { hospital, patients } => {
                self.assigned_crew(actor)?;
                if self.handoff().is_some() {
                    return Err(IncidentError::DestinationAfterHandoff);
                }
                if patients.iter().any(|p| self.patient_number(p).is_none()) {
                    return Err(IncidentError::UnknownPatient);
                }
                let latest = self
                    .inquiries()
                    .into_iter()
                    .rev()
                    .find(|i| i.hospital == *hospital);
                match latest {
                    Some(i) if i.result == InquiryResult::Accepted => Ok(()),
                    _ => Err(IncidentError::DestinationNotAccepted),
                }
            }
            EventKind::Handoff {
                hospital,
                received_by,
            } => {
                match actor {
                    Actor::Hospital { hospital: h, .. } if h == hospital => {}
                    _ => return Err(IncidentError::NotDestination),
                }
                if self.destination().as_deref() != Some(hospital.as_str()) {
                    return Err(IncidentError::NotDestination);
                }
                if self.arrived_at_hospital().is_none() {
                    return Err(IncidentError::NotArrived);
                }
                if self.handoff().is_some() {
                    return Err(IncidentError::HandoffRepeated);
                }
                let name = received_by.trim();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(IncidentError::ReceiverName);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// What the assigned team is doing for this incident; `Available` once it is closed.
    pub fn team_status(&self) -> TeamStatus {
        if self.is_closed() || self.assigned_team().is_none() {
            return TeamStatus::Available;
        }
        match self.latest_phase() {
            Some(Phase::HospitalArrival) => TeamStatus::AtHospital,
            Some(Phase::Departure) => TeamStatus::Transporting,
            Some(Phase::Arrival | Phase::Contact | Phase::InVehicle) => TeamStatus::OnScene,
            Some(Phase::Call | Phase::Dispatch) | None => TeamStatus::Dispatched,
        }
    }

    /// The actor is the crew of the team the incident is assigned to.
    fn assigned_crew(&self, actor: &Actor) -> Result<(), IncidentError> {
        let team = actor.team().ok_or(IncidentError::NotACrewEvent)?;
        match self.assigned_team() {
            None => Err(IncidentError::NotAssigned),
            Some(t) if t != team => Err(IncidentError::WrongTeam),
            Some(_) => Ok(()),
        }
    }

    /// The hospital the crew is taking the patients to: the latest 搬送先決定, unless that
    /// hospital declined after it (then there is none until the crew chooses again).
    pub fn destination(&self) -> Option<String> {
        self.destination_event().map(|(h, _)| h.to_owned())
    }

    /// The patients transported to the destination.
    pub fn destination_patients(&self) -> Vec<PatientKey> {
        self.destination_event()
            .map(|(_, p)| p.to_vec())
            .unwrap_or_default()
    }

    fn destination_event(&self) -> Option<(&str, &[PatientKey])> {
        let (i, hospital, patients) =
            self.events
                .iter()
                .enumerate()
                .rev()
                .find_map(|(i, e)| match &e.kind {
                    EventKind::Destination { hospital, patients } => {
                        Some((i, hospital.as_str(), patients.as_slice()))
                    }
                    _ => None,
                })?;
        // Any decline by that hospital after the choice voids it for good (a later acceptance
        // needs a new choice); once the handoff is signed, calls no longer matter.
        let declined_since = self
            .events
            .get(i + 1..)
            .unwrap_or(&[])
            .iter()
            .take_while(|e| !matches!(e.kind, EventKind::Handoff { .. }))
            .any(|e| {
                matches!(&e.kind, EventKind::Inquiry { hospital: h, result: InquiryResult::Declined, .. }
                    if h == hospital)
            });
        (!declined_since).then_some((hospital, patients))
    }

    /// When the destination was last chosen.
    pub fn destination_at(&self) -> Option<DateTime<Utc>> {
        self.events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Destination { .. } => Some(e.device_at.unwrap_or(e.at)),
            _ => None,
        })
    }

    /// 病着: when the crew reached the hospital.
    pub fn arrived_at_hospital(&self) -> Option<DateTime<Utc>> {
        self.phase_times()
            .into_iter()
            .find(|(p, _)| *p == Phase::HospitalArrival)
            .map(|(_, t)| t)
    }

    /// The signed handoff: who received the patient, and when.
    pub fn handoff(&self) -> Option<(String, DateTime<Utc>)> {
        self.events.iter().find_map(|e| match &e.kind {
            EventKind::Handoff { received_by, .. } => Some((received_by.clone(), e.at)),
            _ => None,
        })
    }

    /// Every vital-signs record with its time (the device's when it was queued offline).
    pub fn vitals(&self) -> Vec<(DateTime<Utc>, Vitals)> {
        self.events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Vitals { vitals } => Some((e.device_at.unwrap_or(e.at), vitals)),
                _ => None,
            })
            .collect()
    }

    /// The latest value of each vital sign, and when the latest record was taken. Ordered by
    /// the time of measurement, so a record queued offline does not hide a later one.
    pub fn latest_vitals(&self) -> Option<(DateTime<Utc>, Vitals)> {
        let mut records = self.vitals();
        records.sort_by_key(|(t, _)| *t);
        records
            .into_iter()
            .reduce(|(_, a), (t, b)| (t, a.overlay(b)))
    }

    /// Whether staff of `hospital` may read the crew's copy of `patient`'s summary now, and
    /// on what lawful basis: the crew's consent or exception for this patient, passed on for
    /// the handoff. All of these must hold:
    /// - `hospital` is the destination and `patient` is among the patients taken there;
    /// - within `window` of the call, or of the handoff once it is signed;
    /// - the copy is of a view (`view_key`, the view's own event) of this patient by the
    ///   team the incident is assigned to, in its current assignment;
    /// - that team recorded the face check and consent (or exception) for this patient, who
    ///   neither withdrew nor refused.
    pub fn may_hospital_view(
        &self,
        hospital: &str,
        patient: &PatientKey,
        view_key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> Result<Consent, IncidentError> {
        let created = self.created_at().ok_or(IncidentError::NotCreatedFirst)?;
        if self.destination().as_deref() != Some(hospital)
            || !self.destination_patients().contains(patient)
        {
            return Err(IncidentError::NotDestination);
        }
        // A handoff signed within the window extends it; a late one does not reopen it.
        let from = match self.handoff() {
            Some((_, at)) if at <= created + window => at.max(created),
            _ => created,
        };
        if now > from + window {
            return Err(IncidentError::WindowPassed);
        }
        let team = self.assigned_team().ok_or(IncidentError::NotAssigned)?;
        let status = self.patient_status(team, patient);
        if status.withdrawn {
            return Err(IncidentError::ConsentWithdrawn);
        }
        if status.refused {
            return Err(IncidentError::ConsentRefused);
        }
        let copy_is_current = self.current_assignment(team).iter().any(|e| {
            e.idempotency_key == view_key
                && e.actor.team() == Some(team)
                && matches!(&e.kind, EventKind::SummaryViewed { patient: p, .. } if p == patient)
        });
        match (status.identity_confirmed, status.consent) {
            (true, Some(consent)) if copy_is_current => Ok(consent),
            (false, _) => Err(IncidentError::IdentityNotConfirmed),
            _ => Err(IncidentError::NoConsent),
        }
    }

    /// The inquiries, in the order they were recorded.
    pub fn inquiries(&self) -> Vec<Inquiry> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Inquiry {
                    hospital,
                    result,
                    reason,
                } => Some(Inquiry {
                    hospital: hospital.clone(),
                    result: *result,
                    reason: *reason,
                    at: e.at,
                }),
                _ => None,
            })
            .collect()
    }

    /// Hospitals whose latest answer in this incident is a decline: hospital selection puts
    /// them last. A hospital that accepts on a later call is no longer among them.
    pub fn declined_hospitals(&self) -> Vec<String> {
        let inquiries = self.inquiries();
        let mut out: Vec<String> = Vec::new();
        for i in &inquiries {
            let latest = inquiries.iter().rev().find(|j| j.hospital == i.hospital);
            if latest.is_some_and(|j| j.result == InquiryResult::Declined)
                && !out.contains(&i.hospital)
            {
                out.push(i.hospital.clone());
            }
        }
        out
    }

    /// 現場滞在時間: from 現着 to 現発. Without 現発, to the next phase recorded (病着) or the
    /// closing; only an open incident still on scene counts to `now`.
    pub fn on_scene_minutes(&self, now: DateTime<Utc>) -> Option<i64> {
        let times = self.phase_times();
        let at = |p: Phase| times.iter().find(|(q, _)| *q == p).map(|(_, t)| *t);
        let arrived = at(Phase::Arrival)?;
        let closed = self
            .events
            .iter()
            .find(|e| e.kind == EventKind::Closed)
            .map(|e| e.at);
        let left = at(Phase::Departure)
            .or_else(|| at(Phase::HospitalArrival))
            .or(closed)
            .unwrap_or(now);
        Some((left - arrived).num_minutes())
    }

    /// FDMA's 搬送困難事案: `DIFFICULT_TRANSPORT_INQUIRIES` or more inquiries and
    /// `DIFFICULT_TRANSPORT_ON_SCENE_MINUTES` or more on scene.
    pub fn difficult_transport(&self, now: DateTime<Utc>) -> bool {
        self.inquiries().len() >= DIFFICULT_TRANSPORT_INQUIRIES
            && self
                .on_scene_minutes(now)
                .is_some_and(|m| m >= DIFFICULT_TRANSPORT_ON_SCENE_MINUTES)
    }

    /// Checks a crew event's device time against the server's time of receipt: not after it,
    /// not before the incident was created, and not before what it must follow, each within
    /// `DEVICE_CLOCK_TOLERANCE`: the previous tap of the same terminal (its own clock and its
    /// own outbox order; another tablet of the team may deliver earlier taps later); for a
    /// phase, the latest recorded phase (phases are in order, so no tablet may date one
    /// earlier); for a patient event, that patient's previous event (no consent dated before
    /// its face check). A tap that arrives late from the outbox keeps its earlier time.
    pub fn check_device_time(
        &self,
        kind: &EventKind,
        device_at: DateTime<Utc>,
        received: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<(), IncidentError> {
        if device_at > received + DEVICE_CLOCK_TOLERANCE {
            return Err(IncidentError::DeviceTimeAhead);
        }
        let created = self.created_at().ok_or(IncidentError::NotCreatedFirst)?;
        if device_at < created - DEVICE_CLOCK_TOLERANCE {
            return Err(IncidentError::DeviceTimeBeforeCreation);
        }
        let same_terminal = self
            .events
            .iter()
            .rev()
            .filter(|e| e.actor.terminal().is_some() && e.actor.terminal() == actor.terminal())
            .find_map(|e| e.device_at);
        let must_follow = match kind {
            EventKind::Phase { .. } => self.phase_times().iter().map(|(_, t)| *t).max(),
            _ => kind.patient().and_then(|p| {
                self.events
                    .iter()
                    .rev()
                    .find(|e| e.kind.patient() == Some(p))
                    .map(|e| e.device_at.unwrap_or(e.at))
            }),
        };
        let previous = same_terminal.max(must_follow);
        if let Some(previous) = previous
            && device_at < previous - DEVICE_CLOCK_TOLERANCE
        {
            return Err(IncidentError::DeviceTimeBeforePrevious);
        }
        Ok(())
    }

    /// Whether the crew of `team` may view `patient`'s summary now. All of these must hold:
    /// the incident is open, assigned to `team` and within its window; `team` confirmed this
    /// patient's face and recorded consent or the exception for this patient since it was
    /// assigned; the patient did not withdraw. Answers the lawful basis, or the one reason.
    pub fn may_view(
        &self,
        team: i64,
        patient: &PatientKey,
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
        let status = self.patient_status(team, patient);
        if status.withdrawn {
            return Err(IncidentError::ConsentWithdrawn);
        }
        if status.refused {
            return Err(IncidentError::ConsentRefused);
        }
        match (status.identity_confirmed, status.consent) {
            (true, Some(consent)) => Ok(consent),
            _ if self.team_acted_for_another(team, patient) => {
                Err(IncidentError::ConsentNotForThisCard)
            }
            (false, _) => Err(IncidentError::IdentityNotConfirmed),
            (true, None) => Err(IncidentError::NoConsent),
        }
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
    /// The patient viewed (the keyed hash of the card's serial) and their place in the
    /// incident.
    pub patient: PatientKey,
    pub patient_number: u32,
    pub consent: Consent,
    pub view: View,
    /// The provider's access-log sequence number for this view (for a hospital's view, the
    /// crew's view whose copy it read).
    pub provider_access_id: i64,
    /// Set when staff of this registry hospital viewed the handoff copy: then `crew_member`
    /// is the staff account's login, `terminal` is 0, and `consent` the crew's basis passed
    /// on. Absent for a crew's view, so older entries hash as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital: Option<String>,
}

impl crate::access::Linked for ViewRecord {
    const LOG: &'static [u8] = b"myna-kyukyu/ems-view-log/v2";
    fn feed(&self, field: &mut dyn FnMut(&[u8])) {
        field(&self.at_ms.to_be_bytes());
        field(self.bureau.as_bytes());
        field(self.incident_number.as_bytes());
        field(self.team.as_bytes());
        field(self.crew_member.as_bytes());
        field(&self.terminal.to_be_bytes());
        field(self.patient.as_str().as_bytes());
        field(&self.patient_number.to_be_bytes());
        field(self.consent.kind_str().as_bytes());
        field(
            self.consent
                .reason()
                .map_or("", crate::access::ExceptionReason::as_str)
                .as_bytes(),
        );
        field(self.view.as_str().as_bytes());
        field(&self.provider_access_id.to_be_bytes());
        if let Some(h) = &self.hospital {
            field(b"hospital");
            field(h.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::access::ExceptionReason;
    use crate::patient::PatientSecret;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    const DESK: Actor = Actor::Dispatcher { account: 1 };

    fn crew(team: i64) -> Actor {
        Actor::Crew {
            account: 100 + team,
            terminal: 200 + team,
            team,
        }
    }

    fn card(serial: &str) -> PatientKey {
        PatientSecret::from_bytes([42; 32]).patient(serial)
    }

    struct Log(Incident);

    impl Log {
        fn push_by(
            &mut self,
            actor: Actor,
            kind: EventKind,
            minutes: i64,
        ) -> Result<(), IncidentError> {
            self.0.check(&kind, &actor)?;
            let seq = u32::try_from(self.0.events.len()).unwrap() + 1;
            let at = t0() + Duration::minutes(minutes);
            self.0.events.push(Event {
                seq,
                kind,
                at,
                device_at: matches!(actor, Actor::Crew { .. }).then_some(at),
                idempotency_key: format!("k{seq}"),
                actor,
            });
            Ok(())
        }

        fn push(&mut self, kind: EventKind, minutes: i64) -> Result<(), IncidentError> {
            self.push_by(DESK, kind, minutes)
        }

        fn face(&mut self, team: i64, p: &PatientKey, m: i64) -> Result<(), IncidentError> {
            let kind = EventKind::IdentityConfirmed { patient: p.clone() };
            self.push_by(crew(team), kind, m)
        }

        fn consent(
            &mut self,
            team: i64,
            p: &PatientKey,
            consent: Consent,
            m: i64,
        ) -> Result<(), IncidentError> {
            let kind = EventKind::Consent {
                patient: p.clone(),
                consent,
            };
            self.push_by(crew(team), kind, m)
        }

        fn may_view(&self, team: i64, p: &PatientKey) -> Result<Consent, IncidentError> {
            self.0
                .may_view(team, p, t0() + Duration::minutes(30), DEFAULT_VIEW_WINDOW)
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

    fn assigned(team: i64) -> Log {
        let mut log = created();
        log.push(EventKind::Assigned { team }, 1).unwrap();
        log
    }

    #[test]
    fn phases_follow_the_fdma_order_once_each() {
        let mut log = created();
        let phase = |phase| EventKind::Phase { phase };
        assert_eq!(
            log.push(phase(Phase::Arrival), 1),
            Err(IncidentError::NotAssigned)
        );
        log.push(EventKind::Assigned { team: 7 }, 1).unwrap();
        log.push(phase(Phase::Arrival), 8).unwrap();
        assert_eq!(
            log.push(phase(Phase::Arrival), 9),
            Err(IncidentError::PhaseRepeated(Phase::Arrival))
        );
        // Skipping is allowed (contact can be implicit), going back is not.
        log.push(phase(Phase::InVehicle), 12).unwrap();
        assert_eq!(
            log.push(phase(Phase::Contact), 13),
            Err(IncidentError::PhaseOutOfOrder {
                latest: Phase::InVehicle,
                new: Phase::Contact
            })
        );
        assert_eq!(
            log.push(phase(Phase::Dispatch), 13),
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
    fn a_view_needs_the_right_team_this_patients_face_check_and_consent_within_the_window() {
        let mut log = created();
        let a = card("01AA00000001");
        assert_eq!(log.may_view(7, &a), Err(IncidentError::NotAssigned));
        log.push(EventKind::Assigned { team: 7 }, 1).unwrap();
        assert_eq!(log.may_view(8, &a), Err(IncidentError::WrongTeam));
        assert_eq!(
            log.may_view(7, &a),
            Err(IncidentError::IdentityNotConfirmed)
        );
        log.face(7, &a, 10).unwrap();
        assert_eq!(log.may_view(7, &a), Err(IncidentError::NoConsent));
        let exception = Consent::Exception {
            reason: ExceptionReason::Unconscious,
        };
        log.consent(7, &a, exception, 11).unwrap();
        assert_eq!(log.may_view(7, &a), Ok(exception));
        assert_eq!(
            log.0
                .may_view(7, &a, t0() + Duration::hours(7), DEFAULT_VIEW_WINDOW),
            Err(IncidentError::WindowPassed)
        );
        log.push(EventKind::Closed, 60).unwrap();
        assert_eq!(log.may_view(7, &a), Err(IncidentError::Closed));
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
    fn a_swapped_card_is_refused_as_consent_not_for_this_card() {
        let mut log = assigned(7);
        let (a, b) = (card("01AA00000001"), card("01AA00000002"));
        log.face(7, &a, 5).unwrap();
        log.consent(7, &a, Consent::Obtained, 6).unwrap();
        assert_eq!(log.may_view(7, &a), Ok(Consent::Obtained));
        assert_eq!(
            log.may_view(7, &b),
            Err(IncidentError::ConsentNotForThisCard)
        );
        // B's face check alone does not borrow A's consent.
        log.face(7, &b, 7).unwrap();
        assert_eq!(
            log.may_view(7, &b),
            Err(IncidentError::ConsentNotForThisCard)
        );
        log.consent(7, &b, Consent::Obtained, 8).unwrap();
        assert_eq!(log.may_view(7, &b), Ok(Consent::Obtained));
        assert_eq!(log.0.patient_number(&a), Some(1));
        assert_eq!(log.0.patient_number(&b), Some(2));
        assert_eq!(log.0.patients().len(), 2);
    }

    #[test]
    fn consent_needs_this_patients_face_check_by_the_same_team() {
        let mut log = assigned(7);
        let (a, b) = (card("01AA00000001"), card("01AA00000002"));
        log.face(7, &a, 5).unwrap();
        assert_eq!(
            log.consent(7, &b, Consent::Obtained, 6),
            Err(IncidentError::IdentityNotConfirmed)
        );
        assert_eq!(
            log.face(8, &a, 6),
            Err(IncidentError::WrongTeam),
            "only the assigned team records patient events"
        );
        assert_eq!(
            log.push_by(DESK, EventKind::IdentityConfirmed { patient: a.clone() }, 6),
            Err(IncidentError::NotACrewEvent)
        );
    }

    #[test]
    fn a_team_that_takes_over_asks_again_and_so_does_the_first_team_if_it_comes_back() {
        let mut log = assigned(7);
        let a = card("01AA00000001");
        log.face(7, &a, 5).unwrap();
        log.consent(7, &a, Consent::Obtained, 6).unwrap();
        log.push(EventKind::Assigned { team: 8 }, 10).unwrap();
        assert_eq!(
            log.may_view(8, &a),
            Err(IncidentError::IdentityNotConfirmed)
        );
        assert_eq!(log.may_view(7, &a), Err(IncidentError::WrongTeam));
        log.face(8, &a, 11).unwrap();
        log.consent(8, &a, Consent::Obtained, 12).unwrap();
        assert_eq!(log.may_view(8, &a), Ok(Consent::Obtained));
        log.push(EventKind::Assigned { team: 7 }, 13).unwrap();
        assert_eq!(
            log.may_view(7, &a),
            Err(IncidentError::IdentityNotConfirmed)
        );
    }

    #[test]
    fn a_withdrawn_consent_refuses_every_later_view_and_consent_of_that_patient_only() {
        let mut log = assigned(7);
        let (a, b) = (card("01AA00000001"), card("01AA00000002"));
        assert_eq!(
            log.push_by(
                crew(7),
                EventKind::ConsentWithdrawn { patient: a.clone() },
                4
            ),
            Err(IncidentError::UnknownPatient)
        );
        log.face(7, &a, 5).unwrap();
        log.consent(7, &a, Consent::Obtained, 6).unwrap();
        log.face(7, &b, 7).unwrap();
        log.consent(7, &b, Consent::Obtained, 8).unwrap();
        log.push_by(
            crew(7),
            EventKind::ConsentWithdrawn { patient: a.clone() },
            9,
        )
        .unwrap();
        assert_eq!(log.may_view(7, &a), Err(IncidentError::ConsentWithdrawn));
        assert_eq!(log.may_view(7, &b), Ok(Consent::Obtained));
        assert_eq!(
            log.consent(7, &a, Consent::Obtained, 10),
            Err(IncidentError::ConsentWithdrawn)
        );
        // Withdrawal binds the incident, not only the team that heard it.
        log.push(EventKind::Assigned { team: 8 }, 11).unwrap();
        assert_eq!(log.face(8, &a, 12), Err(IncidentError::ConsentWithdrawn));
    }

    #[test]
    fn a_refusal_bars_the_exception_and_every_view_of_that_patient() {
        let mut log = assigned(7);
        let (a, b) = (card("01AA00000001"), card("01AA00000002"));
        log.face(7, &a, 5).unwrap();
        log.push_by(crew(7), EventKind::ConsentRefused { patient: a.clone() }, 6)
            .unwrap();
        let exception = Consent::Exception {
            reason: ExceptionReason::AlteredConsciousness,
        };
        assert_eq!(
            log.consent(7, &a, exception, 7),
            Err(IncidentError::ConsentRefused)
        );
        assert_eq!(log.may_view(7, &a), Err(IncidentError::ConsentRefused));
        log.face(7, &b, 8).unwrap();
        log.consent(7, &b, Consent::Obtained, 9).unwrap();
        assert_eq!(log.may_view(7, &b), Ok(Consent::Obtained));
    }

    #[test]
    fn a_view_record_needs_the_rule_at_commit_too() {
        let mut log = assigned(7);
        let a = card("01AA00000001");
        let viewed = || EventKind::SummaryViewed {
            patient: a.clone(),
            view: View::Summary,
        };
        log.face(7, &a, 5).unwrap();
        log.consent(7, &a, Consent::Obtained, 6).unwrap();
        // Reassigned away and back while the provider answered: the consent is gone.
        log.push(EventKind::Assigned { team: 8 }, 7).unwrap();
        log.push(EventKind::Assigned { team: 7 }, 8).unwrap();
        assert_eq!(
            log.push_by(crew(7), viewed(), 9),
            Err(IncidentError::IdentityNotConfirmed)
        );
    }

    #[test]
    fn device_times_are_refused_ahead_of_the_server_before_creation_or_before_the_last_tap() {
        let mut log = assigned(7);
        let at = |m: i64| t0() + Duration::minutes(m);
        let late = at(30);
        let arrival = EventKind::Phase {
            phase: Phase::Contact,
        };
        assert_eq!(
            log.0.check_device_time(&arrival, at(31), late, &crew(7)),
            Err(IncidentError::DeviceTimeAhead)
        );
        assert_eq!(
            log.0.check_device_time(&arrival, at(-1), late, &crew(7)),
            Err(IncidentError::DeviceTimeBeforeCreation)
        );
        log.push_by(
            crew(7),
            EventKind::Phase {
                phase: Phase::Arrival,
            },
            10,
        )
        .unwrap();
        assert_eq!(
            log.0.check_device_time(&arrival, at(9), late, &crew(7)),
            Err(IncidentError::DeviceTimeBeforePrevious)
        );
        // A tap queued offline at minute 12 that reaches the server at minute 30 is kept.
        assert_eq!(
            log.0.check_device_time(&arrival, at(12), late, &crew(7)),
            Ok(())
        );
        // Another tablet of the team delivers a tap it made earlier: its own order counts.
        let second_tablet = Actor::Crew {
            account: 99,
            terminal: 999,
            team: 7,
        };
        let a = card("01AA00000001");
        let face = EventKind::IdentityConfirmed { patient: a.clone() };
        assert_eq!(
            log.0.check_device_time(&face, at(9), late, &second_tablet),
            Ok(()),
            "a face check the second tablet queued earlier"
        );
        // But no tablet dates a phase before the latest phase, or a consent before its face
        // check.
        assert_eq!(
            log.0
                .check_device_time(&arrival, at(2), late, &second_tablet),
            Err(IncidentError::DeviceTimeBeforePrevious)
        );
        log.face(7, &a, 20).unwrap();
        let consent = EventKind::Consent {
            patient: a,
            consent: Consent::Obtained,
        };
        assert_eq!(
            log.0
                .check_device_time(&consent, at(15), late, &second_tablet),
            Err(IncidentError::DeviceTimeBeforePrevious)
        );
        // Within the clock tolerance either way (crew(7)'s last tap was the face check at 20).
        assert_eq!(
            log.0
                .check_device_time(&arrival, at(20) - Duration::seconds(4), late, &crew(7)),
            Ok(())
        );
        assert_eq!(
            log.0
                .check_device_time(&arrival, late + Duration::seconds(4), late, &crew(7)),
            Ok(())
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
