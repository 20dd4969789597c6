//! The terminal API of `ems`: JSON under `/api/v1/terminal`, the terminal's credential as bearer
//! token and the crew session in `x-crew-session` (contract in `docs/api.md`).

use crate::View;
use crate::wire_codes;
use myna_domain::access::Consent;
use myna_domain::hospitals::HospitalStatus;
use myna_domain::incident::{ComplaintCategory, DeclineReason, InquiryResult, MynaOutcome, Phase};
use myna_domain::vitals::Vitals;
use serde::{Deserialize, Serialize};

/// Header carrying the signed-in crew member's session (the terminal's own credential is the
/// bearer token).
pub const CREW_SESSION_HEADER: &str = "x-crew-session";

/// The routes. Patterns with `{id}` are also axum's route syntax; the functions fill them in.
pub mod route {
    pub const WHOAMI: &str = "/api/v1/terminal/whoami";
    pub const SIGN_IN: &str = "/api/v1/terminal/sign-in";
    pub const SIGN_OUT: &str = "/api/v1/terminal/sign-out";
    pub const INCIDENTS: &str = "/api/v1/terminal/incidents";
    pub const INCIDENT: &str = "/api/v1/terminal/incidents/{id}";
    pub const EVENTS: &str = "/api/v1/terminal/incidents/{id}/events";
    pub const SUMMARY: &str = "/api/v1/terminal/incidents/{id}/summary";
    pub const STREAM: &str = "/api/v1/terminal/stream";
    pub const HOSPITALS: &str = "/api/v1/terminal/hospitals";
    /// A tablet without an identity yet asks for one (no credential).
    pub const ENROLL: &str = "/api/v1/enroll";
    /// It collects the answer with the poll token it was given.
    pub const ENROLL_STATUS: &str = "/api/v1/enroll/status";

    pub fn incident(id: i64) -> String {
        INCIDENT.replace("{id}", &id.to_string())
    }
    pub fn events(id: i64) -> String {
        EVENTS.replace("{id}", &id.to_string())
    }
    pub fn summary(id: i64) -> String {
        SUMMARY.replace("{id}", &id.to_string())
    }
}

/// The push stream's event names (server-sent events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushEvent {
    /// An incident of the team changed; the data is its id.
    Incident,
    /// The stream fell behind; re-read everything.
    Resync,
    /// The crew's session ended (sign-out elsewhere, password reset, revoked terminal).
    SignedOut,
}

impl PushEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            PushEvent::Incident => "incident",
            PushEvent::Resync => "resync",
            PushEvent::SignedOut => "signed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [PushEvent::Incident, PushEvent::Resync, PushEvent::SignedOut]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    pub login: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedIn {
    pub session: String,
    pub crew_login: String,
    pub crew_name: String,
    pub expires_ms: i64,
    pub terminal: TerminalInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedOut {
    pub signed_out: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalInfo {
    pub terminal_id: i64,
    pub label: String,
    pub bureau: String,
    pub team_id: i64,
    pub team_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhaseTime {
    pub phase: Phase,
    pub at_ms: i64,
    /// Set when the time is the device's (an event queued offline).
    pub from_device: bool,
}

/// 傷病者N: one patient of the incident as the assigned team recorded them. The patient's key
/// never leaves ems; the number is their place in the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientView {
    pub number: u32,
    pub identity_confirmed: bool,
    pub consent: Option<Consent>,
    pub withdrawn: bool,
    pub refused: bool,
    pub viewed: bool,
}

/// An incident as the terminal and the dispatcher see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentView {
    pub id: i64,
    pub number: String,
    pub location: String,
    pub category: ComplaintCategory,
    pub category_ja: String,
    pub note: String,
    pub card_prep_requested: bool,
    pub team_id: Option<i64>,
    pub team_name: Option<String>,
    pub phases: Vec<PhaseTime>,
    /// The patients, in the order their cards were first read.
    pub patients: Vec<PatientView>,
    pub outcome: Option<MynaOutcome>,
    /// A summary was viewed in this incident.
    pub viewed: bool,
    /// 照会: the hospitals phoned, in order.
    pub inquiries: Vec<InquiryView>,
    /// FDMA's 搬送困難事案 (4+ inquiries and 30+ minutes on scene), as of the view.
    pub difficult_transport: bool,
    /// 搬送先: the hospital chosen (registry id and name) and when.
    pub destination: Option<DestinationView>,
    /// The latest value of each vital sign, and when the latest record was taken.
    pub vitals: Option<VitalsView>,
    /// The doctor's signed receipt.
    pub handoff: Option<HandoffView>,
    pub closed: bool,
    pub events: u32,
}

