//! Every way an `ems` request is refused, with one `myna_wire::terminal::ErrorCode` each (the
//! terminal matches on it for the crew's message).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use myna_domain::incident::IncidentError;
use myna_store::StoreError;
use myna_store::ems::AppendError;
use myna_wire::provider::ProviderErrorCode;
use myna_wire::terminal::{ErrorCode, TerminalErrorBody};

#[derive(Debug, thiserror::Error)]
pub enum EmsError {
    #[error("the terminal credential is missing or unknown")]
    TerminalUnknown,
    #[error("this terminal was revoked by the bureau")]
    TerminalRevoked,
    #[error("terminals prove themselves with a client certificate here; enroll this tablet")]
    TerminalCertificateRequired,
    #[error("no bureau with that code")]
    UnknownBureau,
    #[error("this terminal's certificate has expired; enroll it again")]
    TerminalCertificateExpired,
    #[error("no open invitation has that secret (unknown, used or expired)")]
    InvitationInvalid,
    #[error("the certificate signing request is not usable: {0}")]
    CertificateRequestInvalid(String),
    #[error("too many enrollment requests are waiting for an admin")]
    TooManyEnrollments,
    #[error("no such enrollment request")]
    EnrollmentUnknown,
    #[error("this ems issues no terminal certificates (no device CA configured)")]
    EnrollmentUnavailable,
    #[error("no crew member is signed in on this terminal")]
    CrewSignedOut,
    #[error("wrong login or password")]
    BadCredentials,
    #[error("this account is locked after failed sign-ins")]
    AccountLocked { until_ms: i64 },
    #[error("too many sign-in attempts; retry in {retry_after_s} s")]
    TooManyAttempts { retry_after_s: u64 },
    #[error("ems is busy; retry shortly")]
    Busy,
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    #[error("no such incident")]
    IncidentNotFound,
    #[error("{0}")]
    Rule(IncidentError),
    #[error("idempotency key {0:?} was already used for a different event")]
    KeyReused(String),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("the request body is over {0} bytes")]
    PayloadTooLarge(usize),
    #[error("no insured person is linked to this card")]
    PersonNotFound,
    #[error("the provider refused the card's certificate: {0}")]
    CardRejected(ProviderErrorCode),
    #[error("the provider refused the request: {code}: {message}")]
    ProviderRefused {
        code: ProviderErrorCode,
        message: String,
    },
    #[error("the provider could not be reached: {0}")]
    ProviderUnavailable(String),
    #[error("storage is unavailable: {0}")]
    Store(StoreError),
    #[error("the report could not be made: {0}")]
    Report(String),
}

impl From<StoreError> for EmsError {
    fn from(e: StoreError) -> Self {
        EmsError::Store(e)
    }
}

impl From<AppendError> for EmsError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Store(s) => EmsError::Store(s),
            AppendError::Rule(r) => EmsError::Rule(r),
            AppendError::NotFound => EmsError::IncidentNotFound,
            AppendError::KeyReused(k) => EmsError::KeyReused(k),
        }
    }
}

fn rule_code(e: &IncidentError) -> ErrorCode {
    use ErrorCode as C;
    match e {
        IncidentError::Closed => C::IncidentClosed,
        IncidentError::NotCreatedFirst => C::NotCreatedFirst,
        IncidentError::NotAssigned => C::NotAssigned,
        IncidentError::WrongTeam => C::WrongTeam,
        IncidentError::PhaseRepeated(_) => C::PhaseRepeated,
        IncidentError::PhaseOutOfOrder { .. } => C::PhaseOutOfOrder,
        IncidentError::NotACrewPhase(_) => C::NotACrewPhase,
        IncidentError::NotACrewEvent => C::NotACrewEvent,
        IncidentError::NoConsent => C::NoConsent,
        IncidentError::IdentityNotConfirmed => C::IdentityNotConfirmed,
        IncidentError::ConsentNotForThisCard => C::ConsentNotForThisCard,
        IncidentError::ConsentWithdrawn => C::ConsentWithdrawn,
        IncidentError::ConsentRefused => C::ConsentRefused,
        IncidentError::UnknownPatient => C::UnknownPatient,
        IncidentError::WindowPassed => C::WindowPassed,
        IncidentError::OutcomeRepeated => C::OutcomeRepeated,
        IncidentError::DeviceTimeAhead => C::DeviceTimeAhead,
        IncidentError::DeviceTimeBeforeCreation => C::DeviceTimeBeforeCreation,
        IncidentError::DeviceTimeBeforePrevious => C::DeviceTimeBeforePrevious,
        IncidentError::InquiryReason => C::InquiryReason,
        IncidentError::UnknownHospital => C::UnknownHospital,
        IncidentError::Vitals(_) => C::VitalsOutOfRange,
        IncidentError::DestinationNotAccepted => C::DestinationNotAccepted,
        IncidentError::DestinationAfterHandoff => C::DestinationAfterHandoff,
        IncidentError::DispatcherOnly => C::DispatcherOnly,
        IncidentError::NotDestination => C::NotDestination,
        IncidentError::NotArrived => C::NotArrived,
        IncidentError::HandoffRepeated => C::HandoffRepeated,
        IncidentError::NotAHospitalEvent => C::NotAHospitalEvent,
        IncidentError::ReceiverName => C::ReceiverName,
    }
}

impl EmsError {
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            EmsError::TerminalUnknown => C::TerminalUnknown,
            EmsError::TerminalRevoked => C::TerminalRevoked,
            EmsError::TerminalCertificateRequired => C::TerminalCertificateRequired,
            EmsError::UnknownBureau => C::UnknownBureau,
            EmsError::TerminalCertificateExpired => C::TerminalCertificateExpired,
            EmsError::InvitationInvalid => C::InvitationInvalid,
            EmsError::CertificateRequestInvalid(_) => C::CertificateRequestInvalid,
            EmsError::TooManyEnrollments => C::TooManyEnrollments,
            EmsError::EnrollmentUnknown => C::EnrollmentUnknown,
            EmsError::EnrollmentUnavailable => C::EnrollmentUnavailable,
            EmsError::CrewSignedOut => C::CrewSignedOut,
            EmsError::BadCredentials => C::BadCredentials,
            EmsError::AccountLocked { .. } => C::AccountLocked,
            EmsError::TooManyAttempts { .. } => C::TooManyAttempts,
            EmsError::Busy => C::Busy,
            EmsError::Forbidden(_) => C::Forbidden,
            EmsError::IncidentNotFound => C::IncidentNotFound,
            EmsError::Rule(r) => rule_code(r),
            EmsError::KeyReused(_) => C::IdempotencyKeyReused,
            EmsError::Malformed(_) => C::MalformedRequest,
            EmsError::PayloadTooLarge(_) => C::PayloadTooLarge,
            EmsError::PersonNotFound => C::PersonNotFound,
            EmsError::CardRejected(_) => C::CardRejected,
            EmsError::ProviderRefused { .. } => C::ProviderRefused,
            EmsError::ProviderUnavailable(_) => C::ProviderUnavailable,
            EmsError::Store(_) => C::StorageUnavailable,
            EmsError::Report(_) => C::ReportUnavailable,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            EmsError::TerminalUnknown
            | EmsError::TerminalRevoked
            | EmsError::TerminalCertificateRequired
            | EmsError::TerminalCertificateExpired
            | EmsError::CrewSignedOut
            | EmsError::BadCredentials => StatusCode::UNAUTHORIZED,
            EmsError::AccountLocked { .. } => StatusCode::LOCKED,
            EmsError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            EmsError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            EmsError::Forbidden(_) | EmsError::Rule(IncidentError::WrongTeam) => {
                StatusCode::FORBIDDEN
            }
            EmsError::IncidentNotFound
            | EmsError::PersonNotFound
            | EmsError::UnknownBureau
            | EmsError::EnrollmentUnknown
            // Not a failure of ems: enrollment is not a service this one offers.
            | EmsError::EnrollmentUnavailable => StatusCode::NOT_FOUND,
            EmsError::InvitationInvalid => StatusCode::FORBIDDEN,
            EmsError::CertificateRequestInvalid(_) => StatusCode::BAD_REQUEST,
            EmsError::TooManyEnrollments => StatusCode::TOO_MANY_REQUESTS,
            EmsError::Rule(_) | EmsError::KeyReused(_) => StatusCode::CONFLICT,
            EmsError::CardRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            EmsError::Malformed(_) => StatusCode::BAD_REQUEST,
            EmsError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            EmsError::ProviderRefused { .. } => StatusCode::BAD_GATEWAY,
            EmsError::ProviderUnavailable(_) | EmsError::Store(_) | EmsError::Report(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl EmsError {
    /// The message a caller reads. Failures inside ems or past it (the database, the provider
    /// link, the report) name only the code: their details are for the log, not the caller.
    pub fn public_message(&self) -> String {
        match self {
            EmsError::Store(_) => "storage is unavailable".into(),
            EmsError::ProviderUnavailable(_) => "the provider could not be reached".into(),
            EmsError::ProviderRefused { code, .. } => {
                format!("the provider refused the request: {code}")
            }
            EmsError::Report(_) => "the report could not be made".into(),
            other => other.to_string(),
        }
    }

    /// Seconds after which the same request may pass, for `Retry-After`.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            EmsError::TooManyAttempts { retry_after_s } => Some(*retry_after_s),
            EmsError::Busy => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for EmsError {
    fn into_response(self) -> Response {
        if matches!(
            self,
            EmsError::Store(_)
                | EmsError::ProviderUnavailable(_)
                | EmsError::ProviderRefused { .. }
                | EmsError::Report(_)
                | EmsError::Busy
        ) {
            tracing::warn!(error = %self, "request failed");
        }
        let body = TerminalErrorBody::new(self.code(), self.public_message());
        let mut resp = (self.status(), Json(body)).into_response();
        if let Some(s) = self.retry_after_s() {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        resp
    }
}