impl IncidentView {
    pub fn phase_at(&self, phase: Phase) -> Option<&PhaseTime> {
        self.phases.iter().find(|p| p.phase == phase)
    }

    pub fn patient(&self, number: u32) -> Option<&PatientView> {
        self.patients.iter().find(|p| p.number == number)
    }
}

/// What a crew may record. The face check and the consent carry the card's certificate, so
/// ems knows which patient they are for; a view is never posted (ems records it itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CrewEvent {
    Phase {
        phase: Phase,
    },
    /// Tap 1: the face matches the card. `certificate` is the card's authentication
    /// certificate, DER in standard base64.
    IdentityConfirmed {
        certificate: String,
    },
    /// Consent or the exception for the card's patient (the summary request can carry it
    /// too: `SummaryBody::consent`).
    Consent {
        certificate: String,
        consent: Consent,
    },
    /// 同意撤回 by 傷病者 `patient`.
    ConsentWithdrawn {
        patient: u32,
    },
    /// 同意拒否: the card's patient, asked after the face check, refused.
    ConsentRefused {
        certificate: String,
    },
    /// How the マイナ救急 step ended, other than viewed (ems derives that from its view log).
    Outcome {
        outcome: MynaOutcome,
    },
    /// 照会: the crew phoned `hospital` (a registry id); a decline names its reason.
    Inquiry {
        hospital: String,
        result: InquiryResult,
        reason: Option<DeclineReason>,
    },
    /// バイタル: what was measured together.
    Vitals {
        vitals: Vitals,
    },
    /// 搬送先決定: a hospital that accepted, and the patients (傷病者N) taken there.
    Destination {
        hospital: String,
        #[serde(default)]
        patients: Vec<u32>,
    },
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DestinationView {
    pub hospital: String,
    pub hospital_name: String,
    pub at_ms: i64,
    /// 傷病者N of the patients taken there.
    #[serde(default)]
    pub patients: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VitalsView {
    pub at_ms: i64,
    pub vitals: Vitals,
    /// How many records were taken.
    pub records: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffView {
    pub received_by: String,
    pub at_ms: i64,
}

/// The bureau's hospitals' acceptance statuses as their staff last set them
/// (`GET route::HOSPITALS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HospitalStatuses {
    pub statuses: Vec<HospitalStatus>,
    /// The bureau's age, in minutes, past which a status is stale.
    pub stale_after_minutes: i64,
}

/// One inquiry as the terminal and the desk show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InquiryView {
    pub hospital: String,
    pub hospital_name: String,
    pub result: InquiryResult,
    pub reason: Option<DeclineReason>,
    pub at_ms: i64,
}

/// A crew event; a replay with the same key is answered, not appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub idempotency_key: String,
    /// The device's clock when the crew tapped, in ms since the epoch. Refused if after the
    /// server's receipt, before the incident was created, or before the crew's previous tap.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub device_at_ms: Option<i64>,
    pub event: CrewEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventAck {
    pub seq: u32,
    pub at_ms: i64,
    pub duplicate: bool,
    /// For a face check, consent or withdrawal: the patient's place in the incident.
    pub patient: Option<u32>,
}

/// The consent tap sent with the summary request, so tap 2 costs one round trip. It is
/// appended exactly as a `CrewEvent::Consent` with this key would be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsentTap {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub idempotency_key: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub device_at_ms: Option<i64>,
    pub consent: Consent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SummaryBody {
    /// DER of the card's JPKI user-authentication certificate, standard base64.
    pub certificate: String,
    #[serde(default)]
    pub view: View,
    /// Consent for this card's patient, recorded before the view in the same request.
    #[serde(default)]
    pub consent: Option<ConsentTap>,
}

/// The summary for the terminal, with the patient it is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalSummary {
    /// 傷病者N.
    pub patient: u32,
    pub summary: crate::provider::SummaryResponse,
}

/// 端末登録申請 (enrollment): a tablet sends the signing request of a key it made itself, for the
/// bureau's device CA; an admin of the bureau approves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// The bureau's code, e.g. `kawasaki-fd`.
    pub bureau: String,
    /// The one-time secret of the invitation an admin of the bureau opened for a team.
    pub invite: String,
    /// How the admin will know the tablet, e.g. `川崎1 車載タブレット`.
    pub label: String,
    /// PKCS#10, PEM.
    pub csr_pem: String,
}

/// The request is filed: the tablet shows `code`, the admin approves when theirs matches, and
/// the tablet polls with `poll_token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollAccepted {
    pub code: String,
    pub poll_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollPoll {
    pub poll_token: String,
}

/// Where an enrollment stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EnrollStatus {
    Pending,
    /// The tablet's client certificate (PEM), for mutual TLS with ems.
    Approved {
        certificate_pem: String,
    },
    /// Rejected by an admin, or lapsed unanswered.
    Rejected,
}

wire_codes! {
    /// Why ems refused a terminal request.
    pub enum ErrorCode {
        TerminalUnknown = "terminal_unknown",
        TerminalRevoked = "terminal_revoked",
        TerminalCertificateRequired = "terminal_certificate_required",
        TerminalCertificateExpired = "terminal_certificate_expired",
        InvitationInvalid = "invitation_invalid",
        UnknownBureau = "unknown_bureau",
        CertificateRequestInvalid = "certificate_request_invalid",
        TooManyEnrollments = "too_many_enrollments",
        EnrollmentUnknown = "enrollment_unknown",
        EnrollmentUnavailable = "enrollment_unavailable",
        CrewSignedOut = "crew_signed_out",
        BadCredentials = "bad_credentials",
        AccountLocked = "account_locked",
        TooManyAttempts = "too_many_attempts",
        Busy = "busy",
        Forbidden = "forbidden",
        IncidentNotFound = "incident_not_found",
        IncidentClosed = "incident_closed",
        NotCreatedFirst = "not_created_first",
        NotAssigned = "not_assigned",
        WrongTeam = "wrong_team",
        PhaseRepeated = "phase_repeated",
        PhaseOutOfOrder = "phase_out_of_order",
        NotACrewPhase = "not_a_crew_phase",
        NotACrewEvent = "not_a_crew_event",
        NoConsent = "no_consent",
        IdentityNotConfirmed = "identity_not_confirmed",
        ConsentNotForThisCard = "consent_not_for_this_card",
        ConsentWithdrawn = "consent_withdrawn",
        ConsentRefused = "consent_refused",
        UnknownPatient = "unknown_patient",
        WindowPassed = "window_passed",
        OutcomeRepeated = "outcome_repeated",
        DeviceTimeAhead = "device_time_ahead",
        DeviceTimeBeforeCreation = "device_time_before_creation",
        DeviceTimeBeforePrevious = "device_time_before_previous",
        InquiryReason = "inquiry_reason",
        UnknownHospital = "unknown_hospital",
        VitalsOutOfRange = "vitals_out_of_range",
        DestinationNotAccepted = "destination_not_accepted",
        DestinationAfterHandoff = "destination_after_handoff",
        DispatcherOnly = "dispatcher_only",
        NotDestination = "not_destination",
        NotArrived = "not_arrived",
        HandoffRepeated = "handoff_repeated",
        NotAHospitalEvent = "not_a_hospital_event",
        ReceiverName = "receiver_name",
        IdempotencyKeyReused = "idempotency_key_reused",
        MalformedRequest = "malformed_request",
        PayloadTooLarge = "payload_too_large",
        PersonNotFound = "person_not_found",
        CardRejected = "card_rejected",
        ProviderRefused = "provider_refused",
        ProviderUnavailable = "provider_unavailable",
        StorageUnavailable = "storage_unavailable",
        ReportUnavailable = "report_unavailable",
    }
}

impl ErrorCode {
    /// Retrying cannot help until someone acts (sign in again, re-register the tablet).
    pub fn is_auth_failure(self) -> bool {
        matches!(
            self,
            ErrorCode::CrewSignedOut
                | ErrorCode::TerminalRevoked
                | ErrorCode::TerminalUnknown
                | ErrorCode::TerminalCertificateRequired
                | ErrorCode::TerminalCertificateExpired
        )
    }

    /// ems answered, but the same request may succeed later.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::ProviderUnavailable
                | ErrorCode::StorageUnavailable
                | ErrorCode::Busy
                | ErrorCode::TooManyAttempts
        )
    }
}

pub type TerminalErrorBody = crate::ErrorBody<ErrorCode>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_cross_the_wire_as_their_text_and_unknown_ones_decode_to_unknown() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *c);
        }
        let body: TerminalErrorBody =
            serde_json::from_str(r#"{"error":{"code":"from_the_future","message":"m"}}"#).unwrap();
        assert_eq!(body.error.code, ErrorCode::Unknown);
        for c in crate::provider::ProviderErrorCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn a_crew_event_cannot_be_a_view_or_a_dispatcher_kind() {
        for kind in ["summary_viewed", "created", "assigned"] {
            let json = format!(r#"{{"kind":"{kind}"}}"#);
            assert!(serde_json::from_str::<CrewEvent>(&json).is_err(), "{kind}");
        }
        assert_eq!(route::summary(7), "/api/v1/terminal/incidents/7/summary");
    }
}
